//! The seed's end-to-end cases through the REST API with a real worker,
//! real python3, PostgreSQL and Redis.

mod common;

use axum::http::StatusCode;
use common::{TestEnv, test_worker_config};
use serde_json::json;

const HELPER_V1: &str = "def greet(name):\n    return f'hello {name}'\n";
const HELPER_V2: &str = "def greet(name):\n    return f'HELLO {name}!'\n";
const FLOW: &str = r#"from runeflow import workflow, context
from shared.halo import greet

@workflow
def hello(name: str = "world"):
    print("greeting", name)
    context.log.info("about to greet")
    return {"greeting": greet(name), "execution": context.execution_id}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_run_update_delete() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[
        ("shared/__init__.py", ""),
        ("shared/halo.py", HELPER_V1),
        ("flows/hello.py", FLOW),
    ])
    .await;

    let e = env.execute("hello", json!({"name": "Ada"})).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["result"]["greeting"], "hello Ada");
    assert_eq!(e["result"]["execution"], e["id"]);
    assert_eq!(e["attempt"], 1);
    assert!(e["logs"].as_str().unwrap().contains("greeting Ada"), "{e}");
    assert!(
        e["logs"].as_str().unwrap().contains("about to greet"),
        "{e}"
    );
    assert!(e["worker"].is_string());
    assert!(e["duration_ms"].is_number());

    // The very next execution sees the new code: no sleep.
    env.put_files(&[("shared/halo.py", HELPER_V2)]).await;
    let e = env.execute("hello", json!({"name": "Ada"})).await;
    assert_eq!(e["result"]["greeting"], "HELLO Ada!", "{e}");

    // Deleted: ModuleNotFoundError naming the module, and the worker goes on.
    assert_eq!(
        env.delete("shared/halo.py").await.status,
        StatusCode::NO_CONTENT
    );
    let e = env.execute("hello", json!({})).await;
    assert_eq!(e["status"], "failed");
    assert_eq!(e["error"]["type"], "ModuleNotFoundError", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shared.halo"),
        "{e}"
    );
    // Without the package either, the error names the top-level module.
    env.delete("shared/__init__.py").await;
    let e = env.execute("hello", json!({})).await;
    assert_eq!(e["error"]["message"], "No module named 'shared'", "{e}");
    env.put_files(&[("shared/halo.py", HELPER_V1)]).await;
    let e = env.execute("hello", json!({"name": "again"})).await;
    assert_eq!(e["result"]["greeting"], "hello again");

    // Read back and list.
    let id = e["id"].as_str().unwrap();
    let one = env.get(&format!("/api/executions/{id}")).await.json();
    assert_eq!(one["status"], "success");
    let list = env
        .get("/api/executions?status=success&limit=2")
        .await
        .json();
    let rows = list["executions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], e["id"], "newest first");
    assert!(list["next_cursor"].is_string());
    let failed = env.get("/api/executions?status=failed").await.json();
    assert_eq!(failed["executions"].as_array().unwrap().len(), 2);
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_namespaces_relative_imports_and_syntax_errors() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[
        ("pkg/__init__.py", "from .sub import VALUE\n"),
        ("pkg/sub.py", "VALUE = 41\n"),
        ("pkg/deep/__init__.py", ""),
        ("pkg/deep/mod.py", "from .. import sub\nfrom ..sub import VALUE\nTOTAL = sub.VALUE + VALUE\n"),
        ("ns/part/thing.py", "NAME = 'namespace'\n"),
        ("broken/bad.py", "x = 1\ndef f(:\n    pass\n"),
        (
            "flows/imports.py",
            "from runeflow import workflow\n\n@workflow\ndef imports():\n    import pkg, pkg.deep.mod, ns.part.thing\n    return {'v': pkg.VALUE + 1, 'total': pkg.deep.mod.TOTAL, 'ns': ns.part.thing.NAME, 'ns_file': getattr(ns, '__file__', None)}\n",
        ),
        (
            "flows/broken.py",
            "from runeflow import workflow\n\n@workflow\ndef uses_broken():\n    import broken.bad\n",
        ),
    ])
    .await;
    let e = env.execute("imports", json!({})).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(
        e["result"],
        json!({"v": 42, "total": 82, "ns": "namespace", "ns_file": null})
    );

    let e = env.execute("uses_broken", json!({})).await;
    assert_eq!(e["status"], "failed");
    assert_eq!(e["error"]["type"], "SyntaxError", "{e}");
    let text = format!("{} {}", e["error"]["message"], e["error"]["traceback"]);
    assert!(text.contains("broken/bad.py"), "names the file: {text}");
    assert!(text.contains("line 2"), "names the line: {text}");
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_recorded_with_virtual_tracebacks() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[
        ("lib/boom.py", "def explode(n):\n    raise ValueError(f'bad value {n}')\n"),
        (
            "flows/f.py",
            "from runeflow import workflow\nfrom lib.boom import explode\n\n@workflow\ndef fails(n: int):\n    return explode(n)\n\n@workflow\ndef unserialisable():\n    return object()\n\n@workflow\nasync def later(x: int = 1):\n    import asyncio\n    await asyncio.sleep(0)\n    return x * 2\n\n@workflow(timeout=1)\ndef slow():\n    import time\n    time.sleep(30)\n",
        ),
    ])
    .await;
    let e = env.execute("fails", json!({"n": 7})).await;
    assert_eq!(e["status"], "failed");
    assert_eq!(e["error"]["type"], "ValueError");
    assert_eq!(e["error"]["message"], "bad value 7");
    let tb = e["error"]["traceback"].as_str().unwrap();
    assert!(tb.contains("lib/boom.py\", line 2"), "{tb}");
    assert!(
        tb.contains("raise ValueError(f'bad value {n}')"),
        "source line shown: {tb}"
    );
    assert_eq!(e["attempt"], 1, "user failures are not retried");

    let e = env.execute("unserialisable", json!({})).await;
    assert_eq!(e["status"], "failed");
    assert_eq!(e["error"]["type"], "ResultNotSerializable", "{e}");

    let e = env.execute("later", json!({"x": 21})).await;
    assert_eq!(e["result"], 42);

    let e = env.execute("slow", json!({})).await;
    assert_eq!(e["status"], "timeout", "{e}");
    assert!(e["duration_ms"].as_i64().unwrap() < 10_000);

    // Validation happens before anything is queued.
    let r = env
        .post_json(
            "/api/executions",
            json!({"workflow": "fails", "parameters": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("n"), "{}", r.text());
    let r = env
        .post_json(
            "/api/executions",
            json!({"workflow": "fails", "parameters": {"n": 1, "zzz": 2}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("zzz"));
    let r = env
        .post_json("/api/executions", json!({"workflow": "nope"}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env
        .post_json("/api/executions", json!({"workflow": "flows/f.py::later"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json()["status"], "pending");
    worker.stop().await;
    env.cleanup().await;
}

/// The workflow's imports arrive with `run` as code objects from the
/// worker's compiler (no `find` round trip, no `compile()` in the child);
/// what the child cannot know in advance (a name built at run time) is
/// still asked for; tracebacks and `inspect` read the source lazily.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_arrive_compiled_with_the_run() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[
        (
            "pkg/__init__.py",
            "from . import alpha\nfrom .beta import BETA\n",
        ),
        (
            "pkg/alpha.py",
            "import pkg.gamma as gamma\nALPHA = gamma.G + 1\n",
        ),
        ("pkg/beta.py", "BETA = 'b'\n"),
        ("pkg/gamma.py", "G = 41\n"),
        (
            "pkg/late.py",
            "def boom():\n    raise RuntimeError('late')  # shown\n",
        ),
        (
            "flows/compiled.py",
            r#"import importlib, inspect, traceback
from runeflow import workflow
import pkg

def how(module):
    return "code" if module.__loader__._code is not None else "source"

@workflow
def compiled():
    late = importlib.import_module("pkg." + "late")
    try:
        late.boom()
    except RuntimeError:
        tb = traceback.format_exc()
    return {
        "alpha": pkg.alpha.ALPHA, "beta": pkg.BETA,
        "loaded": {m.__name__: how(m) for m in (pkg, pkg.alpha, pkg.gamma, late)},
        "source": inspect.getsource(late.boom),
        "tb_shows_line": "raise RuntimeError('late')  # shown" in tb,
    }
"#,
        ),
    ])
    .await;
    let e = env.execute("compiled", json!({})).await;
    assert_eq!(e["status"], "success", "{e}");
    let r = &e["result"];
    assert_eq!(r["alpha"], 42, "{e}");
    assert_eq!(r["beta"], "b");
    assert_eq!(r["loaded"]["pkg"], "code", "{e}");
    assert_eq!(r["loaded"]["pkg.alpha"], "code");
    assert_eq!(r["loaded"]["pkg.gamma"], "code");
    // Imported by a computed name: not prefetched, served on request.
    assert_eq!(r["loaded"]["pkg.late"], "source");
    assert!(r["source"].as_str().unwrap().contains("# shown"), "{e}");
    assert_eq!(r["tb_shows_line"], true, "{e}");
    drop(worker);
}

/// A `wait`ed answer is built from the row the worker recorded and sent
/// with its "finished" notice, or read back when the row is too big to
/// send (over 64 KiB of logs): either way it is exactly what a later GET
/// returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waited_answers_equal_the_recorded_row() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[(
        "flows/talk.py",
        "from runeflow import workflow\n\n@workflow\ndef talk(size: int):\n    print('x' * size)\n    return {'size': size}\n",
    )])
    .await;
    let client = redis::Client::open(env.redis_url.as_str()).unwrap();
    let mut notices = client.get_async_pubsub().await.unwrap();
    notices
        .subscribe(runeflow_shared::jobs::finished_channel(&env.name))
        .await
        .unwrap();
    let mut notices = notices.into_on_message();
    for (size, inline) in [(10, true), (100_000, false)] {
        let waited = env.execute("talk", json!({"size": size})).await;
        let payload: String = futures::StreamExt::next(&mut notices)
            .await
            .unwrap()
            .get_payload()
            .unwrap();
        let notice = runeflow_shared::finished_notice::decode(&payload).unwrap();
        assert_eq!(notice.id.to_string(), waited["id"].as_str().unwrap());
        assert_eq!(notice.execution.is_some(), inline, "size {size}");
        assert_eq!(waited["status"], "success", "{waited}");
        assert_eq!(waited["result"]["size"], size);
        assert!(waited["finished_at"].is_string(), "{waited}");
        let read = env
            .get(&format!(
                "/api/executions/{}",
                waited["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.json(), waited, "size {size}");
    }
    worker.stop().await;
}

/// Runs of a workflow skip its PostgreSQL lookup while the workspace is
/// unchanged; every write that changes it is seen by the very next POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_lookups_follow_every_write() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    let post = |parameters: serde_json::Value| {
        env.post_json(
            "/api/executions",
            json!({"workflow": "add", "parameters": parameters, "wait": 30}),
        )
    };
    env.put_files(&[(
        "flows/add.py",
        "from runeflow import workflow\n\n@workflow\ndef add(a: int):\n    return a\n",
    )])
    .await;
    for _ in 0..2 {
        let r = post(json!({"a": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["result"], 1);
    }
    // New parameters: the cached lookup is not used.
    env.put_files(&[(
        "flows/add.py",
        "from runeflow import workflow\n\n@workflow\ndef add(a: int, b: int):\n    return a + b\n",
    )])
    .await;
    let r = post(json!({"a": 1})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(r.text().contains("b"), "{}", r.text());
    let r = post(json!({"a": 1, "b": 2})).await;
    assert_eq!(r.json()["result"], 3, "{}", r.text());
    // A second definition makes the name ambiguous; a delete leaves none.
    env.put_files(&[(
        "flows/other.py",
        "from runeflow import workflow\n\n@workflow\ndef add():\n    return 0\n",
    )])
    .await;
    assert_eq!(post(json!({})).await.status, StatusCode::CONFLICT);
    for path in ["flows/add.py", "flows/other.py"] {
        assert_eq!(env.delete(path).await.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(post(json!({"a": 1})).await.status, StatusCode::NOT_FOUND);
    worker.stop().await;
}

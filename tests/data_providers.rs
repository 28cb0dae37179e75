//! `POST /api/data-providers/{name}` (issue 10, item 7), with a real
//! worker: a provider runs like a workflow, its options are cached per
//! (provider, parameters, workspace version) for its `cache_ttl`, and an
//! edit of a module it imports makes the next call run it again.

mod common;

use axum::http::StatusCode;
use common::TestEnv;
use common::worker_process::*;
use serde_json::{Value, json};

const HELPERS_V1: &str = "REGIONS = ['eu', 'us']\n";
const HELPERS_V2: &str = "REGIONS = ['eu', 'us', 'ap']\n";

fn providers(counter: &str) -> String {
    format!(
        r#"from runeflow import data_provider, workflow
from dp.helpers import REGIONS

def _count():
    path = {counter:?}
    try:
        n = int(open(path).read())
    except FileNotFoundError:
        n = 0
    with open(path, 'w') as f:
        f.write(str(n + 1))

@data_provider
def regions(prefix: str = ''):
    _count()
    return [{{'label': prefix + r, 'value': r}} for r in REGIONS]

@data_provider(cache_ttl=0)
def uncached():
    _count()
    return REGIONS

@data_provider
def broken():
    raise LookupError('no regions today')

@workflow
def not_a_provider():
    return 1
"#
    )
}

async fn call(env: &TestEnv, name: &str, params: Value) -> (StatusCode, Value) {
    let r = env
        .post_json(&format!("/api/data-providers/{name}"), params)
        .await;
    let body = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    (r.status, body)
}

fn runs(counter: &std::path::Path) -> u32 {
    std::fs::read_to_string(counter)
        .map(|t| t.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn options_are_cached_per_parameters_until_an_imported_module_changes() {
    let env = TestEnv::new().await;
    let counter = std::env::temp_dir().join(format!("{}_dp", env.name));
    let _ = std::fs::remove_file(&counter);
    let code = providers(&counter.to_string_lossy());
    env.put_files(&[
        ("dp/__init__.py", ""),
        ("dp/helpers.py", HELPERS_V1),
        ("dp/providers.py", &code),
    ])
    .await;
    let worker = WorkerProcess::spawn(&env, "w", &[]);

    let (status, first) = call(&env, "regions", json!({"prefix": "r-"})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["options"][0], json!({"label": "r-eu", "value": "eu"}));
    assert_eq!(first["cached"], false);
    assert_eq!(runs(&counter), 1);

    // Same parameters: from the cache, no run.
    let (_, again) = call(&env, "regions", json!({"prefix": "r-"})).await;
    assert_eq!(
        (again["cached"].clone(), again["options"].clone()),
        (json!(true), first["options"].clone())
    );
    assert_eq!(again["execution_id"], first["execution_id"]);
    assert_eq!(runs(&counter), 1);

    // Other parameters: a run of their own.
    let (_, other) = call(&env, "regions", json!({"prefix": "x-"})).await;
    assert_eq!(other["cached"], false);
    assert_eq!(runs(&counter), 2);

    // An edit of the module it imports: the next call runs again.
    env.put_files(&[("dp/helpers.py", HELPERS_V2)]).await;
    let (_, edited) = call(&env, "regions", json!({"prefix": "r-"})).await;
    assert_eq!(edited["cached"], false, "{edited}");
    assert_eq!(
        edited["options"].as_array().map(Vec::len),
        Some(3),
        "{edited}"
    );
    assert_eq!(runs(&counter), 3);

    // cache_ttl=0: every call runs.
    call(&env, "uncached", json!({})).await;
    let (_, second) = call(&env, "uncached", json!({})).await;
    assert_eq!(second["cached"], false);
    assert_eq!(runs(&counter), 5);

    // Errors: a failing provider (502 with its error), bad parameters
    // (422), a workflow or an unknown name (404).
    let (status, body) = call(&env, "broken", json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.to_string().contains("no regions today"), "{body}");
    let (status, _) = call(&env, "regions", json!({"nope": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = call(&env, "regions", json!({"prefix": "a\u{0}b"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("NUL"), "{body}");
    let (status, body) = call(&env, "not_a_provider", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = call(&env, "missing", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(worker);
    env.cleanup().await;
}

//! The client verbs of the real `runeflow` binary against an API served
//! over HTTP by the test (real PostgreSQL, Redis, worker and python3).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{HttpServer, TOKEN, TestEnv, test_worker_config};

/// What one run of the binary printed and returned.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn runeflow(server: &HttpServer, args: &[&str]) -> Ran {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(args)
        .env("RUNEFLOW_URL", &server.url)
        .env("RUNEFLOW_API_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the runeflow binary");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scratch_dir(env: &TestEnv, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-{name}", env.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every file under `dir` by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

const HELLO: &str = "from runeflow import workflow\nfrom helpers.greet import greet\n\n@workflow(timeout=1)\ndef hello(name: str = 'world'):\n    print('hi from', name)\n    return {'greeting': greet(name)}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_twice_then_delete_then_pull_round_trip() {
    let env = TestEnv::new().await;
    let server = env.serve_http().await;
    let dir = scratch_dir(&env, "push");
    write(&dir, "flows/hello.py", HELLO.as_bytes());
    write(&dir, "helpers/__init__.py", b"");
    write(
        &dir,
        "helpers/greet.py",
        b"def greet(name):\n    return f'hello {name}'\n",
    );
    write(&dir, "helpers/data.json", b"{\"k\": [1, 2]}\r\n");
    write(&dir, "helpers/blob.bin", &[0xff, 0xfe, 0x00]);
    write(&dir, "helpers/__pycache__/greet.cpython-311.pyc", b"junk");
    write(&dir, "extra/old.py", b"X = 1\n");

    let first = runeflow(
        &server,
        &["push", dir.to_str().unwrap(), "--prefix", "team"],
    )
    .await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains("5 created, 0 updated, 0 unchanged, 0 deleted, 1 refused"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("refused team/helpers/blob.bin: unsupported_media_type (415)"),
        "{}",
        first.stdout
    );
    let again = runeflow(
        &server,
        &["push", dir.to_str().unwrap(), "--prefix", "team"],
    )
    .await;
    assert!(
        again
            .stdout
            .contains("0 created, 0 updated, 5 unchanged, 0 deleted, 1 refused"),
        "the second push uploaded something: {}",
        again.stdout
    );

    let ls = runeflow(&server, &["ls", "team/"]).await;
    assert!(ls.stdout.contains("workflow\t"), "{}", ls.stdout);
    assert!(
        ls.stdout.contains("team/helpers/data.json"),
        "{}",
        ls.stdout
    );
    assert!(!ls.stdout.contains("__pycache__"), "{}", ls.stdout);
    let flows = runeflow(&server, &["workflows"]).await;
    assert!(
        flows
            .stdout
            .contains("hello\tworkflow\tteam/flows/hello.py::hello\t(name: str = 'world')"),
        "{}",
        flows.stdout
    );

    // One file changed, one gone: --delete removes it from the workspace.
    write(
        &dir,
        "helpers/greet.py",
        b"def greet(name):\n    return name\n",
    );
    std::fs::remove_dir_all(dir.join("extra")).unwrap();
    let synced = runeflow(
        &server,
        &[
            "push",
            dir.to_str().unwrap(),
            "--prefix",
            "team/",
            "--delete",
        ],
    )
    .await;
    assert!(
        synced
            .stdout
            .contains("0 created, 1 updated, 3 unchanged, 1 deleted, 1 refused"),
        "{}",
        synced.stdout
    );
    assert_eq!(env.get("/api/files/team/extra/old.py").await.status, 404);

    // Pull writes exactly the workspace's files, byte for byte.
    let back = scratch_dir(&env, "pull");
    let pulled = runeflow(
        &server,
        &["pull", back.to_str().unwrap(), "--prefix", "team"],
    )
    .await;
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let mut expected = tree(&dir);
    expected.remove("helpers/blob.bin");
    expected.remove("helpers/__pycache__/greet.cpython-311.pyc");
    assert_eq!(tree(&back), expected);

    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_exit_codes_logs_and_executions() {
    let env = TestEnv::new().await;
    let server = env.serve_http().await;
    let _worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[
        ("flows/hello.py", HELLO),
        ("helpers/__init__.py", ""),
        (
            "helpers/greet.py",
            "import time\n\ndef greet(name):\n    if name == 'slow':\n        time.sleep(5)\n    if name == 'bad':\n        raise ValueError('no bad names')\n    return f'hello {name}'\n",
        ),
    ])
    .await;

    let ok = runeflow(&server, &["run", "hello", "-p", "name=Ada"]).await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let result: serde_json::Value = serde_json::from_str(&ok.stdout).expect("JSON result");
    assert_eq!(result["greeting"], "hello Ada");

    let bad = runeflow(
        &server,
        &["run", "hello", "--params-json", r#"{"name": "bad"}"#],
    )
    .await;
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert!(
        bad.stderr.contains("ValueError: no bad names"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("raise ValueError('no bad names')"),
        "the traceback shows the source line: {}",
        bad.stderr
    );

    let slow = runeflow(&server, &["run", "hello", "-p", "name=slow"]).await;
    assert_eq!(slow.code, 2, "a timeout: {}{}", slow.stdout, slow.stderr);
    assert!(slow.stderr.contains("timeout"), "{}", slow.stderr);

    let unknown = runeflow(&server, &["run", "hello", "-p", "nope=1"]).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("unknown parameters: nope"),
        "{}",
        unknown.stderr
    );

    let queued = runeflow(&server, &["run", "hello", "--no-wait"]).await;
    assert_eq!(queued.code, 0);
    let id = queued.stdout.trim().to_owned();
    assert_eq!(id.len(), 36, "{id}");
    let done = env
        .get(&format!("/api/executions/{id}?wait=30"))
        .await
        .json();
    assert_eq!(done["status"], "success", "{done}");
    let logs = runeflow(&server, &["logs", &id]).await;
    assert!(logs.stdout.contains("hi from world"), "{}", logs.stdout);

    let failed = runeflow(&server, &["executions", "--status", "failed"]).await;
    let lines: Vec<&str> = failed.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", failed.stdout);
    assert!(lines[0].contains("\tfailed\thello\t"), "{}", failed.stdout);
}

#[tokio::test]
async fn client_verbs_name_a_missing_token_and_an_unreachable_api() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(["ls"])
        .env_remove("RUNEFLOW_API_TOKEN")
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUNEFLOW_API_TOKEN is not set"));
    let port = common::free_port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(["ls"])
        .env("RUNEFLOW_API_TOKEN", "x")
        .env("RUNEFLOW_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Cancel (issue 10, item 1), through the real `runeflow worker` binary and
//! the `runeflow` client: a queued execution never starts, a running one is
//! killed with everything it started, a final one is a 409, a repeat is
//! harmless, a `wait`ing request returns at once, `runeflow run` exits 2.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::TestEnv;
use common::worker_process::*;
use serde_json::json;

const FLOWS: &str = r#"import os, subprocess, sys, time
from runeflow import workflow

@workflow
def marker(path: str):
    with open(path, 'w') as f:
        f.write('ran')
    return 'ran'

@workflow(timeout=120)
def slow_with_child(pidfile: str):
    # A subprocess that leaves the session: only a kill of the whole tree
    # (or of the slot's uid) reaches it.
    child = subprocess.Popen([sys.executable, '-c',
        'import os, time; os.setsid(); time.sleep(300)'])
    with open(pidfile, 'w') as f:
        f.write(str(child.pid))
    print('started', child.pid, flush=True)
    time.sleep(300)

@workflow
def quick():
    return 1
"#;

async fn setup() -> TestEnv {
    let env = TestEnv::new().await;
    env.put_files(&[("cancelling/flows.py", FLOWS)]).await;
    env
}

async fn cancel(env: &TestEnv, id: &str) -> common::Reply {
    env.post_json(&format!("/api/executions/{id}/cancel"), json!({}))
        .await
}

/// A queued execution cancelled before any worker takes it never starts.
#[tokio::test]
async fn a_pending_execution_cancelled_never_starts() {
    let env = setup().await;
    let marker = std::env::temp_dir().join(format!("{}_marker", env.name));
    let id = submit(&env, "marker", json!({"path": marker.to_string_lossy()})).await;
    let r = cancel(&env, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(r.json()["error"]["type"], "Cancelled");

    // A worker now takes the job from the queue and must not run it.
    let worker = WorkerProcess::spawn(&env, "w", &[]);
    let after = submit(&env, "quick", json!({})).await;
    let done = wait_final(&env, &after, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success", "{done}");
    let row = env.get(&format!("/api/executions/{id}")).await.json();
    assert_eq!(row["status"], "cancelled", "{row}");
    assert_eq!(row["attempt"], 0, "the cancelled execution started: {row}");
    assert!(row["started_at"].is_null(), "{row}");
    assert!(!marker.exists(), "the cancelled workflow ran");
    drop(worker);
    env.cleanup().await;
}

/// A running execution is killed with its descendants (one of which left
/// the session) and recorded `cancelled` with what it logged; a request
/// holding `wait` returns at once; a repeat is harmless; the CLI exits 2.
#[tokio::test]
async fn a_running_execution_is_killed_with_its_descendants() {
    let env = setup().await;
    let server = env.serve_http().await;
    let worker = WorkerProcess::spawn(&env, "w", &[]);
    let pidfile = std::env::temp_dir().join(format!("{}_child", env.name));
    let _ = std::fs::remove_file(&pidfile);

    // `runeflow run` waits for the outcome of the execution it queued.
    let mut run = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args([
            "run",
            "slow_with_child",
            "-p",
            &format!("pidfile={}", pidfile.to_string_lossy()),
        ])
        .env("RUNEFLOW_URL", &server.url)
        .env("RUNEFLOW_API_TOKEN", common::TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runeflow run");

    assert!(
        eventually(Duration::from_secs(30), || pidfile.exists()).await,
        "the workflow never started its subprocess; worker log:\n{}",
        worker.log()
    );
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(grandchild));
    let list = env.get("/api/executions?status=running").await.json();
    let id = list["executions"][0]["id"].as_str().unwrap().to_owned();

    // A request already waiting for the outcome.
    let waiting = {
        let app = env.app();
        let uri = format!("/api/executions/{id}?wait=60");
        tokio::spawn(async move {
            use tower::ServiceExt;
            let req = common::authed("GET", &uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .unwrap();
            (
                Instant::now(),
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    let r = cancel(&env, &id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    let (woken, seen) = waiting.await.unwrap();
    assert_eq!(seen["status"], "cancelled", "{seen}");
    println!(
        "waiting request returned {:?} after the cancel",
        woken.saturating_duration_since(asked)
    );

    // Generous bound for a loaded CI machine; the figure is printed.
    assert!(
        eventually(Duration::from_secs(10), || !alive(grandchild)).await,
        "the subprocess {grandchild} outlived its cancelled execution"
    );
    println!("subprocess gone {:?} after the cancel", asked.elapsed());

    // The worker adds what the child logged to the cancelled row.
    let row = wait_execution(&env, &id, Duration::from_secs(10), "logs kept", |e| {
        e["logs"].as_str().is_some_and(|l| l.contains("started"))
    })
    .await;
    assert_eq!(row["status"], "cancelled", "{row}");
    assert_eq!(row["attempt"], 1, "{row}");

    // A repeat is harmless.
    let again = cancel(&env, &id).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["status"], "cancelled");

    let out = tokio::time::timeout(Duration::from_secs(30), run.wait())
        .await
        .expect("runeflow run returns after the cancel")
        .unwrap();
    assert_eq!(out.code(), Some(2), "runeflow run exit code");

    // The worker goes on with other work.
    let next = submit(&env, "quick", json!({})).await;
    let done = wait_final(&env, &next, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success", "{done}");
    drop(worker);
    env.cleanup().await;
}

/// A final execution cannot be cancelled (409 naming its status); an
/// unknown one is a 404; `runeflow cancel` prints the new status.
#[tokio::test]
async fn final_and_unknown_executions_are_refused() {
    let env = setup().await;
    let server = env.serve_http().await;
    let worker = WorkerProcess::spawn(&env, "w", &[]);
    let id = submit(&env, "quick", json!({})).await;
    let done = wait_final(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success");

    let r = cancel(&env, &id).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert!(r.text().contains("success"), "{}", r.text());
    let row = env.get(&format!("/api/executions/{id}")).await.json();
    assert_eq!(row["status"], "success", "a refused cancel changed the row");

    let unknown = cancel(&env, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    let garbage = cancel(&env, "not-an-id").await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND, "{}", garbage.text());

    drop(worker);
    // The CLI verb, on a queued execution (no worker any more).
    let queued = submit(&env, "quick", json!({})).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(["cancel", &queued])
        .env("RUNEFLOW_URL", &server.url)
        .env("RUNEFLOW_API_TOKEN", common::TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{queued} cancelled")
    );
    env.cleanup().await;
}

//! Delayed runs and retries of user failures (issue 10, items 2 and 3),
//! through the real `runeflow worker` binary and the promotion loop every
//! `runeflow api` runs.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::TestEnv;
use common::worker_process::*;
use serde_json::{Value, json};

const FLOWS: &str = r#"import os
from runeflow import workflow

@workflow
def stamp(path: str):
    with open(path, 'w') as f:
        f.write('ran')
    return 'ran'

@workflow(retries=3, retry_backoff=0.2, retry_on=["ConnectionError"])
def flaky(counter: str):
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    with open(counter, 'w') as f:
        f.write(str(n))
    print(f'try {n}')
    if n < 3:
        raise ConnectionError(f'flaked on try {n}')
    return n

@workflow(retries=3, retry_backoff=0.2, retry_on=["ConnectionError"])
def wrong_error():
    raise ValueError('not retried')

@workflow(retries=1, retry_backoff=0.2)
def always_fails():
    raise RuntimeError('still broken')
"#;

/// The env, its flows, the promotion loop (as `runeflow api` runs it) and
/// a worker.
async fn setup() -> (TestEnv, WorkerProcess, tokio::sync::oneshot::Sender<()>) {
    let env = TestEnv::new().await;
    env.put_files(&[("later/flows.py", FLOWS)]).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(runeflow_api::promote::run(env.state().enqueue, async {
        let _ = stopped.await;
    }));
    let worker = WorkerProcess::spawn(&env, "w", &[]);
    (env, worker, stop)
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_delayed_run_waits_for_its_time_and_a_cancelled_one_never_starts() {
    let (env, worker, _stop) = setup().await;
    let dir = std::env::temp_dir();
    let (early, late) = (
        dir.join(format!("{}_a", env.name)),
        dir.join(format!("{}_b", env.name)),
    );
    let r = env
        .post_json(
            "/api/executions",
            json!({"workflow": "stamp", "parameters": {"path": early.to_string_lossy()}, "delay": 1.5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"], "scheduled");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let run_at = Utc::now() + chrono::Duration::seconds(2);
    let r = env
        .post_json(
            "/api/executions",
            json!({"workflow": "stamp", "parameters": {"path": late.to_string_lossy()},
                   "run_at": run_at.to_rfc3339()}),
        )
        .await;
    assert_eq!(r.json()["status"], "scheduled", "{}", r.text());
    let cancelled = r.json()["id"].as_str().unwrap().to_owned();
    let row = env.get(&format!("/api/executions/{id}")).await.json();
    assert_eq!(row["status"], "scheduled");
    assert!(row["run_at"].is_string(), "{row}");

    let c = env
        .post_json(&format!("/api/executions/{cancelled}/cancel"), json!({}))
        .await;
    assert_eq!(c.json()["status"], "cancelled", "{}", c.text());

    let done = wait_final(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert!(
        time(&done["started_at"]) >= time(&row["run_at"]),
        "started {} before its run_at {}",
        done["started_at"],
        row["run_at"]
    );
    // Past the cancelled one's time: it never started.
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(1500)).await;
    let row = env
        .get(&format!("/api/executions/{cancelled}"))
        .await
        .json();
    assert_eq!(
        (row["status"].as_str(), row["attempt"].as_i64()),
        (Some("cancelled"), Some(0))
    );
    assert!(early.exists() && !late.exists());

    // Both times at once, or a delay out of range, are the client's mistake.
    for body in [
        json!({"workflow": "stamp", "parameters": {"path": "x"}, "delay": 1, "run_at": run_at.to_rfc3339()}),
        json!({"workflow": "stamp", "parameters": {"path": "x"}, "delay": -1}),
        json!({"workflow": "stamp", "parameters": {"path": "x"}, "run_at": "tomorrow"}),
    ] {
        let r = env.post_json("/api/executions", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    }
    drop(worker);
    env.cleanup().await;
}

#[tokio::test]
async fn a_flaky_workflow_succeeds_on_attempt_3_with_attempts_1_and_2_kept() {
    let (env, worker, _stop) = setup().await;
    let counter = std::env::temp_dir().join(format!("{}_count", env.name));
    let _ = std::fs::remove_file(&counter);
    let id = submit(&env, "flaky", json!({"counter": counter.to_string_lossy()})).await;
    let done = wait_final(&env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(
        (done["attempt"].as_i64(), done["retry"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(done["result"], 3);
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{done}");
    for (i, earlier) in attempts.iter().enumerate() {
        let n = i as i64 + 1;
        assert_eq!(earlier["attempt"], n);
        assert_eq!(earlier["status"], "failed");
        assert_eq!(earlier["error"]["type"], "ConnectionError");
        assert_eq!(earlier["error"]["message"], format!("flaked on try {n}"));
        assert!(
            earlier["logs"]
                .as_str()
                .unwrap()
                .contains(&format!("try {n}"))
        );
    }
    // The backoff (0.2 s, then 0.4 s, ±25 %) was waited; the 0.5 s promotion
    // tick adds up to that much to each gap.
    let gap = |a: &Value, b: &Value| time(b) - time(a);
    let first = gap(&attempts[0]["finished_at"], &attempts[1]["started_at"]);
    let second = gap(&attempts[1]["finished_at"], &done["started_at"]);
    println!("retry gaps: {first} then {second}");
    assert!(first >= chrono::Duration::milliseconds(150), "{first}");

    // `runeflow logs` shows every attempt's error.
    let server = env.serve_http().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(["logs", &id])
        .env("RUNEFLOW_URL", &server.url)
        .env("RUNEFLOW_API_TOKEN", common::TOKEN)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("attempt 1 failed: ConnectionError: flaked on try 1"),
        "{text}"
    );
    assert!(
        text.contains("attempt 2 failed: ConnectionError: flaked on try 2"),
        "{text}"
    );
    assert!(text.contains("try 3"), "{text}");
    drop(worker);
    env.cleanup().await;
}

#[tokio::test]
async fn failures_retry_on_does_not_name_and_exhausted_retries_are_final() {
    let (env, worker, _stop) = setup().await;
    let id = submit(&env, "wrong_error", json!({})).await;
    let done = wait_final(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(
        (done["attempt"].as_i64(), done["retry"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(done["error"]["type"], "ValueError");
    assert_eq!(done["attempts"], json!([]));

    let id = submit(&env, "always_fails", json!({})).await;
    let done = wait_final(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(
        (done["attempt"].as_i64(), done["retry"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(done["error"]["message"], "still broken");
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(1));
    drop(worker);
    env.cleanup().await;
}

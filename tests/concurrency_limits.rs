//! `@workflow(max_concurrency=N)` (issue 10, item 5), through the real
//! `runeflow worker` binary: never more than N running across workers,
//! the others wait without a worker slot (another workflow keeps running)
//! and are released by the attempts that end, not by a poll (no promotion
//! loop runs in this test).

mod common;

use std::time::Duration;

use common::TestEnv;
use common::worker_process::*;
use serde_json::json;

const FLOWS: &str = r#"import time
from runeflow import workflow

@workflow(max_concurrency=2)
def capped(i: int):
    time.sleep(0.4)
    return i

@workflow
def free(i: int):
    return i
"#;

#[tokio::test]
async fn at_most_n_run_and_other_workflows_keep_running() {
    let env = TestEnv::new().await;
    env.put_files(&[("limits/flows.py", FLOWS)]).await;
    // Two workers with 3 slots each: 6 slots for a limit of 2.
    let workers = [
        WorkerProcess::spawn(&env, "a", &[("RUNEFLOW_CONCURRENCY", "3")]),
        WorkerProcess::spawn(&env, "b", &[("RUNEFLOW_CONCURRENCY", "3")]),
    ];
    let mut capped = Vec::new();
    for i in 0..10 {
        capped.push(submit(&env, "capped", json!({"i": i})).await);
    }
    let mut free = Vec::new();
    for i in 0..5 {
        free.push(submit(&env, "free", json!({"i": i})).await);
    }

    // Sample the running count until every capped execution is final.
    let mut most = 0;
    let mut samples = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let running = env
            .count(
                "SELECT count(*) FROM executions WHERE workflow_name = 'capped' AND status = 'running'",
            )
            .await;
        most = most.max(running);
        samples += 1;
        let left = env
            .count(
                "SELECT count(*) FROM executions WHERE workflow_name = 'capped'
                 AND status NOT IN ('success', 'failed', 'timeout', 'cancelled')",
            )
            .await;
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{left} capped executions never finished; logs:\n{}\n{}",
            workers[0].log(),
            workers[1].log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("most capped executions running at once: {most} ({samples} samples)");
    assert!(most <= 2, "{most} capped executions ran at once");
    assert_eq!(most, 2, "the limit was never used in full");

    let mut last_capped_start = None;
    for id in &capped {
        let e = wait_final(&env, id, Duration::from_secs(5)).await;
        assert_eq!(e["status"], "success", "{e}");
        let started: chrono::DateTime<chrono::Utc> =
            e["started_at"].as_str().unwrap().parse().unwrap();
        last_capped_start = last_capped_start.max(Some(started));
    }
    // The free workflow's executions did not wait behind the capped ones:
    // all of them finished before the last capped one started.
    for id in &free {
        let e = wait_final(&env, id, Duration::from_secs(5)).await;
        assert_eq!(e["status"], "success", "{e}");
        let finished: chrono::DateTime<chrono::Utc> =
            e["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(
            Some(finished) < last_capped_start,
            "a free execution finished at {finished}, after the last capped start {last_capped_start:?}"
        );
    }
    // Waiting executions went back to the queue, each push a job of its own.
    let requeued = env
        .count("SELECT count(*) FROM executions WHERE workflow_name = 'capped' AND requeues > 0")
        .await;
    println!("capped executions that waited for a slot: {requeued}");
    assert!(requeued > 0, "no capped execution ever waited");
    drop(workers);
    env.cleanup().await;
}

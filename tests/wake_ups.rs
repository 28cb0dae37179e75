//! No job waits for a poll or a heartbeat while a worker has a free slot:
//! 1 000 back-to-back executions to two workers whose poll is 60 s, and
//! every job is fetched by a fetch that its wake-up started, never by one
//! that something else (a heartbeat) started after the wake-up was lost.
//! The workers count how each job was fetched (`wake::fetch_counts`); no
//! timing is asserted.
//!
//! Alone in its file: the counts are per process.

mod common;

use common::{TestEnv, test_worker_config};
use runeflow_worker::wake::fetch_counts;
use serde_json::json;

const RUNS: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn back_to_back_jobs_are_all_fetched_by_their_wake_up() {
    let env = TestEnv::new().await;
    env.put_files(&[(
        "flows/noop.py",
        "from runeflow import workflow\n\n\n@workflow\ndef noop():\n    return 1\n",
    )])
    .await;
    let config = runeflow_worker::WorkerConfig {
        poll_ms: 60_000,
        ..test_worker_config()
    };
    let workers = [
        env.start_worker(config.clone()).await,
        env.start_worker(config).await,
    ];
    // Both workers registered and warm before counting.
    for _ in 0..10 {
        let e = env.execute("noop", json!({})).await;
        assert_eq!(e["status"], "success", "{e}");
    }
    let first_counted = env.count("SELECT count(*) FROM executions").await;
    let before = fetch_counts();
    for _ in 0..RUNS {
        let e = env.execute("noop", json!({})).await;
        assert_eq!(e["status"], "success", "{e}");
    }
    let after = fetch_counts();
    let fetched = (after.by_wake_up - before.by_wake_up)
        + (after.by_resend - before.by_resend)
        + (after.otherwise - before.otherwise);
    println!(
        "{RUNS} jobs: {} fetched by their wake-up, {} by a fetch sent again after a wake-up \
         arrived during it ({} resends), {} otherwise, {} of those stranded",
        after.by_wake_up - before.by_wake_up,
        after.by_resend - before.by_resend,
        after.resends - before.resends,
        after.otherwise - before.otherwise,
        after.stranded - before.stranded,
    );
    // For the reader only (speed is the bench's business, not asserted).
    let max_ms = env
        .count(&format!(
            "SELECT (max(extract(epoch FROM started_at - queued_at)) * 1000)::bigint FROM \
             (SELECT * FROM executions ORDER BY queued_at OFFSET {first_counted}) counted"
        ))
        .await;
    let over_50 = env
        .count(&format!(
            "SELECT count(*) FROM (SELECT * FROM executions ORDER BY queued_at \
             OFFSET {first_counted}) counted WHERE started_at - queued_at > interval '50 ms'"
        ))
        .await;
    println!("slowest queued -> started: {max_ms} ms; {over_50} over 50 ms");
    assert!(fetched >= RUNS, "only {fetched} of {RUNS} jobs counted");
    assert_eq!(
        after.stranded - before.stranded,
        0,
        "jobs whose wake-up a worker received and did not answer with a fetch: they waited \
         for a heartbeat or the poll"
    );
    for worker in workers {
        worker.stop().await;
    }
    env.cleanup().await;
}

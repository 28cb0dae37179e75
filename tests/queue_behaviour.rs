//! How Runeflow copes with apalis-redis 1.0's defaults (DESIGN.md, "Jobs"):
//! wake-up without polling, a sane Redis response timeout, unique worker
//! names, idempotency keys that last, and trimmed task records.

mod common;

use std::time::{Duration, Instant};

use common::{TestEnv, test_worker_config};
use runeflow_shared::jobs::queue_name;
use serde_json::json;

const NOOP: &str = "from runeflow import workflow\n\n@workflow\ndef noop():\n    return 'ok'\n";

/// apalis only polls; we publish a wake-up on push. With a 60 s poll, a job
/// for an idle worker still starts at once, and so does each of 100 jobs
/// sent back to back to two workers, each while the worker that ran the one
/// before is still finishing it (its flush, its ack, its next fetch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_are_woken_by_a_push_not_by_polling() {
    let env = TestEnv::new().await;
    let slow_poll = || runeflow_worker::WorkerConfig {
        poll_ms: 60_000,
        ..test_worker_config()
    };
    let worker = env.start_worker(slow_poll()).await;
    let second = env.start_worker(slow_poll()).await;
    env.put_files(&[("flows/noop.py", NOOP)]).await;
    // The first job can race the worker's subscription; later ones cannot.
    env.execute("noop", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..100 {
        let started = Instant::now();
        let e = env.execute("noop", json!({})).await;
        assert_eq!(e["status"], "success");
        slowest = slowest.max(started.elapsed());
    }
    println!("slowest of 100 with a 60 s poll: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(10),
        "waited for a poll: {slowest:?}"
    );
    worker.stop().await;
    second.stop().await;
    env.cleanup().await;
}

/// The crate's default connection gives up after 500 ms; ours waits 5 s, so
/// a briefly busy Redis (here: DEBUG SLEEP 1) is not an error.
#[tokio::test]
async fn our_redis_connection_survives_a_one_second_stall() {
    let port = common::free_port();
    let mut server = common::start_redis(port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let mut conn = None;
    for _ in 0..100 {
        if let Ok(c) = runeflow_shared::redis_conn::connect(&url).await {
            conn = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conn = conn.expect("connect to the private redis");
    let mut sleeper = conn.clone();
    let stall = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1)
            .query_async::<()>(&mut sleeper)
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut asker = conn.clone();
    let started = Instant::now();
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut asker).await;
    assert_eq!(
        pong.as_deref(),
        Ok("PONG"),
        "a 1 s stall must not fail the call"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the call really waited"
    );
    stall.await.unwrap().unwrap();
    server.kill().ok();
    server.wait().ok();
}

/// A restarted worker must not reuse a name apalis still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_names_are_unique_and_a_restart_works_at_once() {
    let config = test_worker_config();
    let a = config.resolve_name();
    let b = config.resolve_name();
    assert_ne!(a, b);
    assert!(
        a.contains(&std::process::id().to_string()),
        "{a} names the process"
    );

    let env = TestEnv::new().await;
    env.put_files(&[("flows/noop.py", NOOP)]).await;
    let first = env.start_worker(test_worker_config()).await;
    assert_eq!(env.execute("noop", json!({})).await["status"], "success");
    first.stop().await;
    let second = env.start_worker(test_worker_config()).await;
    assert_eq!(env.execute("noop", json!({})).await["status"], "success");
    second.stop().await;
    env.cleanup().await;
}

/// The idempotency key outlives the push (apalis's `None` expires it at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_last_and_finished_records_are_trimmed() {
    let env = TestEnv::new().await;
    env.put_files(&[("flows/noop.py", NOOP)]).await;
    let worker = env.start_worker(test_worker_config()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            env.execute("noop", json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    worker.stop().await;
    let queue = queue_name(&env.name);
    let mut conn = env.store().connection();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{queue}:idempotency:{}", ids[0]))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 24 * 3600, "idempotency key TTL {ttl}");

    // Acks are applied in batches after the handler: wait for the done set.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done: usize = redis::cmd("SCARD")
            .arg(format!("{queue}:done"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if done >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "acks never landed ({done})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A task waiting for a retry must survive trimming.
    let _: () = redis::cmd("SADD")
        .arg(format!("{queue}:done"))
        .arg("retrying")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{queue}:meta:retrying"))
        .arg("status")
        .arg("Failed")
        .arg("done_at")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let config = runeflow_worker::run::queue_config(&env.name, &test_worker_config());
    let removed = runeflow_worker::janitor::trim_once(&mut conn, &config, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 3);
    let done: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{queue}:done"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(done, ["retrying"]);
    for id in &ids {
        let meta: bool = redis::cmd("EXISTS")
            .arg(format!("{queue}:meta:{id}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!meta, "meta of {id} trimmed");
        let data: bool = redis::cmd("HEXISTS")
            .arg(format!("{queue}:data"))
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!data, "data of {id} trimmed");
    }
    // PostgreSQL still has every outcome.
    for id in &ids {
        assert_eq!(
            env.get(&format!("/api/executions/{id}")).await.json()["status"],
            "success"
        );
    }
    let _: () = redis::cmd("DEL")
        .arg(format!("{queue}:meta:retrying"))
        .query_async(&mut conn)
        .await
        .unwrap();
    env.cleanup().await; // deletes the queue's keys too
}

//! Storage stays bounded (issue 9, I): blobs nothing references get an
//! expiry as soon as the last path stops pointing at them (no `init`
//! needed), apalis records of failed tasks are trimmed, executions past the
//! retention are deleted in batches (also by several processes at once),
//! and execution listings carry summaries, not logs or results.

mod common;

use common::{TestEnv, test_worker_config};
use runeflow_shared::hash::content_hash;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

async fn ttl(env: &TestEnv, content: &str) -> i64 {
    let mut conn = env.store().connection();
    redis::cmd("TTL")
        .arg(format!(
            "{}:blob:{}",
            env.store().prefix(),
            content_hash(content.as_bytes())
        ))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreferenced_blobs_expire_without_init() {
    let env = TestEnv::new().await;
    let (x, y, z) = ("X = 1\n", "Y = 2\n", "Z = 3\n");
    env.put_files(&[("a.py", x), ("b.py", x)]).await;
    assert_eq!(ttl(&env, x).await, -1, "a live blob never expires");
    // a.py moves on; b.py still points at x.
    env.put_files(&[("a.py", y)]).await;
    assert_eq!(ttl(&env, x).await, -1, "b.py still references it");
    // The last reference goes: x expires after the grace period.
    env.delete("b.py").await;
    let left = ttl(&env, x).await;
    assert!(left > 0 && left <= 24 * 3600, "ttl {left}");
    // Referenced again: the expiry is gone.
    env.put_files(&[("c.py", x)]).await;
    assert_eq!(ttl(&env, x).await, -1);
    assert_eq!(ttl(&env, y).await, -1);
    env.delete("a.py").await;
    assert!(
        ttl(&env, y).await > 0,
        "deleting the only path expires its blob"
    );

    // A store written before the reference counts existed (no refs hash):
    // the counts are rebuilt from the index, so an entry shared by two
    // paths is not expired when one of them moves on.
    env.put_files(&[("d.py", x)]).await;
    let mut conn = env.store().connection();
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:modules:refs", env.store().prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    env.put_files(&[("c.py", z)]).await;
    assert_eq!(ttl(&env, x).await, -1, "d.py still references it");
    env.put_files(&[("d.py", z)]).await;
    assert!(ttl(&env, x).await > 0);
    assert_eq!(ttl(&env, z).await, -1);

    // Every path still reads its content through the API.
    assert_eq!(env.get("/api/files/c.py").await.text(), z);
    assert_eq!(env.get("/api/files/d.py").await.text(), z);
    env.cleanup().await;
}

/// Records of tasks that failed for good (apalis's dead set, status
/// `Failed`) are trimmed like done and killed ones; a failed task waiting
/// for a retry, and a recent one, are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_task_records_are_trimmed() {
    let env = TestEnv::new().await;
    let config = runeflow_worker::run::queue_config(&env.name, &test_worker_config());
    let mut conn = env.store().connection();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tasks = [
        ("failed-old", 0),
        ("failed-retrying", 0),
        ("failed-recent", now),
    ];
    for (id, done_at) in tasks {
        let _: () = redis::pipe()
            .cmd("SADD")
            .arg(config.dead_jobs_set())
            .arg(id)
            .cmd("HSET")
            .arg(config.job_data_hash())
            .arg(id)
            .arg("{}")
            .cmd("HSET")
            .arg(format!("{}:{id}", config.job_meta_hash()))
            .arg("status")
            .arg("Failed")
            .arg("attempts")
            .arg(25)
            .arg("done_at")
            .arg(done_at)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("ZADD")
        .arg(config.scheduled_jobs_set())
        .arg(now + 3600)
        .arg("failed-retrying")
        .query_async(&mut conn)
        .await
        .unwrap();
    let removed = runeflow_worker::janitor::trim_once(
        &mut conn,
        &config,
        runeflow_worker::janitor::RETENTION,
    )
    .await
    .unwrap();
    assert_eq!(removed, 1);
    let mut dead: Vec<String> = redis::cmd("SMEMBERS")
        .arg(config.dead_jobs_set())
        .query_async(&mut conn)
        .await
        .unwrap();
    dead.sort();
    assert_eq!(dead, ["failed-recent", "failed-retrying"]);
    for (id, kept) in [
        ("failed-old", false),
        ("failed-retrying", true),
        ("failed-recent", true),
    ] {
        let data: bool = redis::cmd("HEXISTS")
            .arg(config.job_data_hash())
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        let meta: bool = redis::cmd("EXISTS")
            .arg(format!("{}:{id}", config.job_meta_hash()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((data, meta), (kept, kept), "{id}");
    }
    env.cleanup().await; // deletes the queue's keys too
}

/// Inserts `n` executions queued `age` ago (UUIDv7 ids of that time, as
/// the API makes them), each with logs and a result.
async fn insert_executions(env: &TestEnv, n: usize, age: chrono::Duration) -> Vec<Uuid> {
    let at = chrono::Utc::now() - age;
    let ids: Vec<Uuid> = (0..n)
        .map(|i| {
            let ms = at.timestamp_millis() as u64 + i as u64;
            Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                ((ms % 1000) * 1_000_000) as u32,
            ))
        })
        .collect();
    env.db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO executions (id, workflow_name, workflow_path, function_name, status,
                                     queued_at, finished_at, result, logs, error_type,
                                     error_message, error_traceback)
             SELECT id, 'report', 'flows/report.py', 'report', 'failed', $2, $2,
                    '{\"big\": \"result\"}'::jsonb, repeat('log line\n', 1000), 'ValueError',
                    repeat('m', 5000), 'Traceback ...'
             FROM unnest($1::uuid[]) AS id",
            [ids.clone().into(), at.fixed_offset().into()],
        ))
        .await
        .unwrap();
    ids
}

/// Executions older than the retention go, in batches of 1 000, also when
/// two processes run the janitor at once; newer ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_past_retention_are_deleted_in_batches() {
    let env = TestEnv::new().await;
    insert_executions(&env, 2_500, chrono::Duration::days(40)).await;
    let recent = insert_executions(&env, 10, chrono::Duration::days(29)).await;
    let (a, b) = tokio::join!(
        runeflow_api::retention::run_once(&env.db, 30),
        runeflow_api::retention::run_once(&env.db, 30)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2_500);
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 10);
    for id in &recent {
        assert_eq!(env.get(&format!("/api/executions/{id}")).await.status, 200);
    }
    // 0 keeps everything.
    assert_eq!(
        runeflow_api::retention::run_once(&env.db, 0).await.unwrap(),
        0
    );
    assert_eq!(
        runeflow_api::retention::run_once(&env.db, 1).await.unwrap(),
        10
    );
    env.cleanup().await;
}

/// `GET /api/executions` answers summaries (no logs, result, parameters
/// or traceback; a short error message); one execution keeps everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_listings_are_summaries() {
    let env = TestEnv::new().await;
    let ids = insert_executions(&env, 3, chrono::Duration::minutes(5)).await;
    let page = env.get("/api/executions?limit=2").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let page = page.json();
    let list = page["executions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], json!(ids[2]));
    for e in list {
        let fields = e.as_object().unwrap();
        for absent in ["logs", "result", "parameters", "error", "error_traceback"] {
            assert!(!fields.contains_key(absent), "{absent} in {e}");
        }
        assert_eq!(e["status"], "failed");
        assert_eq!(e["workflow"], "report");
        assert_eq!(e["error_type"], "ValueError");
        assert_eq!(e["error_message"].as_str().unwrap().len(), 200);
        assert!(e["queued_at"].is_string() && e["finished_at"].is_string());
    }
    assert!(
        page.to_string().len() < 4096,
        "a page of 2 summaries is small"
    );
    let next = env
        .get(&format!(
            "/api/executions?limit=2&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(next["executions"][0]["id"], json!(ids[0]));
    assert_eq!(next["next_cursor"], Value::Null);
    let filtered = env
        .get("/api/executions?status=success&workflow=report")
        .await
        .json();
    assert_eq!(filtered["executions"], json!([]));
    let full = env.get(&format!("/api/executions/{}", ids[0])).await.json();
    assert_eq!(full["logs"].as_str().unwrap().len(), 9_000);
    assert_eq!(full["result"], json!({"big": "result"}));
    assert_eq!(full["error"]["traceback"], "Traceback ...");
    env.cleanup().await;
}

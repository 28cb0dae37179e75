//! Jobs the worker cannot read (issue 9 D, "no poison job"): a payload that
//! names an execution fails it at once (`UnreadableJob`, attempt 1, the
//! finished notice published); one that names none is acknowledged and
//! dropped. Neither is left to apalis's retries, and the worker goes on.
//!
//! Real PostgreSQL, Redis and python3; raw payloads are pushed straight
//! into the apalis queue, as a foreign or corrupted producer would.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use apalis::prelude::{TaskBuilder, TaskId};
use common::{TestEnv, test_worker_config};
use futures::SinkExt;
use redis::AsyncCommands;
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use common::worker_process::*;

const HELLO: &str = "from runeflow import workflow\n\n@workflow\ndef hello(name: str = 'world'):\n    return {'greeting': f'hello {name}'}\n";

fn queue_config(env: &TestEnv) -> apalis_redis::Config {
    runeflow_queue::config::config(&env.name)
}

/// Pushes `payload` as it is (no encoding) under a fresh task id; returns it.
async fn push_raw(env: &TestEnv, payload: &[u8]) -> String {
    let mut storage = apalis_redis::RedisStorage::<Vec<u8>>::new(env.store().connection())
        .with_config(queue_config(env));
    let task_id = Uuid::now_v7().to_string();
    let task = TaskBuilder::new(payload.to_vec())
        .task_id(TaskId::from_string(task_id.clone()))
        .build();
    storage.send(task).await.expect("push a raw payload");
    task_id
}

/// A `pending` row as the API inserts it, but with no job pushed.
async fn pending_row(env: &TestEnv) -> Uuid {
    let id = Uuid::now_v7();
    env.db
        .execute_unprepared(&format!(
            "INSERT INTO executions (id, workflow_name, workflow_path, function_name, parameters,
                                     status, workspace_gen, queued_at)
             VALUES ('{id}', 'hello', 'flows/hello.py', 'hello', '{{}}', 'pending', 0, now())"
        ))
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_jobs_fail_fast_or_are_dropped_and_the_worker_goes_on() {
    let env = TestEnv::new().await;
    env.put_files(&[("flows/hello.py", HELLO)]).await;
    let mut finished = env.waiters().subscribe();
    let mut config = test_worker_config();
    config.concurrency = 1;
    let worker = env.start_worker(config).await;

    // Each names a real pending execution; none is a readable RunWorkflow.
    let (a, b, c) = (
        pending_row(&env).await,
        pending_row(&env).await,
        pending_row(&env).await,
    );
    let started = Instant::now();
    // Only the id (a job of before `run` was required).
    push_raw(&env, json!({"execution_id": a}).to_string().as_bytes()).await;
    // The wrong shape.
    push_raw(
        &env,
        json!({"execution_id": b, "workspace": 7, "run": "x"})
            .to_string()
            .as_bytes(),
    )
    .await;
    // A RunWorkflow whose run details are unreadable.
    push_raw(
        &env,
        json!({"execution_id": c, "workspace": {"id": "", "generation": 0},
               "run": {"path": 5, "function": [], "parameters": {}}})
        .to_string()
        .as_bytes(),
    )
    .await;
    // Naming no execution: not JSON, not an object, an id that is no uuid.
    let mut garbage = Vec::new();
    for payload in [
        &b"\xff not json at all"[..],
        b"[1, 2, 3]",
        br#"{"execution_id": "nope"}"#,
    ] {
        garbage.push(push_raw(&env, payload).await);
    }

    for id in [a, b, c] {
        let e = wait_final(&env, &id.to_string(), Duration::from_secs(20)).await;
        assert_eq!(e["status"], "failed", "{e}");
        assert_eq!(e["error"]["type"], "UnreadableJob", "{e}");
        assert_eq!(e["attempt"], 1, "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("could not read the queued job"),
            "{message}"
        );
    }
    let took = started.elapsed();
    println!("three unreadable jobs failed within {took:?}");
    assert!(took < Duration::from_secs(10), "not fast: {took:?}");

    // A finished notice for each.
    let mut announced = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while announced.len() < 3 {
        match tokio::time::timeout_at(deadline, finished.recv()).await {
            Ok(Ok(Some(notice))) => {
                if [a, b, c].contains(&notice.id) {
                    announced.insert(notice.id);
                }
            }
            Ok(_) => {}
            Err(_) => panic!("finished notices missing: got {announced:?} of {a}, {b}, {c}"),
        }
    }

    // The worker still runs readable jobs.
    let e = env.execute("hello", json!({"name": "after"})).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["result"]["greeting"], "hello after");

    // The garbage was acknowledged as done, not failed into a retry.
    let config = queue_config(&env);
    let mut conn = env.store().connection();
    for task_id in &garbage {
        let done: bool = conn
            .sismember(config.done_jobs_set(), task_id)
            .await
            .unwrap();
        assert!(done, "garbage task {task_id} not acknowledged as done");
    }
    assert_eq!(
        env.count("SELECT count(*) FROM executions WHERE status = 'pending'")
            .await,
        0
    );

    worker.stop().await;
    env.cleanup().await;
}

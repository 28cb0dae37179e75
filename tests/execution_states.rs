//! The execution statements on real PostgreSQL: each moves a row only
//! along its declared transition, and conditionally (a final row, another
//! attempt or a repeated call changes nothing).

mod common;

use common::TestEnv;
use runeflow_shared::executions::Status;
use runeflow_shared::executions::statements::{self, NewExecution, Outcome};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

async fn pending(env: &TestEnv) -> Uuid {
    let new = NewExecution {
        id: Uuid::now_v7(),
        workflow_name: "hello".into(),
        workflow_path: "flows/hello.py".into(),
        function_name: "hello".into(),
        parameters: serde_json::json!({"name": "x"}),
        workspace_gen: 3,
        timeout_seconds: Some(2.5),
        run_at: None,
        retry_policy: None,
        max_concurrency: None,
        schedule_tick: None,
    };
    assert_eq!(
        statements::insert(&env.db, &new).await.unwrap(),
        Some(Status::Pending)
    );
    new.id
}

fn success(logs: &str) -> Outcome<'_> {
    Outcome {
        status: Status::Success,
        result: Some(serde_json::json!(1)),
        error: None,
        logs,
        logs_truncated: false,
        duration_ms: Some(5),
    }
}

#[tokio::test]
async fn insert_start_finish_and_their_conditions() {
    let env = TestEnv::new().await;
    let id = pending(&env).await;
    let row = statements::get(&env.db, id).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Pending);
    assert_eq!((row.attempt, row.workspace_gen), (0, 3));
    assert_eq!(row.timeout_seconds, Some(2.5));

    let row = statements::start(&env.db, id, "w1").await.unwrap().unwrap();
    assert_eq!((row.status, row.attempt), (Status::Running, 1));
    // A redelivery starts the next attempt; the first may no longer finish.
    let row = statements::start(&env.db, id, "w2").await.unwrap().unwrap();
    assert_eq!(row.attempt, 2);
    assert!(
        statements::finish(&env.db, id, 1, success("late"))
            .await
            .unwrap()
            .is_none()
    );
    let row = statements::finish(&env.db, id, 2, success("ok"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.logs.as_str()), (Status::Success, "ok"));
    // Final: nothing starts, finishes, cancels or notes it again.
    assert!(
        statements::start(&env.db, id, "w3")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        statements::finish(&env.db, id, 2, success("again"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(statements::cancel(&env.db, id).await.unwrap().is_none());
    statements::note_fault(&env.db, id, "x").await.unwrap();
    let row = statements::get(&env.db, id).await.unwrap().unwrap();
    assert_eq!((row.status, row.last_fault), (Status::Success, None));
    // An outcome that is not final is refused before PostgreSQL.
    let other = pending(&env).await;
    statements::start(&env.db, other, "w").await.unwrap();
    let not_final = Outcome {
        status: Status::Pending,
        ..success("")
    };
    assert!(
        statements::finish(&env.db, other, 1, not_final)
            .await
            .is_err()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn cancel_takes_scheduled_pending_and_running_rows_once() {
    let env = TestEnv::new().await;
    let id = pending(&env).await;
    let row = statements::cancel(&env.db, id).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Cancelled);
    assert_eq!(row.error_type.as_deref(), Some("Cancelled"));
    assert_eq!((row.duration_ms, row.attempt), (Some(0), 0));
    assert!(row.finished_at.is_some());
    assert!(
        statements::cancel(&env.db, id).await.unwrap().is_none(),
        "a repeated cancel changes nothing"
    );
    assert!(
        statements::start(&env.db, id, "w").await.unwrap().is_none(),
        "a cancelled execution never starts"
    );

    // `scheduled` (delayed runs) is a legal stored status.
    let later = pending(&env).await;
    env.db
        .execute_unprepared(&format!(
            "UPDATE executions SET status = 'scheduled' WHERE id = '{later}'"
        ))
        .await
        .unwrap();
    assert_eq!(
        statements::get(&env.db, later)
            .await
            .unwrap()
            .unwrap()
            .status,
        Status::Scheduled
    );
    let row = statements::cancel(&env.db, later).await.unwrap().unwrap();
    assert_eq!(row.status, Status::Cancelled);

    // A running one, whatever its attempt; then only that attempt's worker
    // adds its logs, and no outcome is recorded over the cancel.
    let running = pending(&env).await;
    statements::start(&env.db, running, "w1").await.unwrap();
    statements::start(&env.db, running, "w2").await.unwrap();
    let row = statements::cancel(&env.db, running).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempt), (Status::Cancelled, 2));
    assert!(row.duration_ms.is_some_and(|ms| ms >= 0));
    assert!(
        statements::finish(&env.db, running, 2, success("too late"))
            .await
            .unwrap()
            .is_none(),
        "the cancelled attempt's outcome is not recorded"
    );
    assert!(
        statements::keep_cancelled_logs(&env.db, running, 1, "old", false, 9)
            .await
            .unwrap()
            .is_none(),
        "attempt 1 no longer owns the row"
    );
    let row = statements::keep_cancelled_logs(&env.db, running, 2, "partial", true, 42)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            row.status,
            row.logs.as_str(),
            row.logs_truncated,
            row.duration_ms
        ),
        (Status::Cancelled, "partial", true, Some(42))
    );
    env.cleanup().await;
}

#[tokio::test]
async fn stale_list_and_retention_statements() {
    let env = TestEnv::new().await;
    let (a, b, c) = (
        pending(&env).await,
        pending(&env).await,
        pending(&env).await,
    );
    statements::start(&env.db, b, "w").await.unwrap();
    statements::start(&env.db, c, "w").await.unwrap();
    statements::finish(&env.db, c, 1, success(""))
        .await
        .unwrap();
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    let stale: Vec<Uuid> = statements::stale(&env.db, later, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stale, [a, b], "pending and running rows, oldest first");
    assert!(
        statements::stale(&env.db, later - chrono::Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );

    #[derive(Debug, sea_orm::FromQueryResult)]
    struct Summary {
        id: Uuid,
        status: Status,
    }
    let filter = statements::ListFilter {
        status: Some(Status::Running),
        limit: 10,
        ..Default::default()
    };
    let running: Vec<Summary> = statements::list(&env.db, &filter).await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!((running[0].id, running[0].status), (b, Status::Running));
    let page = statements::ListFilter {
        cursor: Some(c),
        limit: 10,
        ..Default::default()
    };
    let below: Vec<Summary> = statements::list(&env.db, &page).await.unwrap();
    assert_eq!(below.iter().map(|s| s.id).collect::<Vec<_>>(), [b, a]);

    assert_eq!(
        statements::delete_batch_queued_before(&env.db, later, 2)
            .await
            .unwrap(),
        2
    );
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn listing_by_an_unknown_status_is_a_400_naming_the_accepted_ones() {
    let env = TestEnv::new().await;
    let r = env.get("/api/executions?status=done").await;
    assert_eq!(
        r.status,
        axum::http::StatusCode::BAD_REQUEST,
        "{}",
        r.text()
    );
    assert_eq!(r.error_code(), "invalid_query");
    assert!(r.text().contains("pending, running"), "{}", r.text());
    let r = env.get("/api/executions?status=scheduled").await;
    assert_eq!(r.status, axum::http::StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["executions"], serde_json::json!([]));
    env.cleanup().await;
}

/// Worker faults have their own bound: starts beyond one per try (first run
/// or retry) count, retries of user failures do not.
#[tokio::test]
async fn worker_faults_are_bounded_apart_from_retries() {
    use runeflow_worker::record::{self, Start};
    let env = TestEnv::new().await;
    let id = pending(&env).await;
    let max_attempts = 2;
    started(&env, id, max_attempts, 1).await;
    // The first try fails and is retried: not a fault.
    let failed = Outcome {
        status: Status::Failed,
        error: Some(("ValueError", "flaky", None)),
        result: None,
        ..success("")
    };
    let row = statements::retry_later(&env.db, id, 1, failed, chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status, row.retry, row.requeues),
        (Status::Scheduled, 1, 1)
    );
    assert_eq!(statements::promote_due(&env.db, 10).await.unwrap().len(), 1);
    started(&env, id, max_attempts, 2).await;
    // One redelivery (a fault) is within the bound of 2...
    started(&env, id, max_attempts, 3).await;
    // ...a second one reaches it: given up as WorkerLost, the retry not counted.
    let gave_up = record::start(&env.db, id, "w", max_attempts, None)
        .await
        .unwrap();
    assert!(matches!(gave_up, Start::GaveUp), "{gave_up:?}");
    let row = statements::get(&env.db, id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.error_type.as_deref()),
        (Status::Failed, Some("WorkerLost"))
    );
    assert_eq!(row.attempts.as_array().map(Vec::len), Some(1));
    env.cleanup().await;
}

/// Starts `id` and asserts it runs as attempt `n`.
async fn started(env: &TestEnv, id: Uuid, max_attempts: i32, n: i32) {
    use runeflow_worker::record::{self, Start};
    match record::start(&env.db, id, "w", max_attempts, None)
        .await
        .unwrap()
    {
        Start::Run(row) => assert_eq!(row.attempt, n),
        other => panic!("start {n}: {other:?}"),
    }
}

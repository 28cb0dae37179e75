//! `Idempotency-Key` (issue 10, item 6) on real PostgreSQL and Redis: the
//! same key returns the original execution (200), the same key with
//! another body is a 422, 20 concurrent requests with one key create one
//! execution row, on `POST /api/executions` and on HTTP endpoints alike.

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::{Reply, TestEnv, authed};
use serde_json::{Value, json};

const FLOWS: &str = r#"from runeflow import workflow

@workflow(endpoint=True)
def charge(order: str, amount: int = 1):
    return amount
"#;

async fn setup() -> TestEnv {
    let env = TestEnv::new().await;
    env.put_files(&[("billing/flows.py", FLOWS)]).await;
    env
}

async fn post(env: &TestEnv, uri: &str, key: &str, body: &Value) -> Reply {
    env.call(
        authed("POST", uri)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_same_key_returns_the_original_execution_and_another_body_is_a_422() {
    let env = setup().await;
    let body = json!({"workflow": "charge", "parameters": {"order": "A-1", "amount": 5}});
    let first = post(&env, "/api/executions", "order-A-1", &body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_owned();

    // Same request, keys in another order: 200 with the same execution.
    let same = json!({"parameters": {"amount": 5, "order": "A-1"}, "workflow": "charge"});
    let again = post(&env, "/api/executions", "order-A-1", &same).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(
        again.json()["parameters"],
        json!({"order": "A-1", "amount": 5})
    );

    let other = json!({"workflow": "charge", "parameters": {"order": "A-1", "amount": 6}});
    let r = post(&env, "/api/executions", "order-A-1", &other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("Idempotency-Key 'order-A-1'"), "{message}");
    assert!(message.contains(&id), "{message}");

    // Another key is another execution; no key, as before.
    let r = post(&env, "/api/executions", "order-A-2", &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_ne!(r.json()["id"], id.as_str());
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 2);

    // A key past its 24 h window is ignored: the request runs again.
    env.count("WITH u AS (UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'order-A-1' RETURNING 1) SELECT count(*) FROM u")
        .await;
    let r = post(&env, "/api/executions", "order-A-1", &other).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_ne!(r.json()["id"], id.as_str());
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 3);
    // And the purge deletes expired rows only.
    env.count("WITH u AS (UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'order-A-2' RETURNING 1) SELECT count(*) FROM u")
        .await;
    let purged = runeflow_shared::executions::idempotency::purge_expired(&env.db)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(env.count("SELECT count(*) FROM idempotency_keys").await, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn malformed_keys_are_a_400() {
    let env = setup().await;
    let body = json!({"workflow": "charge", "parameters": {"order": "A"}});
    for key in ["k".repeat(256), "tab\tkey".to_owned()] {
        let r = post(&env, "/api/executions", &key, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert_eq!(r.error_code(), "invalid_idempotency_key");
    }
    let r = post(&env, "/api/executions", &"k".repeat(255), &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 1);
    env.cleanup().await;
}

/// 20 requests racing with one key: one execution row, and every answer
/// names it.
async fn race(env: &TestEnv, uri: &str, body: Value) -> Vec<Reply> {
    let calls = (0..20).map(|_| {
        let body = body.clone();
        async move { post(env, uri, "race-1", &body).await }
    });
    futures::future::join_all(calls).await
}

fn one_execution(replies: &[Reply]) -> String {
    let mut ids: Vec<String> = replies
        .iter()
        .map(|r| {
            assert!(
                r.status == StatusCode::ACCEPTED || r.status == StatusCode::OK,
                "{} {}",
                r.status,
                r.text()
            );
            r.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.status == StatusCode::ACCEPTED)
            .count(),
        1,
        "exactly one request created it"
    );
    ids.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_requests_with_one_key_create_one_execution() {
    let env = setup().await;
    let replies = race(
        &env,
        "/api/executions",
        json!({"workflow": "charge", "parameters": {"order": "R"}}),
    )
    .await;
    let id = one_execution(&replies);
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 1);
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM idempotency_keys WHERE execution_id = '{id}' AND scope = 'executions'"
        ))
        .await,
        1
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_honour_keys_too_in_their_own_scope() {
    let env = setup().await;
    let replies = race(&env, "/api/endpoints/charge", json!({"order": "E"})).await;
    let id = one_execution(&replies);
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 1);
    let r = post(
        &env,
        "/api/endpoints/charge",
        "race-1",
        &json!({"order": "F"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // The same key on /api/executions is another scope: a new execution.
    let r = post(
        &env,
        "/api/executions",
        "race-1",
        &json!({"workflow": "charge", "parameters": {"order": "E"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_ne!(r.json()["id"], id.as_str());
    assert_eq!(
        env.count("SELECT count(*) FROM idempotency_keys WHERE scope = 'endpoint:charge'")
            .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 2);
    env.cleanup().await;
}

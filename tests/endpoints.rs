//! HTTP endpoints (issue 10, item 4) on real PostgreSQL, Redis and a real
//! worker: an endpoint key runs the workflow and `?wait=` returns its
//! result; 422 on bad parameters; a workflow without `endpoint=True` is a
//! 404; a missing, wrong, other workflow's or revoked key is a 401; a key
//! listing never shows the key.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Reply, TestEnv, test_worker_config};
use serde_json::json;

const FLOWS: &str = r#"from runeflow import workflow

@workflow(endpoint=True)
def greet(name: str, times: int = 1):
    return {"greeting": ("hello " + name + " ") * times}

@workflow(endpoint=True)
def other():
    return "other"

@workflow
def private():
    return "not exposed"
"#;

async fn setup() -> TestEnv {
    let env = TestEnv::new().await;
    env.put_files(&[("hooks/flows.py", FLOWS)]).await;
    env
}

/// `POST /api/endpoints/{name}` with `X-Runeflow-Key: key` (none when empty)
/// and no bearer token.
async fn call_with_key(env: &TestEnv, uri: &str, key: &str, body: &str) -> Reply {
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json");
    if !key.is_empty() {
        req = req.header("x-runeflow-key", key);
    }
    env.call(req.body(Body::from(body.to_owned())).unwrap())
        .await
}

async fn create_key(env: &TestEnv, workflow: &str, name: &str) -> (String, String) {
    let r = env
        .post_json(
            &format!("/api/workflows/{workflow}/keys"),
            json!({"name": name}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    let key = body["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("rfk_") && key.len() == 68, "{key}");
    (key, body["id"].as_str().expect("id").to_owned())
}

#[tokio::test]
async fn a_key_runs_the_endpoint_and_wait_returns_its_result() {
    let env = setup().await;
    let worker = env.start_worker(test_worker_config()).await;
    let (key, id) = create_key(&env, "greet", "webhook sender").await;

    let r = call_with_key(
        &env,
        "/api/endpoints/greet?wait=60",
        &key,
        r#"{"name": "ada", "times": 2}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["result"], json!({"greeting": "hello ada hello ada "}));
    assert_eq!(body["workflow"], "greet");
    let execution = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM executions WHERE id = '{execution}' AND status = 'success'"
        ))
        .await,
        1
    );

    // Without `wait`: 202 and the id; the bearer token works too.
    let r = env
        .post_json("/api/endpoints/greet", json!({"name": "bob"}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");

    // The key's use is noted; the listing never shows the key or its hash.
    let r = env.get("/api/workflows/greet/keys").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let text = r.text();
    assert!(!text.contains(&key), "the listing shows the key: {text}");
    assert!(
        !text.contains(&key[4..]),
        "the listing shows the key: {text}"
    );
    assert!(!text.contains("hash"), "{text}");
    let keys = r.json()["keys"].as_array().cloned().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["name"], "webhook sender");
    assert!(!keys[0]["last_used_at"].is_null(), "{}", keys[0]);
    assert!(keys[0]["revoked_at"].is_null());
    // Stored as its sha256 only.
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM endpoint_keys WHERE key_hash = encode(sha256('{key}'::bytea), 'hex')"
        ))
        .await,
        1
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM endpoint_keys WHERE key_hash = '{key}'"
        ))
        .await,
        0
    );
    worker.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn bad_parameters_are_a_422_and_a_bad_body_a_400() {
    let env = setup().await;
    let (key, _) = create_key(&env, "greet", "k").await;
    let r = call_with_key(
        &env,
        "/api/endpoints/greet",
        &key,
        r#"{"times": 2, "nope": 1}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("missing required parameters: name"),
        "{message}"
    );
    assert!(message.contains("unknown parameters: nope"), "{message}");
    let r = call_with_key(&env, "/api/endpoints/greet", &key, "[1, 2]").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = call_with_key(&env, "/api/endpoints/greet", &key, "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_body");
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn a_workflow_without_endpoint_true_is_a_404() {
    let env = setup().await;
    let r = env.post_json("/api/endpoints/private", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("endpoint=True"), "{message}");
    let r = env.post_json("/api/endpoints/missing", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    // A key of a non-endpoint workflow does not open it either.
    let (key, _) = create_key(&env, "private", "k").await;
    let r = call_with_key(&env, "/api/endpoints/private", &key, "{}").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn missing_wrong_foreign_and_revoked_keys_are_401() {
    let env = setup().await;
    let (key, id) = create_key(&env, "greet", "k").await;
    let (other_key, _) = create_key(&env, "other", "k").await;
    let body = r#"{"name": "x"}"#;

    for (presented, why) in [
        ("", "no key"),
        ("rfk_0000", "a wrong key"),
        (other_key.as_str(), "another workflow's key"),
    ] {
        let r = call_with_key(&env, "/api/endpoints/greet", presented, body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}: {}", r.text());
        assert_eq!(r.error_code(), "unauthorized", "{why}");
        assert!(!r.text().contains(&other_key), "the key is echoed");
    }
    let r = call_with_key(&env, "/api/endpoints/greet", &key, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    let r = env
        .call(
            common::authed("DELETE", &format!("/api/workflows/greet/keys/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = call_with_key(&env, "/api/endpoints/greet", &key, body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let keys = env.get("/api/workflows/greet/keys").await.json();
    assert!(!keys["keys"][0]["revoked_at"].is_null(), "{keys}");
    // An unknown key id is a 404; key routes need the bearer token.
    let r = env
        .call(
            common::authed(
                "DELETE",
                &format!("/api/workflows/greet/keys/{}", uuid::Uuid::now_v7()),
            )
            .body(Body::empty())
            .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let r = env
        .call(
            Request::builder()
                .uri("/api/workflows/greet/keys")
                .header("x-runeflow-key", &other_key)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 1);
    env.cleanup().await;
}

/// What one run of the `runeflow` binary printed and returned.
async fn runeflow(server: &common::HttpServer, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .args(args)
        .env("RUNEFLOW_URL", &server.url)
        .env("RUNEFLOW_API_TOKEN", common::TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the runeflow binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `runeflow endpoints` and `runeflow run --idempotency-key` through the
/// real binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_endpoints_manages_keys_and_calls() {
    let env = setup().await;
    let worker = env.start_worker(test_worker_config()).await;
    let server = env.serve_http().await;

    let (code, out, err) = runeflow(&server, &["endpoints", "ls"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("greet\t/api/endpoints/greet"), "{out}");
    assert!(!out.contains("private"), "{out}");

    let (code, key, err) = runeflow(
        &server,
        &["endpoints", "create-key", "greet", "--name", "ci"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("rfk_"), "{key}");
    let (code, listed, err) = runeflow(&server, &["endpoints", "keys", "greet"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(listed.contains("\tci\tlive\t"), "{listed}");
    assert!(!listed.contains(&key), "{listed}");
    let id = listed.split('\t').next().unwrap().to_owned();

    let (code, out, err) = runeflow(
        &server,
        &["endpoints", "call", "greet", "-p", "name=cli", "--wait"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello cli"), "{out}");

    let run = [
        "run",
        "greet",
        "-p",
        "name=once",
        "--no-wait",
        "--idempotency-key",
        "cli-1",
    ];
    let (code, first, err) = runeflow(&server, &run).await;
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = runeflow(&server, &run).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, second);
    assert_eq!(
        env.count("SELECT count(*) FROM executions WHERE parameters->>'name' = 'once'")
            .await,
        1
    );

    let (code, _, err) = runeflow(&server, &["endpoints", "revoke-key", "greet", &id]).await;
    assert_eq!(code, 0, "{err}");
    let (_, listed, _) = runeflow(&server, &["endpoints", "keys", "greet"]).await;
    assert!(listed.contains("\tci\trevoked\t"), "{listed}");
    let r = call_with_key(&env, "/api/endpoints/greet", &key, r#"{"name": "x"}"#).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    drop(server);
    worker.stop().await;
    env.cleanup().await;
}

//! Scoped API tokens (issue 11, item 3): each scope against each route
//! group (allowed, or 403 naming the scope), the bootstrap token stays
//! admin, a revoked token is a 401 on its next request, and the CLI prints
//! a new token once.

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::TestEnv;
use serde_json::{Value, json};

const FLOW: &str = "from runeflow import workflow\n\n@workflow\ndef hello():\n    return 1\n";

async fn as_token(
    env: &TestEnv,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> common::Reply {
    env.call_as(token, method, uri, body).await
}

async fn create(env: &TestEnv, name: &str, scopes: &[&str]) -> (String, String) {
    let r = env
        .post_json("/api/tokens", json!({"name": name, "scopes": scopes}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn each_scope_reaches_its_route_groups_only() {
    let env = TestEnv::new().await;
    env.put("flows/hello.py", FLOW).await;
    // (route group, method, uri, body, scope it needs)
    let routes: [(&str, &str, &str, Option<Value>, &str); 9] = [
        ("read", "GET", "/api/files", None, "read"),
        ("read", "GET", "/api/executions", None, "read"),
        ("write", "PUT", "/api/files/flows/other.py", None, "write"),
        (
            "write",
            "POST",
            "/api/schedules",
            Some(json!({"workflow": "hello", "cron": "0 9 * * *"})),
            "write",
        ),
        (
            "run",
            "POST",
            "/api/executions",
            Some(json!({"workflow": "hello"})),
            "run",
        ),
        ("admin", "GET", "/api/tokens", None, "admin"),
        ("admin", "GET", "/api/config", None, "admin"),
        ("admin", "GET", "/api/audit", None, "admin"),
        (
            "admin",
            "PUT",
            "/api/config/REGION",
            Some(json!({"value": "eu"})),
            "admin",
        ),
    ];
    for scope in ["read", "run", "write", "admin"] {
        let (token, _) = create(&env, &format!("only-{scope}"), &[scope]).await;
        for (group, method, uri, body, needs) in &routes {
            let r = as_token(&env, &token, method, uri, body.clone()).await;
            let allowed = scope == "admin" || scope == *needs;
            if allowed {
                assert!(
                    r.status.is_success(),
                    "{scope} token, {group} route {method} {uri}: {} {}",
                    r.status,
                    r.text()
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{scope} token, {method} {uri}: {}",
                    r.text()
                );
                assert_eq!(r.error_code(), "forbidden");
                assert!(
                    r.text().contains(&format!("'{needs}' scope")),
                    "{}",
                    r.text()
                );
            }
        }
    }
    // The listing never shows a token or its hash.
    let list = env.get("/api/tokens").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json().as_array().map(Vec::len), Some(4));
    assert!(
        !list.text().contains("rft_") && !list.text().contains("hash"),
        "{}",
        list.text()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_its_next_request() {
    let env = TestEnv::new().await;
    let (token, id) = create(&env, "ci", &["read", "write"]).await;
    // One live token per name: the audit log names actors by it.
    let r = env
        .post_json("/api/tokens", json!({"name": "ci", "scopes": ["read"]}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.error_code(), "name_taken");
    assert_eq!(
        as_token(&env, &token, "GET", "/api/files", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = env
        .call(
            common::authed("DELETE", &format!("/api/tokens/{id}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = as_token(&env, &token, "GET", "/api/files", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    // A token that never existed, and a bad request to create one.
    let r = as_token(&env, "rft_00", "GET", "/api/files", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for body in [
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "", "scopes": ["read"]}),
        json!({"name": "bootstrap", "scopes": ["read"]}),
        json!({"name": "cli", "scopes": ["read"]}),
        json!({"name": "endpoint-key:x", "scopes": ["read"]}),
    ] {
        let r = env.post_json("/api/tokens", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    }
    let listed = env.get("/api/tokens").await.json();
    assert!(listed[0]["revoked_at"].is_string(), "{listed}");
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    // Revoked, the name is free again.
    create(&env, "ci", &["read"]).await;
    env.cleanup().await;
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens() {
    let env = TestEnv::new().await;
    let server = env.serve_http().await;
    let cli = |args: Vec<String>| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
            .args(args)
            .env("RUNEFLOW_URL", &server.url)
            .env("RUNEFLOW_API_TOKEN", common::TOKEN)
            .output()
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = cli(args(&[
        "token", "create", "--name", "ci", "--scopes", "read,run",
    ]))
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("rft_"), "{token}");
    let r = as_token(&env, &token, "GET", "/api/executions", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let out = cli(args(&["token", "ls"])).await.unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listing.contains("\tci\tread,run\t"), "{listing}");
    assert!(!listing.contains(&token));
    let id = listing.split('\t').next().unwrap().to_owned();
    let out = cli(args(&["token", "revoke", &id])).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = as_token(&env, &token, "GET", "/api/executions", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    env.cleanup().await;
}

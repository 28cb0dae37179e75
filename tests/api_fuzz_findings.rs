//! Answers the OpenAPI fuzz (`scripts/api_fuzz.sh`) found wrong: a NUL
//! character (U+0000) in a query or body value reached PostgreSQL, which
//! refuses it, and came back as a 500; and statuses the API answers were
//! missing from its OpenAPI document.

mod common;

use axum::http::StatusCode;
use common::TestEnv;
use serde_json::json;

#[tokio::test]
async fn nul_characters_in_listings_are_a_400_naming_the_field() {
    let env = TestEnv::new().await;
    for (uri, field) in [
        ("/api/executions?status=a%00b", "status"),
        ("/api/executions?workflow=%00", "workflow"),
        ("/api/files?prefix=x%00", "prefix"),
        ("/api/files?cursor=%00", "cursor"),
    ] {
        let r = env.get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_query", "{uri}");
        assert!(r.text().contains(field), "{uri}: {}", r.text());
    }
    env.cleanup().await;
}

#[tokio::test]
async fn nul_characters_in_an_execution_request_are_refused_not_stored() {
    let env = TestEnv::new().await;
    let r = env
        .put(
            "flows/echo.py",
            "from runeflow import workflow\n\n@workflow\ndef echo(text: str):\n    return text\n",
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text());

    let r = env
        .post_json("/api/executions", json!({"workflow": "ec\u{0}ho"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_body");

    let r = env
        .post_json(
            "/api/executions",
            json!({"workflow": "echo", "parameters": {"text": ["ok", {"k": "a\u{0}b"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_parameters");
    assert!(r.text().contains("NUL"), "{}", r.text());
    assert_eq!(env.count("SELECT count(*) FROM executions").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn openapi_documents_401_on_every_guarded_operation_and_400_where_answered() {
    let env = TestEnv::new().await;
    let doc = env.get("/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().expect("paths");
    let mut guarded = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = &operation["responses"];
            if operation.get("security").is_some() {
                guarded += 1;
                assert!(
                    responses.get("401").is_some(),
                    "{method} {path} lacks 401: {responses}"
                );
            }
        }
    }
    assert!(guarded >= 12, "{guarded} guarded operations");
    for (path, method) in [
        ("/api/files/{path}", "get"),
        ("/api/files/{path}", "delete"),
        ("/api/executions", "post"),
        ("/api/executions/{id}", "get"),
    ] {
        assert!(
            paths[path][method]["responses"].get("400").is_some(),
            "{method} {path} lacks 400"
        );
    }
    env.cleanup().await;
}

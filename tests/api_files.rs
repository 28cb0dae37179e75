//! The files and workflows API against real PostgreSQL and Redis.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestEnv, authed};

const WORKFLOW_SRC: &str = r#"from runeflow import workflow

@workflow(name="greet", description="Say hello", timeout=30)
def greet(name: str, times: int = 2, context=None):
    """Greets."""
    return ", ".join([f"hello {name}"] * times)
"#;

#[tokio::test]
async fn put_get_list_and_etag() {
    let env = TestEnv::new().await;
    let r = env.put("shared/halo.py", "X = 1\n").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["path"], "shared/halo.py");
    assert_eq!(j["entity_type"], "module");
    assert_eq!(j["module"], "shared.halo");
    assert_eq!(j["size"], 6);
    assert_eq!(
        j["content_hash"],
        runeflow_shared::hash::content_hash(b"X = 1\n")
    );
    assert!(j["updated_at"].is_string());
    assert_eq!(j["workflows"], serde_json::json!([]));
    assert_eq!(j["diagnostics"], serde_json::json!([]));

    let r = env.put("shared/halo.py", "X = 2\n").await;
    assert_eq!(r.status, StatusCode::OK);

    let r = env.get("/api/files/shared/halo.py").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "X = 2\n");
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", runeflow_shared::hash::content_hash(b"X = 2\n"))
    );

    let r = env
        .call(
            authed("GET", "/api/files/shared/halo.py")
                .header("if-none-match", &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    let r = env
        .call(
            authed("GET", "/api/files/shared/halo.py")
                .header("if-none-match", "\"other\"")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    env.put("pkg/__init__.py", "").await;
    env.put("scripts/my-script.py", "print(1)\n").await;
    env.put("pkg/data.json", "{\"a\": 1}").await;
    let r = env.get("/api/files").await;
    let files = r.json()["files"].as_array().unwrap().clone();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "pkg/__init__.py",
            "pkg/data.json",
            "scripts/my-script.py",
            "shared/halo.py"
        ]
    );
    assert_eq!(files[0]["module"], "pkg");
    assert_eq!(files[1]["entity_type"], "file");
    assert!(files[1]["module"].is_null());
    assert!(files[2]["module"].is_null(), "my-script is not importable");
    assert!(files[0].get("content").is_none());

    let r = env.get("/api/files?prefix=pkg/").await;
    assert_eq!(r.json()["files"].as_array().unwrap().len(), 2);
    let r = env.get("/api/files?prefix=pkg%25").await;
    assert_eq!(
        r.json()["files"].as_array().unwrap().len(),
        0,
        "% is literal"
    );

    let r = env.get("/api/files?limit=0").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = env.get("/api/files?limit=abc").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_query");
    env.cleanup().await;
}

#[tokio::test]
async fn listing_pages_with_cursor() {
    let env = TestEnv::new().await;
    for i in 0..25 {
        env.put(&format!("m/f{i:02}.py"), format!("V = {i}\n"))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("/api/files?limit=10&cursor={}", urlencode(c)),
            None => "/api/files?limit=10".to_owned(),
        };
        let j = env.get(&uri).await.json();
        for f in j["files"].as_array().unwrap() {
            seen.push(f["path"].as_str().unwrap().to_owned());
        }
        match j["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("m/f{i:02}.py")).collect();
    assert_eq!(seen, expected);
    env.cleanup().await;
}

fn urlencode(s: &str) -> String {
    s.replace('/', "%2F")
}

#[tokio::test]
async fn missing_files_give_404_and_delete_is_soft() {
    let env = TestEnv::new().await;
    assert_eq!(
        env.get("/api/files/nope.py").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        env.get("/api/files/nope.py").await.error_code(),
        "not_found"
    );
    assert_eq!(env.delete("nope.py").await.status, StatusCode::NOT_FOUND);

    assert_eq!(env.put("a.py", "A = 1\n").await.status, StatusCode::CREATED);
    assert_eq!(env.delete("a.py").await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        env.get("/api/files/a.py").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(env.delete("a.py").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        env.get("/api/files").await.json()["files"],
        serde_json::json!([])
    );
    // The row stays, marked deleted with its content cleared.
    assert_eq!(
        env.count("SELECT count(*) FROM workspace_files WHERE path = 'a.py' AND is_deleted AND content = ''").await,
        1
    );
    // Re-creating the same path is a create again.
    let r = env.put("a.py", "A = 2\n").await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(env.get("/api/files/a.py").await.text(), "A = 2\n");
    env.cleanup().await;
}

#[tokio::test]
async fn entity_type_flips_and_workflow_rows_follow() {
    let env = TestEnv::new().await;
    let r = env
        .put("flows/greet.py", "def greet(name):\n    return name\n")
        .await;
    assert_eq!(r.json()["entity_type"], "module");
    assert_eq!(
        env.get("/api/workflows").await.json()["workflows"],
        serde_json::json!([])
    );

    let r = env.put("flows/greet.py", WORKFLOW_SRC).await;
    assert_eq!(r.status, StatusCode::OK);
    let j = r.json();
    assert_eq!(j["entity_type"], "workflow");
    assert_eq!(j["workflows"][0]["name"], "greet");

    let list = env.get("/api/workflows").await.json();
    let w = &list["workflows"][0];
    assert_eq!(w["name"], "greet");
    assert_eq!(w["function"], "greet");
    assert_eq!(w["path"], "flows/greet.py");
    assert_eq!(w["module"], "flows.greet");
    assert_eq!(w["kind"], "workflow");
    assert_eq!(w["description"], "Say hello");
    assert_eq!(w["timeout_seconds"], 30.0);
    let params = w["parameters"].as_array().unwrap();
    assert_eq!(
        params.len(),
        2,
        "context is not a user parameter: {params:?}"
    );
    assert_eq!(params[0]["name"], "name");
    assert_eq!(params[0]["annotation"], "str");
    assert_eq!(params[0]["required"], true);
    assert_eq!(params[1]["name"], "times");
    assert_eq!(params[1]["default"], 2);
    assert_eq!(params[1]["required"], false);

    let one = env.get("/api/workflows/greet").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["path"], "flows/greet.py");

    // Removing the decorator turns it back into a module and drops the row.
    env.put("flows/greet.py", "def greet(name):\n    return name\n")
        .await;
    assert_eq!(
        env.get("/api/workflows").await.json()["workflows"],
        serde_json::json!([])
    );
    assert_eq!(
        env.get("/api/workflows/greet").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(env.count("SELECT count(*) FROM workflows").await, 0);

    // Deleting a workflow file drops its rows too.
    env.put("flows/greet.py", WORKFLOW_SRC).await;
    env.delete("flows/greet.py").await;
    assert_eq!(env.count("SELECT count(*) FROM workflows").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn data_providers_and_ambiguous_names() {
    let env = TestEnv::new().await;
    let dp =
        "from runeflow import data_provider\n\n@data_provider\ndef regions():\n    return []\n";
    let r = env.put("providers/regions.py", dp).await;
    assert_eq!(r.json()["entity_type"], "data_provider");
    env.put("a/greet.py", WORKFLOW_SRC).await;
    env.put("b/greet.py", WORKFLOW_SRC).await;
    let r = env.get("/api/workflows/greet").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let j = r.json();
    assert_eq!(j["error"]["code"], "ambiguous_workflow");
    let candidates = j["error"]["candidates"].as_array().unwrap();
    let paths: Vec<&str> = candidates
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a/greet.py", "b/greet.py"]);
    let all = env.get("/api/workflows").await.json();
    let kinds: Vec<&str> = all["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["workflow", "workflow", "data_provider"]);
    env.cleanup().await;
}

#[tokio::test]
async fn syntax_errors_store_a_module_with_diagnostics() {
    let env = TestEnv::new().await;
    let r = env
        .put(
            "broken.py",
            "from runeflow import workflow\n\n@workflow\ndef f(:\n    pass\n",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let j = r.json();
    assert_eq!(j["entity_type"], "module");
    let diags = j["diagnostics"].as_array().unwrap();
    assert!(!diags.is_empty());
    assert_eq!(diags[0]["line"], 4);
    assert!(diags[0]["message"].as_str().unwrap().len() > 3);
    assert_eq!(env.get("/api/files/broken.py").await.status, StatusCode::OK);
    env.cleanup().await;
}

#[tokio::test]
async fn move_renames_and_refuses_conflicts() {
    let env = TestEnv::new().await;
    env.put("old/flow.py", WORKFLOW_SRC).await;
    env.put("taken.py", "T = 1\n").await;

    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "old/flow.py", "to": "new/flow.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["path"], "new/flow.py");
    assert_eq!(j["module"], "new.flow");
    assert_eq!(j["entity_type"], "workflow");
    assert_eq!(
        env.get("/api/files/old/flow.py").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(env.get("/api/files/new/flow.py").await.text(), WORKFLOW_SRC);
    let w = env.get("/api/workflows/greet").await.json();
    assert_eq!(w["path"], "new/flow.py");

    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "missing.py", "to": "x.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "new/flow.py", "to": "taken.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "already_exists");
    assert_eq!(
        env.get("/api/files/taken.py").await.text(),
        "T = 1\n",
        "destination untouched"
    );
    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "new/flow.py", "to": "../x.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["rule"], "dot_segment");
    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "new/flow.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Moving onto a deleted path works, and a .py moved to .txt becomes a data file.
    env.delete("taken.py").await;
    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "new/flow.py", "to": "taken.py"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = env
        .post_json(
            "/api/files/move",
            serde_json::json!({"from": "taken.py", "to": "notes.txt"}),
        )
        .await;
    assert_eq!(r.json()["entity_type"], "file");
    assert_eq!(
        env.get("/api/workflows").await.json()["workflows"],
        serde_json::json!([])
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_file_named_move_is_still_a_file() {
    let env = TestEnv::new().await;
    assert_eq!(env.put("move", "data").await.status, StatusCode::CREATED);
    assert_eq!(env.get("/api/files/move").await.text(), "data");
    assert_eq!(env.delete("move").await.status, StatusCode::NO_CONTENT);
    env.cleanup().await;
}

/// Every path rule: 400 naming the rule, and nothing stored.
#[tokio::test]
async fn bad_paths_are_refused_and_nothing_is_stored() {
    let env = TestEnv::new().await;
    let long_segment = "x".repeat(256);
    let long_path = format!("{}/end.py", ["abcdefgh"; 120].join("/"));
    let cases: Vec<(String, &str)> = vec![
        ("/api/files/".into(), "empty"),
        ("/api/files//etc/passwd".into(), "absolute"),
        ("/api/files/%2Fetc%2Fpasswd".into(), "absolute"),
        ("/api/files/a/../b.py".into(), "dot_segment"),
        ("/api/files/a/%2E%2E/b.py".into(), "dot_segment"),
        ("/api/files/./b.py".into(), "dot_segment"),
        ("/api/files/a//b.py".into(), "empty_segment"),
        ("/api/files/a/".into(), "empty_segment"),
        ("/api/files/a%5Cb.py".into(), "backslash"),
        ("/api/files/a%00b.py".into(), "control_character"),
        ("/api/files/a%0Ab.py".into(), "control_character"),
        ("/api/files/a%1Fb.py".into(), "control_character"),
        ("/api/files/a%FFb.py".into(), "not_utf8"),
        ("/api/files/a%C3b.py".into(), "not_utf8"),
        (format!("/api/files/{long_segment}.py"), "segment_too_long"),
        (format!("/api/files/{long_path}"), "path_too_long"),
    ];
    for (uri, rule) in &cases {
        for method in ["PUT", "GET", "DELETE"] {
            let r = env
                .call(authed(method, uri).body(Body::from("X = 1\n")).unwrap())
                .await;
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "{method} {uri}: {}",
                r.text()
            );
            let j = r.json();
            assert_eq!(j["error"]["code"], "invalid_path", "{uri}");
            assert_eq!(j["error"]["rule"], *rule, "{uri}");
            assert!(
                j["error"]["message"].as_str().unwrap().contains(rule),
                "{uri}: message names the rule"
            );
        }
    }
    assert_eq!(env.count("SELECT count(*) FROM workspace_files").await, 0);
    assert!(env.store().index().await.unwrap().is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn oversized_and_non_utf8_bodies_are_refused() {
    let env = TestEnv::new().await; // limit: 64 KiB
    let big = vec![b'x'; 64 * 1024 + 1];
    let r = env.put("big.txt", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error_code(), "payload_too_large");
    // Chunked body with no length: refused once the limit is crossed.
    let chunks = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'y'; 1024]))),
    );
    let r = env
        .call(
            authed("PUT", "/api/files/stream.txt")
                .body(Body::from_stream(chunks))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        env.put("exact.txt", vec![b'x'; 64 * 1024]).await.status,
        StatusCode::CREATED
    );

    let r = env.put("latin1.py", b"name = '\xe9'\n".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.error_code(), "unsupported_media_type");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    // Valid UTF-8, but a NUL cannot be stored as text: refused, not a 500.
    let r = env.put("nul.py", b"x = 1\0\n".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NUL byte")
    );
    assert_eq!(
        env.count("SELECT count(*) FROM workspace_files WHERE path IN ('big.txt','stream.txt','latin1.py','nul.py')").await,
        0
    );
    env.cleanup().await;
}

#[tokio::test]
async fn auth_and_health() {
    let env = TestEnv::new().await;
    for (header, what) in [
        (None, "missing"),
        (Some("Bearer wrong"), "wrong"),
        (Some("Basic x"), "scheme"),
        (Some("Bearer "), "empty"),
    ] {
        let mut b = Request::builder().method("GET").uri("/api/files");
        if let Some(h) = header {
            b = b.header("authorization", h);
        }
        let r = env.call(b.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(r.error_code(), "unauthorized");
    }
    let r = env
        .call(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = env
        .call(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = env
        .call(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = env.get("/api/nothing-here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "not_found");
    env.cleanup().await;
}

#[tokio::test]
async fn readyz_names_the_unreachable_service() {
    let env = TestEnv::new().await;
    env.db.clone().close().await.ok();
    let r = env
        .call(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL"),
        "{}",
        r.text()
    );
    common::drop_database(&env.name).await;
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let env = TestEnv::new().await;
    let doc = env.get("/api/openapi.json").await.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/files", "get"),
        ("/api/files/{path}", "put"),
        ("/api/files/{path}", "get"),
        ("/api/files/{path}", "delete"),
        ("/api/files/move", "post"),
        ("/api/workflows", "get"),
        ("/api/workflows/{name}", "get"),
        ("/api/openapi.json", "get"),
        ("/api/executions", "post"),
        ("/api/executions", "get"),
        ("/api/executions/{id}", "get"),
        ("/api/executions/{id}/cancel", "post"),
        ("/api/endpoints/{name}", "post"),
        ("/api/workflows/{name}/keys", "post"),
        ("/api/workflows/{name}/keys", "get"),
        ("/api/workflows/{name}/keys/{id}", "delete"),
        ("/api/data-providers/{name}", "post"),
        ("/api/schedules", "post"),
        ("/api/schedules", "get"),
        ("/api/schedules/{id}", "get"),
        ("/api/schedules/{id}", "delete"),
        ("/api/schedules/{id}/pause", "post"),
        ("/api/schedules/{id}/resume", "post"),
        ("/api/tokens", "post"),
        ("/api/tokens", "get"),
        ("/api/tokens/{id}", "delete"),
        ("/api/config", "get"),
        ("/api/config/{key}", "put"),
        ("/api/config/{key}", "get"),
        ("/api/config/{key}", "delete"),
        ("/api/audit", "get"),
        ("/api/git/push", "post"),
        ("/api/git/pull", "post"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // Every route behind a token says which scope it needs, and its 403.
    for (path, method, scope) in [
        ("/api/files", "get", "read"),
        ("/api/files/{path}", "put", "write"),
        ("/api/executions", "post", "run"),
        ("/api/executions/{id}/cancel", "post", "run"),
        ("/api/tokens", "get", "admin"),
        ("/api/config", "get", "admin"),
        ("/api/config/{key}", "put", "admin"),
        ("/api/audit", "get", "admin"),
    ] {
        let op = &paths[path][method];
        assert_eq!(op["x-runeflow-scope"], scope, "{method} {path}");
        assert!(
            op["responses"]["403"].is_object(),
            "{method} {path} documents no 403"
        );
    }
    assert!(paths["/healthz"]["get"]["x-runeflow-scope"].is_null());
    let count: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        count,
        expected.len(),
        "a route is documented that the test does not know"
    );
    env.cleanup().await;
}

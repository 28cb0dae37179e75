//! The audit log (issue 11, item 4): a scripted session of three actors
//! (the bootstrap token, a `write` token, a `run` token, and an endpoint
//! key) leaves exactly one row per action with its actor, action, target
//! and outcome; reads and anonymous requests leave none; the filters work;
//! only `admin` reads it; PostgreSQL refuses UPDATE, DELETE and TRUNCATE of
//! `audit_log`; a failed recording does not fail the request; and
//! `runeflow audit` prints the rows.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Reply, TestEnv};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const FLOWS: &str = r#"from runeflow import workflow

@workflow
def hello():
    return 1

@workflow(endpoint=True)
def hook():
    return "hooked"
"#;

async fn send(env: &TestEnv, token: &str, method: &str, uri: &str, body: Option<Value>) -> Reply {
    env.call_as(token, method, uri, body).await
}

async fn create_token(env: &TestEnv, name: &str, scopes: &[&str]) -> (String, String) {
    let r = send(
        env,
        common::TOKEN,
        "POST",
        "/api/tokens",
        Some(json!({"name": name, "scopes": scopes})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = r.json();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

fn expect(r: &Reply, status: u16) -> Value {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// A row as compared: actor, action, target, outcome, status.
type Row = (String, String, Option<String>, String, Option<i64>);

fn row(actor: &str, action: &str, target: &str, outcome: &str, status: u16) -> Row {
    (
        actor.to_owned(),
        action.to_owned(),
        Some(target.to_owned()),
        outcome.to_owned(),
        Some(i64::from(status)),
    )
}

fn rows(listing: &Value) -> Vec<Row> {
    listing
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {listing}"))
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().map(str::to_owned),
                r["outcome"].as_str().unwrap().to_owned(),
                r["status"].as_i64(),
            )
        })
        .collect()
}

async fn audit(env: &TestEnv, query: &str) -> Vec<Row> {
    let r = env.get(&format!("/api/audit{query}")).await;
    rows(&expect(&r, 200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_leaves_one_row_per_action() {
    let mut env = TestEnv::new().await;
    // Local bare repositories are remotes only with the development setting.
    env.config.git_allow_insecure = true;
    let boot = common::TOKEN;
    let mut expected: Vec<Row> = Vec::new();

    let (writer, writer_id) = create_token(&env, "writer", &["write"]).await;
    expected.push(row(
        "bootstrap",
        "token.create",
        &format!("writer {writer_id}"),
        "ok",
        201,
    ));
    let (runner, runner_id) = create_token(&env, "runner", &["run"]).await;
    expected.push(row(
        "bootstrap",
        "token.create",
        &format!("runner {runner_id}"),
        "ok",
        201,
    ));

    // Files: write, move, delete, and a failed delete.
    let r = env
        .call(
            Request::builder()
                .method("PUT")
                .uri("/api/files/flows/hooks.py")
                .header("authorization", format!("Bearer {writer}"))
                .body(Body::from(FLOWS))
                .unwrap(),
        )
        .await;
    expect(&r, 201);
    expected.push(row("writer", "file.write", "flows/hooks.py", "ok", 201));
    expect(
        &send(&env, &writer, "PUT", "/api/files/tmp/a.py", None).await,
        201,
    );
    expected.push(row("writer", "file.write", "tmp/a.py", "ok", 201));
    let moved = send(
        &env,
        &writer,
        "POST",
        "/api/files/move",
        Some(json!({"from": "tmp/a.py", "to": "tmp/b.py"})),
    )
    .await;
    expect(&moved, 200);
    expected.push(row(
        "writer",
        "file.move",
        "tmp/a.py -> tmp/b.py",
        "ok",
        200,
    ));
    expect(
        &send(&env, &writer, "DELETE", "/api/files/tmp/b.py", None).await,
        204,
    );
    expected.push(row("writer", "file.delete", "tmp/b.py", "ok", 204));
    expect(
        &send(&env, &writer, "DELETE", "/api/files/tmp/b.py", None).await,
        404,
    );
    expected.push(row("writer", "file.delete", "tmp/b.py", "failed", 404));

    // Run (delayed, so no worker is needed) and cancel; a 403.
    let run = send(
        &env,
        &runner,
        "POST",
        "/api/executions",
        Some(json!({"workflow": "hello", "delay": 3600})),
    )
    .await;
    let execution = expect(&run, 202)["id"].as_str().unwrap().to_owned();
    expected.push(row(
        "runner",
        "execution.run",
        &format!("hello {execution}"),
        "ok",
        202,
    ));
    let cancel = format!("/api/executions/{execution}/cancel");
    expect(&send(&env, &runner, "POST", &cancel, None).await, 200);
    expected.push(row(
        "runner",
        "execution.cancel",
        &format!("hello {execution}"),
        "ok",
        200,
    ));
    expect(
        &send(&env, &runner, "PUT", "/api/files/x.py", None).await,
        403,
    );
    expected.push(row("runner", "file.write", "x.py", "denied", 403));

    // A schedule, created and deleted.
    let schedule = send(
        &env,
        &writer,
        "POST",
        "/api/schedules",
        Some(json!({"workflow": "hello", "cron": "0 9 * * *"})),
    )
    .await;
    let schedule = expect(&schedule, 201)["id"].as_str().unwrap().to_owned();
    expected.push(row(
        "writer",
        "schedule.create",
        &format!("hello {schedule}"),
        "ok",
        201,
    ));
    let uri = format!("/api/schedules/{schedule}");
    expect(&send(&env, &writer, "DELETE", &uri, None).await, 204);
    expected.push(row("writer", "schedule.delete", &schedule, "ok", 204));

    // An endpoint key: created, used (its name is the actor), revoked.
    let created = send(
        &env,
        &writer,
        "POST",
        "/api/workflows/hook/keys",
        Some(json!({"name": "sender"})),
    )
    .await;
    let created = expect(&created, 201);
    let (key, key_id) = (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    );
    expected.push(row(
        "writer",
        "endpoint_key.create",
        &format!("hook {key_id}"),
        "ok",
        201,
    ));
    let call = |key: String| {
        Request::builder()
            .method("POST")
            .uri("/api/endpoints/hook")
            .header("x-runeflow-key", key)
            .body(Body::empty())
            .unwrap()
    };
    let called = env.call(call(key.clone())).await;
    let called = expect(&called, 202)["id"].as_str().unwrap().to_owned();
    expected.push(row(
        "endpoint-key:sender",
        "endpoint.call",
        &format!("hook {called}"),
        "ok",
        202,
    ));
    let uri = format!("/api/workflows/hook/keys/{key_id}");
    expect(&send(&env, &writer, "DELETE", &uri, None).await, 204);
    expected.push(row(
        "writer",
        "endpoint_key.revoke",
        &format!("hook {key_id}"),
        "ok",
        204,
    ));

    // A token created and revoked.
    let (_, temp_id) = create_token(&env, "temp", &["read"]).await;
    expected.push(row(
        "bootstrap",
        "token.create",
        &format!("temp {temp_id}"),
        "ok",
        201,
    ));
    let uri = format!("/api/tokens/{temp_id}");
    expect(&send(&env, boot, "DELETE", &uri, None).await, 204);
    expected.push(row(
        "bootstrap",
        "token.revoke",
        &format!("temp {temp_id}"),
        "ok",
        204,
    ));

    // A git push to a local bare repository.
    let remote = std::env::temp_dir().join(format!("{}-audit.git", env.name));
    let _ = std::fs::remove_dir_all(&remote);
    git2::Repository::init_bare(&remote).unwrap();
    let remote = remote.to_string_lossy().into_owned();
    let pushed = send(
        &env,
        &writer,
        "POST",
        "/api/git/push",
        Some(json!({"remote": remote, "branch": "main"})),
    )
    .await;
    expect(&pushed, 200);
    expected.push(row(
        "writer",
        "git.push",
        &format!("{remote} main"),
        "ok",
        200,
    ));

    // Nothing below is recorded: reads (allowed or not), requests without
    // a known actor (no token, an unknown token, a revoked key).
    expect(&send(&env, boot, "GET", "/api/files", None).await, 200);
    expect(&send(&env, &writer, "GET", "/api/files", None).await, 403);
    expect(
        &send(&env, "", "PUT", "/api/files/anon.py", None).await,
        401,
    );
    expect(
        &send(
            &env,
            "rft_nope",
            "DELETE",
            "/api/files/flows/hooks.py",
            None,
        )
        .await,
        401,
    );
    expect(&env.call(call(key)).await, 401);
    expect(&send(&env, &runner, "GET", "/api/audit", None).await, 403);
    expect(&send(&env, &writer, "GET", "/api/audit", None).await, 403);
    expect(&send(&env, "", "GET", "/api/audit", None).await, 401);

    let listing = env.get("/api/audit?limit=1000").await;
    let text = listing.text();
    let mut all = rows(&expect(&listing, 200));
    all.reverse();
    assert_eq!(all, expected);
    // No token or key value is in the log.
    assert!(!text.contains("rft_") && !text.contains("rfk_"), "{text}");

    // Filters: actor, action, both, since, limit.
    let by = |actor: &str| {
        let mut rows: Vec<Row> = expected.iter().filter(|r| r.0 == actor).cloned().collect();
        rows.reverse();
        rows
    };
    assert_eq!(audit(&env, "?actor=writer").await, by("writer"));
    assert_eq!(
        audit(&env, "?actor=endpoint-key%3Asender").await,
        by("endpoint-key:sender")
    );
    let writes = audit(&env, "?action=file.write").await;
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(writes.iter().all(|r| r.1 == "file.write"));
    assert_eq!(
        audit(&env, "?actor=runner&action=file.write").await,
        vec![row("runner", "file.write", "x.py", "denied", 403)]
    );
    let newest_two = audit(&env, "?limit=2").await;
    assert_eq!(
        newest_two,
        all.iter().rev().take(2).cloned().collect::<Vec<_>>()
    );
    // `since` the execution's row: it and everything after.
    let raw = expect(&env.get("/api/audit?action=execution.run").await, 200);
    let at = raw[0]["at"].as_str().unwrap().to_owned();
    let since = audit(
        &env,
        &format!("?since={}", utf8_percent_encode(&at, NON_ALPHANUMERIC)),
    )
    .await;
    let from_run = all.iter().position(|r| r.1 == "execution.run").unwrap();
    assert_eq!(
        since,
        all[from_run..].iter().rev().cloned().collect::<Vec<_>>()
    );
    assert!(
        audit(&env, "?since=2999-01-01T00%3A00%3A00Z")
            .await
            .is_empty()
    );

    // Bad queries are 400s naming the problem.
    for (query, names) in [
        ("?since=yesterday", "since"),
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
    ] {
        let r = env.get(&format!("/api/audit{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_query");
        assert!(r.text().contains(names), "{query}: {}", r.text());
    }
    env.cleanup().await;
}

#[tokio::test]
async fn postgresql_refuses_to_change_or_empty_the_log() {
    let env = TestEnv::new().await;
    expect(&env.put("a.py", "A = 1\n").await, 201);
    expect(&env.delete("a.py").await, 204);
    assert_eq!(env.count("SELECT count(*) FROM audit_log").await, 2);
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE false",
        "TRUNCATE audit_log",
    ] {
        let err = env
            .db
            .execute_unprepared(sql)
            .await
            .expect_err(&format!("{sql} was allowed"));
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(env.count("SELECT count(*) FROM audit_log").await, 2);
    assert_eq!(
        env.count("SELECT count(*) FROM audit_log WHERE actor = 'bootstrap'")
            .await,
        2
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_failed_recording_does_not_fail_the_request() {
    let env = TestEnv::new().await;
    // Every new row now breaks a constraint: recording fails.
    env.db
        .execute_unprepared("ALTER TABLE audit_log ADD CONSTRAINT refuse CHECK (false) NOT VALID")
        .await
        .unwrap();
    let r = env.put("still/written.py", "A = 1\n").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["path"], "still/written.py");
    assert_eq!(
        env.get("/api/files/still/written.py").await.text(),
        "A = 1\n"
    );
    assert_eq!(env.count("SELECT count(*) FROM audit_log").await, 0);
    env.cleanup().await;
}

#[tokio::test]
async fn the_cli_prints_the_log() {
    let env = TestEnv::new().await;
    let server = env.serve_http().await;
    let (_, id) = create_token(&env, "ci", &["read"]).await;
    expect(&env.put("flows/a.py", "A = 1\n").await, 201);
    let cli = |args: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_runeflow"))
            .arg("audit")
            .args(args)
            .env("RUNEFLOW_URL", &server.url)
            .env("RUNEFLOW_API_TOKEN", common::TOKEN)
            .output()
    };
    let out = cli(&[]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].ends_with("\tbootstrap\tfile.write\tflows/a.py\tok\t201"),
        "{stdout}"
    );
    assert!(
        lines[1].ends_with(&format!("\tbootstrap\ttoken.create\tci {id}\tok\t201")),
        "{stdout}"
    );
    let out = cli(&["--action", "token.create", "--limit", "5"])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let out = cli(&["--since", "yesterday"]).await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("since"), "{stderr}");
    env.cleanup().await;
}

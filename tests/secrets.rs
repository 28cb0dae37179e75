//! Config and secrets (issue 11, items 1 and 2) through the real worker
//! binary, PostgreSQL, Redis and python3: a workflow reads a secret and a
//! config entry, uses the secret against a local HTTP server, prints it,
//! returns it and raises with it; the stored logs, result and traceback
//! show `***`, and neither a `pg_dump` nor any Redis key holds it. Then the
//! API's own answers, the CLI, `rotate-key` and `init`'s key check.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use common::worker_process::{WorkerProcess, submit, wait_final};
use common::{TOKEN, TestEnv};
use runeflow_shared::config_entries::{self, Stored};
use runeflow_shared::secrets::{OpenError, SecretKey, open};
use serde_json::{Value, json};

const FLOWS: &str = r#"
import json
import urllib.request
from runeflow import workflow, context

@workflow
def call_api():
    token = context.secret("API_KEY")
    request = urllib.request.Request(context.config["API_URL"] + "/charge",
                                     headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = response.read().decode()
    print("calling with", token)
    context.log.warning("header Bearer %s", token)
    print(json.dumps({"token": token}))
    print(repr(token))
    return {"answer": answer, "token": token, "nested": ["Bearer " + token],
            "limit": context.config["LIMIT"]}

@workflow
def fail_with_it():
    token = context.secret("API_KEY")
    raise ValueError(f"the API refused key {token}")

@workflow(timeout=1)
def leak_then_hang():
    import sys, time
    print("about to hang with", context.secret("API_KEY"), flush=True)
    sys.stdout.flush()
    time.sleep(30)

@workflow
def hostile_keys():
    out = []
    for key in ["x" * 100000, "../API_KEY", "API_KEY\x00", "API_KEY' OR '1'='1", ""]:
        try:
            context.secret(key)
            out.append("found")
        except KeyError:
            out.append("missing")
    return out

@workflow
def malformed_request():
    context._channel.request({"op": "secret", "key": ["API_KEY"]})
    return "answered"

@workflow
def missing():
    return context.secret("NOT_THERE")

@workflow
async def async_read():
    return context.config["LIMIT"] + len(context.secret("API_KEY"))
"#;

/// A distinctive secret with characters that `json.dumps` and `repr` escape.
fn make_secret() -> (String, String) {
    let marker = hex_marker();
    (format!("sk-live-{marker}\"q'\\zä\u{a0}"), marker)
}

fn hex_marker() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn put_config(env: &TestEnv, key: &str, body: Value) -> common::Reply {
    env.call(
        common::authed("PUT", &format!("/api/config/{key}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

/// A local HTTP server that records the Authorization header of each call.
async fn recording_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/charge",
        axum::routing::get(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                // http.client sends header values as Latin-1.
                let auth: String = headers
                    .get("authorization")
                    .map(|v| v.as_bytes().iter().map(|&b| b as char).collect())
                    .unwrap_or_default();
                log.lock().unwrap().push(auth);
                "charged"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// Every value of every key in the Redis database, as text.
async fn redis_dump(redis_url: &str) -> String {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut text = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let command = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).clone(),
            "hash" => redis::cmd("HGETALL").arg(&key).clone(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
            "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
            "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
            _ => continue, // gone since the scan
        };
        let value: redis::Value = command
            .query_async(&mut conn)
            .await
            .unwrap_or(redis::Value::Nil);
        text.push_str(&key);
        text.push_str(&format!("{value:?}"));
        text.push('\n');
    }
    text
}

fn pg_dump(database_url: &str) -> String {
    let out = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(database_url)
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_a_workflow_read_is_masked_in_everything_stored() {
    let key = SecretKey::generate();
    let env = TestEnv::new().await.with_secret_key(key.clone());
    let (secret, marker) = make_secret();
    let (server, seen) = recording_server().await;
    let r = put_config(&env, "API_KEY", json!({"value": secret, "secret": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(!r.text().contains(&marker));
    for (k, v) in [("API_URL", json!(server)), ("LIMIT", json!(3))] {
        let r = put_config(&env, k, json!({"value": v})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    env.put("flows/pay.py", FLOWS).await;
    let key_hex = key.to_hex();
    let mut worker = WorkerProcess::spawn(
        &env,
        "secrets",
        &[("RUNEFLOW_SECRET_KEY", key_hex.as_str())],
    );

    let ok = submit(&env, "call_api", json!({})).await;
    let failed = submit(&env, "fail_with_it", json!({})).await;
    let missing = submit(&env, "missing", json!({})).await;
    let asynchronous = submit(&env, "async_read", json!({})).await;
    let hung = submit(&env, "leak_then_hang", json!({})).await;
    let hostile = submit(&env, "hostile_keys", json!({})).await;
    let malformed = submit(&env, "malformed_request", json!({})).await;
    let ok = wait_final(&env, &ok, Duration::from_secs(60)).await;
    let failed = wait_final(&env, &failed, Duration::from_secs(60)).await;
    let missing = wait_final(&env, &missing, Duration::from_secs(60)).await;
    let asynchronous = wait_final(&env, &asynchronous, Duration::from_secs(60)).await;
    let hung = wait_final(&env, &hung, Duration::from_secs(60)).await;
    let hostile = wait_final(&env, &hostile, Duration::from_secs(60)).await;
    let malformed = wait_final(&env, &malformed, Duration::from_secs(60)).await;

    // The workflow had the real value: the server saw it.
    assert_eq!(ok["status"], "success", "{ok}\n{}", worker.log());
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("Bearer {secret}")]
    );
    // What was stored shows *** in its place, in every form.
    assert_eq!(ok["result"]["answer"], "charged");
    assert_eq!(ok["result"]["token"], "***");
    assert_eq!(ok["result"]["nested"], json!(["Bearer ***"]));
    assert_eq!(ok["result"]["limit"], 3);
    let logs = ok["logs"].as_str().unwrap();
    assert!(logs.contains("calling with ***"), "{logs}");
    assert!(logs.contains("header Bearer ***"), "{logs}");
    assert!(logs.contains(r#"{"token": "***"}"#), "{logs}");
    assert!(logs.contains("'***'") || logs.contains("\"***\""), "{logs}");
    assert_eq!(ok["config_read"], json!(["API_KEY", "API_URL", "LIMIT"]));

    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["type"], "ValueError");
    assert_eq!(failed["error"]["message"], "the API refused key ***");
    let traceback = failed["error"]["traceback"].as_str().unwrap();
    assert!(
        traceback.contains("ValueError: the API refused key ***"),
        "{traceback}"
    );
    assert_eq!(failed["config_read"], json!(["API_KEY"]));

    assert_eq!(missing["status"], "failed");
    assert_eq!(missing["error"]["type"], "KeyError");
    assert_eq!(missing["error"]["message"], "'NOT_THERE'");
    assert_eq!(missing["config_read"], json!([]));

    let expected = 3 + secret.chars().count() as i64;
    assert_eq!(asynchronous["status"], "success", "{asynchronous}");
    assert_eq!(asynchronous["result"], json!(expected));

    // Keys that are not keys find nothing (and touch nothing); a request
    // the protocol does not allow ends the execution, not the worker.
    assert_eq!(hostile["status"], "success", "{hostile}");
    assert_eq!(
        hostile["result"],
        json!(["missing", "missing", "missing", "missing", "missing"])
    );
    assert_eq!(hostile["config_read"], json!([]));
    assert_eq!(malformed["status"], "failed", "{malformed}");
    assert_eq!(malformed["error"]["type"], "ProtocolError", "{malformed}");
    assert_eq!(env.count("SELECT count(*) FROM config_entries").await, 3);
    assert_eq!(hung["status"], "timeout", "{hung}");
    assert!(
        hung["logs"]
            .as_str()
            .unwrap()
            .contains("about to hang with ***"),
        "{hung}"
    );

    // Nowhere in PostgreSQL or Redis as plaintext; nor in the API's
    // answers or the worker's own log.
    for (what, text) in [
        (
            "execution JSON",
            ok.to_string() + &failed.to_string() + &hung.to_string(),
        ),
        ("pg_dump", pg_dump(&env.database_url)),
        ("redis", redis_dump(&env.redis_url).await),
        ("config listing", env.get("/api/config").await.text()),
        ("config entry", env.get("/api/config/API_KEY").await.text()),
        ("worker log", worker.log()),
    ] {
        assert!(!text.contains(&marker), "the secret is in the {what}");
        // bytea columns are dumped as hex.
        let as_hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(
            !text.contains(&as_hex),
            "the secret is in the {what}, as hex"
        );
    }
    worker.kill_group();
    env.cleanup().await;
}

#[tokio::test]
async fn the_api_never_answers_with_a_secret() {
    let key = SecretKey::generate();
    let bare = TestEnv::new().await;
    // No key on this API: a secret cannot be written.
    let r = put_config(&bare, "API_KEY", json!({"value": "x-123", "secret": true})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.error_code(), "secrets_unavailable");
    bare.cleanup().await;

    let env = TestEnv::new().await.with_secret_key(key.clone());
    let (secret, marker) = make_secret();
    let r = put_config(&env, "API_KEY", json!({"value": secret, "secret": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["secret"], true);
    // Malformed bodies that carry the value are refused without echoing it.
    for body in [
        json!({"value": secret, "secret": "yes"}),
        json!({"value": secret, "secret": true, "extra": secret}),
        json!({"value": [secret], "secret": true}),
        json!(secret),
    ] {
        let r = put_config(&env, "API_KEY", body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        assert!(!r.text().contains(&marker), "{}", r.text());
    }
    for bad in ["1abc", "a%20b", &"k".repeat(129)] {
        let r = put_config(&env, bad, json!({"value": 1})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_key");
    }
    // A plain value does not replace a secret (delete it first).
    let r = put_config(&env, "API_KEY", json!({"value": "plain now"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.error_code(), "is_secret");
    let r = put_config(&env, "EMPTY", json!({"value": "", "secret": true})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put_config(&env, "BIG", json!({"value": "x".repeat(70_000)})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = put_config(&env, "NUL", json!({"value": "a\u{0}b"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put_config(&env, "REGION", json!({"value": {"name": "eu", "zones": 3}})).await;
    assert_eq!(r.status, StatusCode::OK);

    let shown = env.get("/api/config/REGION").await.json();
    assert_eq!(shown["value"], json!({"name": "eu", "zones": 3}));
    let shown = env.get("/api/config/API_KEY").await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(shown.json().get("value").is_none(), "{}", shown.text());
    let list = env.get("/api/config").await.json();
    let keys: Vec<(&str, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].as_str().unwrap(), e["secret"].as_bool().unwrap()))
        .collect();
    assert_eq!(keys, [("API_KEY", true), ("REGION", false)]);
    assert_eq!(
        env.get("/api/config/NOPE").await.status,
        StatusCode::NOT_FOUND
    );
    for expected in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
        let r = env
            .call(
                common::authed("DELETE", "/api/config/REGION")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(r.status, expected);
    }
    // The OpenAPI document and the audit log never carry a value either.
    let doc = env.get("/api/openapi.json").await.text();
    assert!(!doc.contains(&marker));
    let audit = env.get("/api/audit?limit=1000").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text());
    assert!(!audit.text().contains(&marker));
    let rows: Vec<(String, String, String)> = audit
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        rows.contains(&("secret.set".into(), "API_KEY".into(), "ok".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("config.set".into(), "REGION".into(), "ok".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&("config.delete".into(), "REGION".into(), "ok".into())),
        "{rows:?}"
    );
    assert!(!pg_dump(&env.database_url).contains(&marker));

    // The CLI: a secret comes from stdin; `get` never prints it.
    let server = env.serve_http().await;
    let cli = |args: &[&str], stdin: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_runeflow"));
        command
            .args(args)
            .env("RUNEFLOW_URL", &server.url)
            .env("RUNEFLOW_API_TOKEN", TOKEN)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let input = stdin.map(str::to_owned);
        async move {
            tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut child = command.spawn().unwrap();
                let mut pipe = child.stdin.take().unwrap();
                if let Some(input) = input {
                    pipe.write_all(input.as_bytes()).unwrap();
                }
                drop(pipe);
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let (other, other_marker) = make_secret();
    let out = cli(
        &["config", "set", "STRIPE", "--secret"],
        Some(&format!("{other}\n")),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["config", "set", "STRIPE", "inline", "--secret"], None).await;
    assert!(
        !out.status.success(),
        "a secret on the command line is refused"
    );
    let out = cli(&["config", "set", "RETRIES", "5", "--json"], None).await;
    assert!(out.status.success());
    let out = cli(&["config", "get", "RETRIES"], None).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    let out = cli(&["config", "get", "STRIPE"], None).await;
    assert!(!out.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("is a secret"), "{printed}");
    let out = cli(&["config", "ls"], None).await;
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listing.contains("STRIPE\tsecret\t"), "{listing}");
    assert!(listing.contains("RETRIES\tconfig\t"), "{listing}");
    assert!(!listing.contains(&other_marker));
    let out = cli(&["config", "rm", "RETRIES"], None).await;
    assert!(out.status.success());
    // The value from stdin was stored without its newline.
    let Some((_, Stored::Secret(sealed))) = config_entries::get(&env.db, "STRIPE").await.unwrap()
    else {
        panic!("STRIPE is a secret");
    };
    assert_eq!(open(&key, "STRIPE", &sealed).unwrap().as_str(), other);
    env.cleanup().await;
}

/// Runs the binary with `vars` on top of a clean environment.
fn runeflow(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_runeflow"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn rotate_key_reseals_every_secret_and_the_old_key_stops_working() {
    let old = SecretKey::generate();
    let new = SecretKey::generate();
    let env = TestEnv::new().await.with_secret_key(old.clone());
    let (first, _) = make_secret();
    let (second, _) = make_secret();
    for (k, v) in [("A", &first), ("B", &second)] {
        let r = put_config(&env, k, json!({"value": v, "secret": true})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = put_config(&env, "PLAIN", json!({"value": "kept"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let (old_hex, new_hex) = (old.to_hex(), new.to_hex());
    let db_url = env.database_url.as_str();
    let base = [
        ("DATABASE_URL", db_url),
        ("REDIS_URL", env.redis_url.as_str()),
        ("RUNEFLOW_REDIS_PREFIX", env.name.as_str()),
    ];
    fn with<'a>(
        base: &[(&'a str, &'a str)],
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut vars = base.to_vec();
        vars.extend_from_slice(extra);
        vars
    }

    // init: refuses with no key, and with another key; starts with the right one.
    let out = runeflow(&["init"], &with(&base, &[]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUNEFLOW_SECRET_KEY is not set"),
        "{stderr}"
    );
    let out = runeflow(
        &["init"],
        &with(&base, &[("RUNEFLOW_SECRET_KEY", new_hex.as_str())]),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&old.id()),
        "the error names the key id the secrets need"
    );
    let out = runeflow(
        &["init"],
        &with(&base, &[("RUNEFLOW_SECRET_KEY", old_hex.as_str())]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let before = config_entries::get(&env.db, "A").await.unwrap();
    let rotate = |current: &str, next: &str| {
        runeflow(
            &["secrets", "rotate-key"],
            &with(
                &base,
                &[
                    ("RUNEFLOW_SECRET_KEY", current),
                    ("RUNEFLOW_NEW_SECRET_KEY", next),
                ],
            ),
        )
    };
    // The wrong current key changes nothing.
    let out = rotate(new_hex.as_str(), old_hex.as_str());
    assert!(!out.status.success());
    let out = rotate(old_hex.as_str(), new_hex.as_str());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("re-sealed 2 secret(s)"), "{stdout}");
    assert!(!stdout.contains(new_hex.as_str()) && !stdout.contains(&first));

    for (k, plaintext) in [("A", &first), ("B", &second)] {
        let Some((_, Stored::Secret(sealed))) = config_entries::get(&env.db, k).await.unwrap()
        else {
            panic!("{k} is a secret");
        };
        assert_eq!(open(&new, k, &sealed).unwrap().as_str(), plaintext.as_str());
        assert!(matches!(
            open(&old, k, &sealed),
            Err(OpenError::WrongKey { .. })
        ));
    }
    let Some((_, Stored::Secret(before))) = before else {
        panic!("A was a secret");
    };
    let Some((_, Stored::Secret(after))) = config_entries::get(&env.db, "A").await.unwrap() else {
        panic!("A is a secret");
    };
    assert_ne!(before.ciphertext, after.ciphertext);
    assert!(
        config_entries::check_secret_key(&env.db, Some(&old))
            .await
            .is_err()
    );
    assert!(
        config_entries::check_secret_key(&env.db, Some(&new))
            .await
            .is_ok()
    );
    let out = runeflow(
        &["init"],
        &with(&base, &[("RUNEFLOW_SECRET_KEY", old_hex.as_str())]),
    );
    assert!(!out.status.success(), "init refuses the old key");
    let out = runeflow(
        &["init"],
        &with(&base, &[("RUNEFLOW_SECRET_KEY", new_hex.as_str())]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same key twice, or a malformed one: refused.
    assert!(!rotate(new_hex.as_str(), new_hex.as_str()).status.success());
    assert!(!rotate(new_hex.as_str(), "change-me").status.success());
    let shown = env.get("/api/config/PLAIN").await.json();
    assert_eq!(shown["value"], "kept");
    // Each rotation attempt is in the audit log, by key ids only.
    let audit = env.get("/api/audit?action=secrets.rotate_key").await.json();
    let outcomes: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "failed"], "newest first: {audit}");
    assert_eq!(audit[0]["actor"], "cli");
    assert_eq!(
        audit[0]["target"],
        format!("key {} -> {} (2 secrets)", old.id(), new.id())
    );
    // This API still has the old key: it may not seal a secret under it
    // beside the re-sealed ones (a restart with the new key is needed).
    let r = put_config(&env, "C", json!({"value": "late", "secret": true})).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(r.text().contains(&new.id()), "{}", r.text());
    assert!(
        config_entries::check_secret_key(&env.db, Some(&new))
            .await
            .is_ok()
    );
    env.cleanup().await;
}

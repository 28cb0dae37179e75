//! Whatever user code produces is recorded once, as an outcome: NUL bytes
//! in output, results and exceptions, a content PostgreSQL refuses, and a
//! job the worker cannot run (an out-of-range timeout). None of them is a
//! worker fault, so none runs user code again.
//!
//! Real PostgreSQL, Redis, python3 and the `runeflow worker` binary.

mod common;

use std::time::Duration;

use common::TestEnv;
use common::worker_process::*;
use sea_orm::ConnectionTrait;
use serde_json::json;

const NUL_OUTPUT: &str = r#"import os
from runeflow import workflow

@workflow
def nul_print(marker: str):
    with open(marker, 'a') as f:
        f.write('ran\n')
    print("a\x00b")
    os.write(1, b"raw\x00fd\n")
    return {"k\x00": "v\x00", "n": [1, "x\x00"]}

@workflow
def nul_raise(marker: str):
    with open(marker, 'a') as f:
        f.write('ran\n')
    print("before\x00")
    raise ValueError("bad\x00byte")
"#;

/// `print("a\x00b")`, a NUL in the result and `raise ValueError("bad\x00byte")`
/// are stored with the NUL escaped, on the first attempt, and run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_are_stored_escaped_and_never_rerun() {
    let env = TestEnv::new().await;
    env.put_files(&[("nul.py", NUL_OUTPUT)]).await;
    let _worker = WorkerProcess::spawn(&env, "w", &[]);
    let markers = marker_dir(&env);

    let marker = markers.join("print");
    let id = submit(
        &env,
        "nul_print",
        json!({"marker": marker.display().to_string()}),
    )
    .await;
    let done = wait_final(&env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    assert_eq!(
        done["result"],
        json!({"k\\x00": "v\\x00", "n": [1, "x\\x00"]})
    );
    let logs = done["logs"].as_str().unwrap_or_default();
    assert!(logs.contains("a\\x00b"), "{logs:?}");
    assert_eq!(lines(&marker), ["ran"], "the workflow ran once");

    let marker = markers.join("raise");
    let id = submit(
        &env,
        "nul_raise",
        json!({"marker": marker.display().to_string()}),
    )
    .await;
    let done = wait_final(&env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    assert_eq!(done["error"]["type"], "ValueError", "{done}");
    assert_eq!(done["error"]["message"], "bad\\x00byte", "{done}");
    let traceback = done["error"]["traceback"].as_str().unwrap_or_default();
    assert!(traceback.contains("bad\\x00byte"), "{traceback}");
    assert!(
        done["logs"]
            .as_str()
            .unwrap_or_default()
            .contains("before\\x00"),
        "{done}"
    );
    // Settle: a re-run would append a second line.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines(&marker), ["ran"], "the workflow ran once");
    env.cleanup().await;
}

const LOUD: &str = r#"from runeflow import workflow

@workflow
def loud(marker: str):
    with open(marker, 'a') as f:
        f.write('ran\n')
    print("REFUSE-ME")
    return 1
"#;

/// A content PostgreSQL still refuses (a data exception, here raised by a
/// trigger for a marker in the logs) is recorded as `OutcomeUnrecordable`
/// on the first attempt, without the refused logs; the workflow is not run
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_content_is_a_failed_outcome_not_a_retry() {
    let env = TestEnv::new().await;
    env.db
        .execute_unprepared(
            "CREATE FUNCTION refuse_marker() RETURNS trigger AS $$
             BEGIN
               IF NEW.logs LIKE '%REFUSE-ME%' THEN
                 RAISE EXCEPTION 'refused content' USING ERRCODE = '22000';
               END IF;
               RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse BEFORE UPDATE ON executions
               FOR EACH ROW EXECUTE FUNCTION refuse_marker();",
        )
        .await
        .expect("trigger");
    env.put_files(&[("loud.py", LOUD)]).await;
    let _worker = WorkerProcess::spawn(&env, "w", &[]);
    let marker = marker_dir(&env).join("loud");
    let id = submit(
        &env,
        "loud",
        json!({"marker": marker.display().to_string()}),
    )
    .await;
    let done = wait_final(&env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    assert_eq!(done["error"]["type"], "OutcomeUnrecordable", "{done}");
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("refused content"), "{message}");
    assert!(
        !done["logs"]
            .as_str()
            .unwrap_or_default()
            .contains("REFUSE-ME")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lines(&marker), ["ran"], "the workflow ran once");
    env.cleanup().await;
}

const PATIENT: &str = r#"from runeflow import workflow

@workflow(timeout=1e20)
def patient():
    return "ran"
"#;

/// `timeout=1e20` is a detection diagnostic (the default applies); a job
/// that still carries such a timeout (a row written before that check)
/// ends `failed` with `InvalidTimeout` at once instead of staying pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_timeout_fails_at_once() {
    let env = TestEnv::new().await;
    let put = env.put("patient.py", PATIENT).await;
    assert!(put.status.is_success(), "{}", put.text());
    let diagnostics = put.json()["diagnostics"].clone();
    assert!(
        diagnostics.to_string().contains("out of range"),
        "{diagnostics}"
    );
    let _worker = WorkerProcess::spawn(&env, "w", &[]);

    // Detection dropped it: the default timeout applies and it runs.
    let done = env.execute("patient", json!({})).await;
    assert_eq!(done["status"], "success", "{done}");

    // A workflow row from before the check still carries it.
    env.db
        .execute_unprepared("UPDATE workflows SET timeout_seconds = 1e20")
        .await
        .expect("update");
    env.put("other.py", "x = 1\n").await; // a new store version: fresh lookups
    let id = submit(&env, "patient", json!({})).await;
    let done = wait_final(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["type"], "InvalidTimeout", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    let message = done["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("out of range"), "{message}");
    env.cleanup().await;
}

const BIG_RESULTS: &str = r#"from runeflow import workflow

@workflow
def long_text():
    return "x" * 200_000

@workflow
def many_zeros():
    return [0] * 30_000

@workflow
def nested_empties():
    return [[] for _ in range(20_000)]

@workflow
def small():
    return {"ok": [1, 2]}
"#;

/// The worker, not only the shim, bounds a result: by its bytes of JSON
/// (RUNEFLOW_MAX_RESULT_BYTES) and by the memory it would take once parsed
/// (RUNEFLOW_MAX_RESULT_MEMORY_MB), refusing it before it is built. Here
/// 90 KB of `[0, 0, …]` would take about 1.9 MiB. Each is a failed outcome
/// on attempt 1, and the worker goes on running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_worker_bounds_are_refused_before_they_are_parsed() {
    let env = TestEnv::new().await;
    env.put_files(&[("big.py", BIG_RESULTS)]).await;
    let _worker = WorkerProcess::spawn(
        &env,
        "w",
        &[
            ("RUNEFLOW_MAX_RESULT_BYTES", "100000"),
            ("RUNEFLOW_MAX_RESULT_MEMORY_MB", "1"),
        ],
    );
    for (workflow, setting) in [
        ("long_text", "RUNEFLOW_MAX_RESULT_BYTES"),
        ("many_zeros", "RUNEFLOW_MAX_RESULT_MEMORY_MB"),
        ("nested_empties", "RUNEFLOW_MAX_RESULT_MEMORY_MB"),
    ] {
        let id = submit(&env, workflow, json!({})).await;
        let done = wait_final(&env, &id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "failed", "{workflow}: {done}");
        assert_eq!(done["attempt"], 1, "{workflow}: {done}");
        assert_eq!(
            done["error"]["type"], "ResultTooLarge",
            "{workflow}: {done}"
        );
        let message = done["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(setting), "{workflow}: {message}");
        assert!(done["result"].is_null(), "{workflow}: {done}");
    }
    let id = submit(&env, "small", json!({})).await;
    let done = wait_final(&env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["result"], json!({"ok": [1, 2]}));
    env.cleanup().await;
}

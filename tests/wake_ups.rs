//! No job waits for a poll or a heartbeat while a worker has a free slot:
//! 1 000 back-to-back executions to two `runeflow worker` processes whose
//! poll is 60 s, and every job is fetched by a fetch its wake-up started,
//! never by one that something else (a heartbeat) started after the
//! wake-up was lost. The workers log how each fetch was started
//! (`runeflow_worker::wake=debug`); no timing is asserted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::TestEnv;
use serde_json::json;

const RUNS: usize = 1_000;

/// A worker process whose stderr is collected.
struct Worker {
    child: Child,
    log: Arc<Mutex<String>>,
}

fn start_worker(env: &TestEnv) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runeflow"))
        .arg("worker")
        .env("DATABASE_URL", &env.database_url)
        .env("REDIS_URL", &env.redis_url)
        .env("RUNEFLOW_REDIS_PREFIX", &env.name)
        .env("RUNEFLOW_CONCURRENCY", "4")
        .env("RUNEFLOW_POLL_MS", "60000")
        // The tests' python3 may live under /root, which child uids cannot
        // read (the worker would refuse to start).
        .env("RUNEFLOW_CHILD_USERS", "off")
        .env("RUST_LOG", "warn,runeflow_worker::wake=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start runeflow worker");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("piped stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut log) = sink.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    Worker { child, log }
}

/// A log line without its ANSI colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn back_to_back_jobs_are_all_fetched_by_their_wake_up() {
    let env = TestEnv::new().await;
    env.put_files(&[(
        "flows/noop.py",
        "from runeflow import workflow\n\n\n@workflow\ndef noop():\n    return 1\n",
    )])
    .await;
    let mut workers = [start_worker(&env), start_worker(&env)];
    // Both workers registered and warm before counting.
    for _ in 0..20 {
        let e = env.execute("noop", json!({})).await;
        assert_eq!(e["status"], "success", "{e}");
    }
    let mut ids = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let e = env.execute("noop", json!({})).await;
        assert_eq!(e["status"], "success", "{e}");
        ids.push(e["id"].as_str().expect("an id").to_owned());
    }
    for w in &mut workers {
        let _ = Command::new("kill")
            .args(["-TERM", &w.child.id().to_string()])
            .status();
        let _ = w.child.wait();
    }
    let (mut by_wake_up, mut by_resend, mut otherwise, mut stranded) = (0, 0, 0, 0);
    let mut stranded_lines = Vec::new();
    for w in &workers {
        let log = w.log.lock().unwrap().clone();
        for line in log.lines().map(plain) {
            if line.contains("whose wake-up this worker received") {
                for id in ids.iter().filter(|id| line.contains(id.as_str())) {
                    stranded += 1;
                    let ms = env
                        .count(&format!(
                            "SELECT (extract(epoch FROM started_at - queued_at) * 1000000)::bigint \
                             FROM executions WHERE id = '{id}'"
                        ))
                        .await;
                    stranded_lines.push(format!("{id}: queued -> started {ms} us"));
                }
            } else if line.contains(" fetched") {
                let ours = ids.iter().filter(|id| line.contains(id.as_str())).count();
                if line.contains("cause=WakeUp") {
                    by_wake_up += ours;
                } else if line.contains("cause=Resend") {
                    by_resend += ours;
                } else {
                    otherwise += ours;
                }
            }
        }
    }
    println!(
        "{RUNS} jobs: {by_wake_up} fetched by their wake-up, {by_resend} by a fetch sent again \
         after a wake-up arrived during it, {otherwise} otherwise; {stranded} stranded"
    );
    assert_eq!(
        by_wake_up + by_resend + otherwise,
        RUNS,
        "every job's fetch is logged once"
    );
    assert_eq!(
        stranded,
        0,
        "jobs whose wake-up landed on a fetch that came back empty and was not sent again \
         (fetched later by something else: a heartbeat, the poll, a freed slot):\n{}",
        stranded_lines.join("\n")
    );
    env.cleanup().await;
}

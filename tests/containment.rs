//! Containment of user code, through the real `runeflow worker` binary run
//! as root with a uid per slot: no secret in reach (environ, cmdline,
//! memory of every process), no neighbour signalled, no descendant left
//! behind (also one that left its session), subprocess output captured.

mod common;

use std::time::Duration;

use common::TestEnv;
use common::worker_process::*;
use serde_json::json;

const SECRET: &str = "s3cr3t-marker-7c1d";

/// Not the default range: uids are host-wide, and each run ends with a
/// `kill(-1)` as its uid, which would also reach the children of a
/// deployment on this host (compose included) that uses the default range.
const TEST_UIDS: &str = "79000-79099";

const PROBE: &str = r#"import os, signal
from runeflow import workflow

@workflow
def probe(secret: str, worker: int):
    found, readable_environ, mem_open = [], 0, []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        for name in ('environ', 'cmdline'):
            try:
                with open(f'/proc/{entry}/{name}', 'rb') as f:
                    data = f.read()
            except OSError:
                continue
            if name == 'environ':
                readable_environ += 1
            if secret.encode() in data:
                found.append(f'{entry}/{name}')
        try:
            with open(f'/proc/{entry}/mem', 'rb') as f:
                mem_open.append(entry)
        except OSError:
            pass
    signalled = []
    for target in (worker, os.getppid()):
        try:
            os.kill(target, 0)
            signalled.append(target)
        except PermissionError:
            pass
    os.write(1, b"raw output on fd 1\n")
    return {'found': found, 'mem': [p for p in mem_open if int(p) != os.getpid()],
            'signalled': signalled, 'uid': os.getuid(), 'readable_environ': readable_environ}

@workflow(timeout=2)
def escape(pidfile: str):
    import time
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            with open(pidfile, 'w') as f:
                f.write(str(os.getpid()))
            while True:
                pass
        os._exit(0)
    time.sleep(30)
"#;

fn debian_python() -> Option<&'static str> {
    std::path::Path::new("/usr/bin/python3")
        .exists()
        .then_some("/usr/bin/python3")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_code_reaches_no_secret_and_no_neighbour() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let Some(python) = debian_python() else {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    };
    let env = TestEnv::new().await;
    env.put_files(&[("probe.py", PROBE)]).await;
    let worker = WorkerProcess::spawn(
        &env,
        "w",
        &[
            ("RUNEFLOW_CHILD_USERS", "required"),
            ("RUNEFLOW_CHILD_UID_RANGE", TEST_UIDS),
            ("RUNEFLOW_PYTHON", python),
            ("RUNEFLOW_API_TOKEN", SECRET),
            ("RUNEFLOW_CONCURRENCY", "2"),
        ],
    );
    let id = submit(
        &env,
        "probe",
        json!({"secret": SECRET, "worker": worker.pid()}),
    )
    .await;
    let done = wait_final(&env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "success", "{done}\n{}", worker.log());
    let report = &done["result"];
    assert_ne!(report["uid"], 0, "{report}");
    assert_eq!(report["found"], json!([]), "secret readable: {report}");
    assert_eq!(report["mem"], json!([]), "memory readable: {report}");
    assert_eq!(
        report["signalled"],
        json!([]),
        "neighbour signalled: {report}"
    );
    let logs = done["logs"].as_str().unwrap_or_default();
    assert!(logs.contains("raw output on fd 1"), "{logs}");

    // A spinner that left its session dies when the execution times out.
    assert_escaped_spinner_dies(&env).await;
    env.cleanup().await;
}

/// Runs `escape` (a spinner that left its session, then a timeout) and
/// asserts the spinner does not outlive the execution.
async fn assert_escaped_spinner_dies(env: &TestEnv) {
    let pidfile = std::env::temp_dir().join(format!("{}_spinner", env.name));
    let _ = std::fs::remove_file(&pidfile);
    let id = submit(
        env,
        "escape",
        json!({"pidfile": pidfile.display().to_string()}),
    )
    .await;
    let done = wait_final(env, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "timeout", "{done}");
    let spinner: i32 = std::fs::read_to_string(&pidfile)
        .expect("the spinner wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        eventually(Duration::from_secs(5), || !alive(spinner)).await,
        "the setsid spinner {spinner} outlived its execution"
    );
    let _ = std::fs::remove_file(&pidfile);
}

/// Without child users, the subreaper still catches a spinner that left
/// its session when the execution times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_descendants_die_without_child_users() {
    let env = TestEnv::new().await;
    env.put_files(&[("probe.py", PROBE)]).await;
    let _worker = WorkerProcess::spawn(&env, "w", &[]);
    assert_escaped_spinner_dies(&env).await;
    env.cleanup().await;
}

/// An interpreter the child uids cannot read is a clear start-up error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_interpreter_is_a_start_up_error() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let python = real_python();
    if !python.starts_with("/root") {
        eprintln!("skipped: {python} is readable by all");
        return;
    }
    let env = TestEnv::new().await;
    let mut worker = WorkerProcess::spawn(
        &env,
        "w",
        &[
            ("RUNEFLOW_CHILD_USERS", "required"),
            ("RUNEFLOW_CHILD_UID_RANGE", TEST_UIDS),
            ("RUNEFLOW_PYTHON", &python),
        ],
    );
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| !s.success()), "{}", worker.log());
    assert!(
        worker.log().contains("cannot run as child uid"),
        "{}",
        worker.log()
    );
    drop(worker);
    // Named through PATH, with the unreadable folder first: the child uid's
    // lookup falls through to another interpreter (which imports fine), so
    // the check compares where each of the two runs from.
    let folder = std::path::Path::new(&python).parent().unwrap();
    let path = format!(
        "{}:{}",
        folder.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut worker = WorkerProcess::spawn(
        &env,
        "w2",
        &[
            ("RUNEFLOW_CHILD_USERS", "required"),
            ("RUNEFLOW_CHILD_UID_RANGE", TEST_UIDS),
            ("RUNEFLOW_PYTHON", "python3"),
            ("PATH", &path),
        ],
    );
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    let log = worker.log();
    if !std::path::Path::new("/usr/bin/python3").exists() {
        eprintln!("no /usr/bin/python3 to fall through to: only the refusal is checked");
    } else {
        assert!(log.contains("as the worker it runs from"), "{log}");
    }
    assert!(status.is_some_and(|s| !s.success()), "{log}");
    env.cleanup().await;
}

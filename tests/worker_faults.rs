//! Worker faults end to end: a scrubbed child environment, a worker killed
//! mid-execution, Redis flushed or restarted under a running worker, hostile
//! frames from a child, the memory rlimit, bounded retries and SIGTERM drain.
//!
//! Real PostgreSQL, Redis and python3; each test has its own `TestEnv`. Some
//! tests run the real `runeflow worker` binary as a child process (in its
//! own process group, so it can be killed with everything it started).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{TestEnv, test_worker_config};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use runeflow_api::queue::{Enqueue, JobQueue};
use runeflow_shared::jobs::{RunDetails, RunWorkflow};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use common::worker_process::*;

const HELLO: &str = "from runeflow import workflow\n\n@workflow\ndef hello(name: str = 'world'):\n    return {'greeting': f'hello {name}'}\n";

// ---------------------------------------------------------------- 1. environment

const ENV_PROBE: &str = r#"import os, socket
from runeflow import workflow

@workflow
def env_probe():
    fds = {}
    for name in os.listdir('/proc/self/fd'):
        try:
            fds[name] = os.readlink(f'/proc/self/fd/{name}')
        except OSError:
            fds[name] = None  # the descriptor listdir used, closed by now
    sockets = []
    for fd, target in fds.items():
        if target and target.startswith('socket:'):
            s = socket.socket(fileno=os.dup(int(fd)))
            try:
                sockets.append({'fd': int(fd), 'family': int(s.family), 'type': int(s.type),
                                'name': str(s.getsockname()), 'peer': str(s.getpeername()),
                                'inheritable': os.get_inheritable(int(fd))})
            finally:
                s.close()
    with open('/proc/self/environ', 'rb') as f:
        initial = [kv.split(b'=', 1)[0].decode() for kv in f.read().split(b'\0') if kv]
    return {'env': dict(os.environ), 'initial_env': initial, 'fds': fds, 'sockets': sockets,
            'pid': os.getpid(), 'pgid': os.getpgid(0), 'ppid': os.getppid()}
"#;

/// RUNEFLOW_CHILD_ENV cannot hand Runeflow's own secrets to user code: a
/// worker asked to is refused at start-up, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_env_naming_a_runeflow_secret_is_refused() {
    let env = TestEnv::new().await;
    let mut worker = WorkerProcess::spawn(
        &env,
        "leaky",
        &[("RUNEFLOW_CHILD_ENV", "LANG,RUNEFLOW_SECRET_KEY")],
    );
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| !s.success()), "{}", worker.log());
    assert!(
        worker
            .log()
            .contains("RUNEFLOW_CHILD_ENV names RUNEFLOW_SECRET_KEY"),
        "{}",
        worker.log()
    );
    env.cleanup().await;
}

/// Nothing of the worker's environment reaches user code except the
/// allow-list and the names in RUNEFLOW_CHILD_ENV; the child holds no
/// descriptor but stdio and its one unnamed socket to the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_environment_is_scrubbed() {
    let env = TestEnv::new().await;
    let worker = WorkerProcess::spawn(
        &env,
        "scrub",
        &[
            ("RUNEFLOW_API_TOKEN", "secret-api-token"),
            (
                "RUNEFLOW_SECRET_KEY",
                "5ec7e7000000000000000000000000000000000000000000000000000000c0de",
            ),
            ("SOME_OTHER_SECRET", "hunter2"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            (
                "RUNEFLOW_CHILD_ENV",
                "RUNEFLOW_TEST_PASSTHROUGH,NOT_SET_ANYWHERE",
            ),
            ("RUNEFLOW_TEST_PASSTHROUGH", "visible-to-user-code"),
            ("LANG", "C.UTF-8"),
            ("LC_CTYPE", "C.UTF-8"),
            ("LC_TIME", "C.UTF-8"),
            ("TZ", "UTC"),
            ("TERM", "dumb"),
        ],
    );
    env.put_files(&[("flows/probe.py", ENV_PROBE)]).await;
    let id = submit(&env, "env_probe", json!({})).await;
    let e = wait_final(&env, &id, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    let r = &e["result"];

    let keys: BTreeSet<String> = r["env"].as_object().unwrap().keys().cloned().collect();
    let initial: BTreeSet<String> = r["initial_env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    println!("child environment: {keys:?} (at exec: {initial:?})");
    let allowed = |k: &str| {
        matches!(
            k,
            "PATH" | "LANG" | "TZ" | "TERM" | "HOME" | "PYTHONIOENCODING"
        ) || k.starts_with("LC_")
            || k == "RUNEFLOW_TEST_PASSTHROUGH"
    };
    for k in keys.iter().chain(initial.iter()) {
        assert!(
            allowed(k),
            "'{k}' leaked into the child environment: {keys:?}"
        );
    }
    for secret in [
        "DATABASE_URL",
        "REDIS_URL",
        "RUNEFLOW_API_TOKEN",
        "RUNEFLOW_SECRET_KEY",
        "SOME_OTHER_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "RUNEFLOW_REDIS_PREFIX",
        "RUNEFLOW_CHILD_ENV",
    ] {
        assert!(!keys.contains(secret), "{secret} visible to user code");
    }
    let all_values = r["env"].to_string();
    for value in [
        env.database_url.as_str(),
        env.redis_url.as_str(),
        "secret-api-token",
        "5ec7e7000000000000000000000000000000000000000000000000000000c0de",
        "hunter2",
        "aws-secret",
    ] {
        assert!(
            !all_values.contains(value),
            "a secret value leaked: {value}"
        );
    }
    assert_eq!(
        r["env"]["RUNEFLOW_TEST_PASSTHROUGH"],
        "visible-to-user-code"
    );
    assert!(!keys.contains("NOT_SET_ANYWHERE"), "unset names stay unset");
    assert_eq!(r["env"]["TZ"], "UTC");
    assert_eq!(r["env"]["LANG"], "C.UTF-8");
    assert_eq!(r["env"]["LC_CTYPE"], "C.UTF-8");
    // Only LC_ALL and LC_CTYPE are on the worker's allow-list today; other
    // LC_* names (LC_TIME here) may pass or not, never anything else.
    if let Some(v) = r["env"].get("LC_TIME") {
        assert_eq!(v, "C.UTF-8");
    }
    assert_eq!(r["env"]["TERM"], "dumb");
    assert_eq!(r["env"]["PYTHONIOENCODING"], "utf-8");
    assert!(r["env"]["PATH"].is_string());
    // No socket path (nor any other path naming a service) is handed over.
    assert!(
        !all_values.contains(".sock") && !all_values.contains("redis://"),
        "{all_values}"
    );

    // Descriptors: stdin = /dev/null, stdout/stderr = the zygote's pipes,
    // exactly one socket (unnamed, no peer path: a socketpair), and at most
    // one more entry that was the directory listing itself.
    let fds: BTreeMap<String, Value> = r["fds"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    println!("child descriptors: {fds:?}; sockets: {}", r["sockets"]);
    assert_eq!(fds["0"], "/dev/null", "{fds:?}");
    assert!(fds["1"].as_str().unwrap().starts_with("pipe:"), "{fds:?}");
    assert!(fds["2"].as_str().unwrap().starts_with("pipe:"), "{fds:?}");
    let sockets = r["sockets"].as_array().unwrap();
    assert_eq!(sockets.len(), 1, "exactly one socket: {fds:?}");
    let sock = &sockets[0];
    assert_eq!(sock["family"], 1, "AF_UNIX: {sock}");
    assert_eq!(sock["name"], "", "unnamed (no path on disk): {sock}");
    assert_eq!(sock["peer"], "", "peer unnamed too: {sock}");
    assert_eq!(sock["inheritable"], false, "not passed to subprocesses");
    let others: Vec<_> = fds
        .iter()
        .filter(|(fd, target)| {
            !matches!(fd.as_str(), "0" | "1" | "2")
                && target.as_str().is_none_or(|t| !t.starts_with("socket:"))
        })
        .collect();
    assert!(
        others.len() <= 1 && others.iter().all(|(_, t)| t.is_null()),
        "unexpected descriptors in the child: {others:?}"
    );
    // Its own process group, so a timeout kills everything it started.
    assert_eq!(r["pgid"], r["pid"]);
    drop(worker);
    env.cleanup().await;
}

/// A descriptor the worker inherited from whatever started it (a
/// supervisor's pipe, a socket-activation fd) must not reach user code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherited_descriptors_do_not_reach_the_child() {
    let env = TestEnv::new().await;
    let secret = std::env::temp_dir().join(format!("{}-supervisor-secret", env.name));
    std::fs::write(&secret, "supervisor state").unwrap();
    let file = std::fs::File::open(&secret).unwrap();
    let worker = WorkerProcess::spawn_with(&env, "fds", &[], Some(file.as_raw_fd()));
    env.put_files(&[("flows/probe.py", ENV_PROBE)]).await;
    let id = submit(&env, "env_probe", json!({})).await;
    let e = wait_final(&env, &id, Duration::from_secs(30)).await;
    drop(worker);
    let _ = std::fs::remove_file(&secret);
    env.cleanup().await;
    assert_eq!(e["status"], "success", "{e}");
    let fds = e["result"]["fds"].as_object().unwrap();
    let leaked: Vec<_> = fds
        .iter()
        .filter(|(_, t)| t.as_str() == Some(secret.to_str().unwrap()))
        .collect();
    assert!(
        leaked.is_empty(),
        "user code holds the worker's inherited descriptor: {leaked:?} (all: {fds:?})"
    );
}

// ---------------------------------------------------------------- 2. SIGKILL

const SLOW: &str = r#"import os, pathlib, subprocess, time
from runeflow import workflow, context

@workflow
def slow_once(marker_dir: str, sleep: float = 5.0, helper: bool = False):
    runs = pathlib.Path(marker_dir) / f'{context.execution_id}.runs'
    first = not runs.exists()
    if first and helper:
        # A subprocess of the workflow's own, in its process group.
        sleeper = subprocess.Popen(['sleep', '120'])
        (pathlib.Path(marker_dir) / f'{context.execution_id}.helper').write_text(str(sleeper.pid))
    with open(runs, 'a') as f:
        f.write(f'{os.getpid()}\n')
    if first:
        time.sleep(sleep)
    return {'pid': os.getpid(), 'first': first}
"#;

/// A worker process SIGKILLed mid-execution (as the OOM killer would): its
/// zygote exits on its own (EOF on the control socket) and takes the
/// execution's child and the workflow's own subprocess with it; after the
/// orphan timeout (1 s × 3 here) another worker runs the execution again,
/// as attempt 2, and records it once under its own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_execution_is_rerun_elsewhere() {
    let env = TestEnv::new().await;
    let markers = marker_dir(&env);
    env.put_files(&[("flows/slow.py", SLOW)]).await;
    let mut a = WorkerProcess::spawn(&env, "a", &[]);
    let id = submit(
        &env,
        "slow_once",
        json!({"marker_dir": markers.display().to_string(), "sleep": 30.0, "helper": true}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    let running = wait_execution(&env, &id, Duration::from_secs(20), "running on A", |e| {
        e["status"] == "running"
    })
    .await;
    assert_eq!(running["worker"].as_str(), Some(a.name.as_str()));
    assert_eq!(running["attempt"], 1);
    assert!(
        eventually(Duration::from_secs(10), || lines(&runs).len() == 1).await,
        "the first run never started its workflow"
    );
    let first_pid: i32 = lines(&runs)[0].parse().unwrap();
    let helper: i32 = std::fs::read_to_string(markers.join(format!("{id}.helper")))
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(helper), "the workflow's subprocess runs");
    let interpreters = children_of(a.pid());
    assert_eq!(
        interpreters.len(),
        2,
        "a zygote and a compiler under the worker: {interpreters:?}"
    );
    let zygote = interpreters
        .iter()
        .copied()
        .find(|p| children_of(*p).contains(&first_pid))
        .expect("the zygote forked the execution's child");
    // The zygote's other children (an idle spare, if it keeps one).
    let spares: Vec<i32> = children_of(zygote)
        .into_iter()
        .filter(|p| *p != first_pid)
        .collect();

    // Only the worker process dies; its zygote sees EOF on its control
    // socket and exits by itself.
    a.kill_worker_only();
    let killed = Instant::now();
    for z in interpreters.iter().chain(&spares) {
        assert!(
            eventually(Duration::from_secs(5), || !alive(*z)).await,
            "zygote, compiler or spare {z} of the killed worker still runs"
        );
    }
    // The zygote killed the execution's process group on its way out.
    for (what, pid) in [("attempt-1 child", first_pid), ("its subprocess", helper)] {
        let gone = eventually(Duration::from_secs(5), || !alive(pid)).await;
        if !gone {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        assert!(
            gone,
            "{what} {pid} still runs 5 s after its worker was killed"
        );
    }

    let mut config = test_worker_config();
    config.worker_name = Some(format!("{}-b", env.name));
    let b = env.start_worker(config).await;
    let e = wait_final(&env, &id, Duration::from_secs(30)).await;
    let rerun = killed.elapsed();
    println!("kill → re-run finished on B: {:.2} s", rerun.as_secs_f64());
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["attempt"], 2, "{e}");
    assert_eq!(e["worker"], format!("{}-b", env.name));
    assert_eq!(e["result"]["first"], false, "{e}");
    assert!(e["finished_at"].is_string());
    assert!(rerun < Duration::from_secs(30));
    let pids = lines(&runs);
    assert_eq!(pids.len(), 2, "ran once on A, once on B: {pids:?}");

    // Exactly once: the row is final and stays so.
    let row = wait_execution(&env, &id, Duration::from_secs(1), "row", |_| true).await;
    assert_eq!(row["finished_at"], e["finished_at"]);
    assert_eq!(row["attempt"], 2);

    b.stop().await;
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

/// The child of a SIGKILLed worker (here with its whole process group, as
/// `kill -9 -PGID` would) must not go on running user code, in parallel
/// with the re-run on another worker: it dies with its zygote
/// (PR_SET_PDEATHSIG). A workflow's own subprocesses survive this case
/// (the zygote had no chance to kill their group); a container stop or
/// `systemctl kill` ends them too, as they kill by cgroup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_leaves_no_running_child() {
    let env = TestEnv::new().await;
    let markers = marker_dir(&env);
    env.put_files(&[("flows/slow.py", SLOW)]).await;
    let mut a = WorkerProcess::spawn(&env, "a", &[]);
    let id = submit(
        &env,
        "slow_once",
        json!({"marker_dir": markers.display().to_string(), "sleep": 20.0}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    assert!(
        eventually(Duration::from_secs(20), || lines(&runs).len() == 1).await,
        "the workflow never started"
    );
    let pid: i32 = lines(&runs)[0].parse().unwrap();
    a.kill_group();
    let gone = eventually(Duration::from_secs(3), || !alive(pid)).await;
    if !gone {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
    assert!(
        gone,
        "child {pid} kept running user code 3 s after its worker and zygote were killed"
    );
}

// ---------------------------------------------------------------- 3. FLUSHDB

const UTIL: &str = "def double(x):\n    return 2 * x\n";
const COLD_FLOW: &str = "from runeflow import workflow\nfrom lib.util import double\n\n@workflow\ndef cold(x: int = 21):\n    return double(x)\n";

/// Redis loses everything (FLUSHDB) under a running, idle worker: the next
/// executions still succeed with no restart by hand (the monitor restarts
/// the apalis worker, which dies on "worker not registered"; the mirror
/// rebuilds the store from PostgreSQL), and the index and blobs are back
/// in Redis afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_under_a_running_worker() {
    // A Redis database of its own: FLUSHDB cannot hurt other tests.
    let env = TestEnv::with_redis(common::redis_url_db(14)).await;
    let worker = WorkerProcess::spawn(&env, "flush", &[]);
    let files = [
        ("lib/__init__.py", ""),
        ("lib/util.py", UTIL),
        ("flows/cold.py", COLD_FLOW),
    ];
    env.put_files(&files).await;
    let t = Instant::now();
    let e = env.execute("cold", json!({"x": 21})).await;
    let first = t.elapsed();
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["result"], 42);
    let t = Instant::now();
    let e = env.execute("cold", json!({"x": 1})).await;
    let warm = t.elapsed();
    assert_eq!(e["result"], 2);

    let mut conn = env.store().connection();
    let () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    assert!(env.store().index().await.unwrap().is_empty());

    // At once, before the apalis worker noticed anything.
    let t = Instant::now();
    let e = env.execute("cold", json!({"x": 5})).await;
    let cold = t.elapsed();
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    assert_eq!(e["result"], 10);

    // The apalis worker dies at its next heartbeat ("worker not
    // registered") and the monitor starts it again under a new name.
    assert!(
        eventually(Duration::from_secs(10), || worker
            .log()
            .contains("worker loop failed; restarting it"))
        .await,
        "the apalis worker never noticed the flush\n{}",
        worker.log()
    );
    let t = Instant::now();
    let e = env.execute("cold", json!({"x": 6})).await;
    let restarted = t.elapsed();
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    assert_eq!(e["result"], 12);
    println!(
        "first run {:.0} ms, warm {:.0} ms; right after FLUSHDB {:.0} ms; after the apalis worker restart {:.0} ms",
        first.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3,
        restarted.as_secs_f64() * 1e3
    );

    // The store is whole again: index entries and their blobs.
    let index = env.store().index().await.unwrap();
    for (path, _) in files {
        assert!(index.contains_key(path), "{path} not re-indexed: {index:?}");
    }
    for (path, sha) in &index {
        let exists = env.store().blob(sha).await.unwrap().is_some();
        assert!(exists, "blob of {path} not back in Redis");
    }
    assert!(env.store().is_complete().await.unwrap());

    // And it keeps working (a new module version is seen at once).
    env.put_files(&[("lib/util.py", "def double(x):\n    return 3 * x\n")])
        .await;
    let e = env.execute("cold", json!({"x": 5})).await;
    assert_eq!(e["result"], 15, "{e}");
    drop(worker);
    env.cleanup().await;
}

// ---------------------------------------------------------------- 4. hostile frames

const HOSTILE: &str = r#"import os, time
from runeflow import workflow

def _socket_fd():
    for name in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{name}').startswith('socket:'):
                return int(name)
        except OSError:
            pass
    raise RuntimeError('no socket')

def _frame(body):
    return len(body).to_bytes(4, 'big') + body

@workflow
def hostile(kind: str):
    fd = _socket_fd()
    if kind == 'huge_header':
        os.write(fd, (0x7fffffff).to_bytes(4, 'big') + b'junk' * 1024)
    elif kind == 'bad_json':
        os.write(fd, _frame(b'{"op": "log", "text": "unterminated'))
    elif kind == 'not_utf8':
        os.write(fd, _frame(b'{"op": "log", "text": "\xff\xfe"}'))
    elif kind == 'unknown_op':
        os.write(fd, _frame(b'{"op": "exec", "command": "rm -rf /"}'))
    elif kind == 'bad_result':
        os.write(fd, _frame(b'{"op": "result", "status": "maybe"}'))
    elif kind == 'not_an_object':
        os.write(fd, _frame(b'[1, 2, 3]'))
    elif kind == 'truncated':
        os.write(fd, (1000).to_bytes(4, 'big') + b'{"op": "lo')
        os._exit(0)
    time.sleep(60)  # the worker ends the execution and kills us first
    return 'not reached'
"#;

/// A child that writes garbage on its socket fails its own execution with a
/// clear error type; the worker goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_fail_only_their_execution() {
    let env = TestEnv::new().await;
    let worker = env.start_worker(test_worker_config()).await;
    env.put_files(&[("flows/hostile.py", HOSTILE), ("flows/hello.py", HELLO)])
        .await;
    let cases = [
        ("huge_header", "ProtocolError", "over the limit"),
        ("bad_json", "ProtocolError", "malformed"),
        ("not_utf8", "ProtocolError", "malformed"),
        ("unknown_op", "ProtocolError", "malformed"),
        ("bad_result", "ProtocolError", "malformed"),
        ("not_an_object", "ProtocolError", "malformed"),
        ("truncated", "ChildDied", "exited without reporting"),
    ];
    for (kind, error_type, message) in cases {
        let t = Instant::now();
        let e = env.execute("hostile", json!({"kind": kind})).await;
        assert_eq!(e["status"], "failed", "{kind}: {e}");
        assert_eq!(e["error"]["type"], error_type, "{kind}: {e}");
        let text = e["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{kind}: {text}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{kind}: took {:?} (ended by the 60 s sleep?)",
            t.elapsed()
        );
        let ok = env.execute("hello", json!({"name": kind})).await;
        assert_eq!(ok["status"], "success", "after {kind}: {ok}");
        assert_eq!(ok["result"]["greeting"], format!("hello {kind}"));
    }
    worker.stop().await;
    env.cleanup().await;
}

// ---------------------------------------------------------------- 5. memory

const MEMORY: &str = r#"from runeflow import workflow

@workflow
def hog(mib: int):
    data = b'x' * (mib << 20)
    return len(data) >> 20
"#;

/// With a 256 MiB address-space limit, allocating 1 GiB raises MemoryError
/// in the child (a recorded failure); a modest allocation still works and
/// the worker goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_gives_memory_error() {
    let env = TestEnv::new().await;
    let mut config = test_worker_config();
    config.memory_limit_mb = 256;
    let worker = env.start_worker(config).await;
    env.put_files(&[("flows/hog.py", MEMORY), ("flows/hello.py", HELLO)])
        .await;
    let e = env.execute("hog", json!({"mib": 1024})).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["error"]["type"], "MemoryError", "{e}");
    assert_eq!(e["attempt"], 1);
    let e = env.execute("hog", json!({"mib": 32})).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["result"], 32);
    let e = env.execute("hello", json!({})).await;
    assert_eq!(e["status"], "success", "{e}");
    worker.stop().await;
    env.cleanup().await;
}

// ---------------------------------------------------------------- 6. bounded retries

const SIDE_EFFECT: &str = r#"import os, pathlib
from runeflow import workflow, context

@workflow
def effect(marker_dir: str):
    with open(pathlib.Path(marker_dir) / f'{context.execution_id}.runs', 'a') as f:
        f.write(f'{os.getpid()}\n')
    return 'ran'
"#;

/// An execution already lost `max_attempts` times is failed with
/// `WorkerLost` and its workflow does not run again; pushing the same
/// execution several times runs it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_duplicates_run_once() {
    let env = TestEnv::new().await;
    let markers = marker_dir(&env);
    let params = json!({"marker_dir": markers.display().to_string()});
    env.put_files(&[("flows/effect.py", SIDE_EFFECT), ("flows/hello.py", HELLO)])
        .await;
    let queue = JobQueue::new(env.store().connection(), &env.name);

    // (a) Queued with no worker up; then it is marked as lost 3 times.
    let lost = submit(&env, "effect", params.clone()).await;
    env.db
        .execute_unprepared(&format!(
            "UPDATE executions SET attempt = 3, queued_at = now() - interval '1 minute' WHERE id = '{lost}'"
        ))
        .await
        .unwrap();
    // The reconciler's re-push of a job still queued is a no-op.
    let pushed = runeflow_api::reconcile::repush_stale(
        &env.db,
        &Enqueue::new(env.db.clone(), queue.clone()),
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(pushed, 1);

    // (b) Queued, then pushed again twice, still with no worker up.
    let dup = submit(&env, "effect", params.clone()).await;
    let version = env.store().version().await.unwrap();
    let job = RunWorkflow {
        execution_id: dup.parse().unwrap(),
        workspace: version,
        run: RunDetails {
            path: "flows/effect.py".into(),
            function: "effect".into(),
            parameters: params.clone(),
            timeout_seconds: None,
            max_concurrency: None,
        },
    };
    queue.push(&job, 0).await.unwrap();
    queue.push(&job, 0).await.unwrap();

    let mut config = test_worker_config();
    config.concurrency = 1;
    let worker = env.start_worker(config).await;

    let e = wait_final(&env, &lost, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["error"]["type"], "WorkerLost", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("3 times"),
        "{e}"
    );
    assert!(e["attempt"].as_i64().unwrap() > 3, "{e}");
    assert!(e["finished_at"].is_string());
    assert!(
        lines(&markers.join(format!("{lost}.runs"))).is_empty(),
        "the workflow ran although the execution gave up"
    );

    let e = wait_final(&env, &dup, Duration::from_secs(30)).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["attempt"], 1, "{e}");

    // Pushed again once finished (a child is then prepared, but never told
    // to go): nothing runs. A later execution on the same one-at-a-time
    // worker finishing proves the queue moved past it.
    deliver_again(&env, &job).await;
    let after = env.execute("hello", json!({})).await;
    assert_eq!(after["status"], "success");
    let e = wait_final(&env, &dup, Duration::from_secs(1)).await;
    assert_eq!(e["attempt"], 1, "{e}");
    assert_eq!(
        lines(&markers.join(format!("{dup}.runs"))).len(),
        1,
        "one side effect"
    );

    // A late duplicate delivery of a final execution is acknowledged only.
    let start =
        runeflow_worker::record::start(&env.db, dup.parse().unwrap(), "late-duplicate", 3, None)
            .await
            .unwrap();
    assert!(
        matches!(start, runeflow_worker::record::Start::Skip),
        "{start:?}"
    );
    let e = wait_final(&env, &dup, Duration::from_secs(1)).await;
    assert_eq!(e["attempt"], 1);
    assert_ne!(e["worker"], "late-duplicate");

    worker.stop().await;
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

/// Pushes `job` as a new task (a fresh task id and idempotency key), as
/// apalis's at-least-once delivery may hand it over again; `JobQueue::push`
/// of the same execution would be skipped as a duplicate.
async fn deliver_again(env: &TestEnv, job: &RunWorkflow) {
    use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
    let config = runeflow_queue::config::config(&env.name);
    let mut storage = apalis_redis::RedisStorage::<RunWorkflow>::new(env.store().connection())
        .with_config(config);
    let task = TaskBuilder::new(job.clone())
        .task_id(TaskId::from_string(uuid::Uuid::now_v7().to_string()))
        .build();
    storage.push_task(task).await.unwrap();
}

// ---------------------------------------------------------------- 7. Redis restart

/// POSTs until the API can reach Redis again, then waits for the outcome.
async fn execute_when_reachable(
    env: &TestEnv,
    workflow: &str,
    parameters: Value,
    timeout: Duration,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let r = env
            .post_json(
                "/api/executions",
                json!({"workflow": workflow, "parameters": parameters, "wait": 30}),
            )
            .await;
        match r.status {
            StatusCode::OK => return r.json(),
            StatusCode::ACCEPTED => {
                let id = r.json()["id"].as_str().unwrap().to_owned();
                return wait_final(env, &id, deadline.saturating_duration_since(Instant::now()))
                    .await;
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "POST still failing: {other} {}",
                    r.text()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Redis restarted (empty) under a running worker: the monitor rebuilds
/// the apalis worker, the module store is rebuilt from PostgreSQL, and
/// executions succeed again, without restarting the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_a_running_worker() {
    let port = common::free_port();
    let mut redis = RedisServer(common::start_redis(port));
    let env = TestEnv::with_redis(format!("redis://127.0.0.1:{port}/0")).await;
    let worker = WorkerProcess::spawn(&env, "rr", &[]);
    env.put_files(&[
        ("lib/__init__.py", ""),
        ("lib/util.py", UTIL),
        ("flows/cold.py", COLD_FLOW),
    ])
    .await;
    let e = execute_when_reachable(&env, "cold", json!({"x": 1}), Duration::from_secs(30)).await;
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());

    // Down for a moment, then back empty on the same port.
    redis.0.kill().unwrap();
    redis.0.wait().unwrap();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut redis_again = RedisServer(common::start_redis(port));
    std::mem::swap(&mut redis, &mut redis_again);
    drop(redis_again);
    let up = Instant::now();
    let restarts_while_down = worker.log().matches("restarting it").count();

    // Nothing re-written yet: the worker rebuilds the store from PostgreSQL.
    let e = execute_when_reachable(&env, "cold", json!({"x": 2}), Duration::from_secs(30)).await;
    let back = up.elapsed();
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    assert_eq!(e["result"], 4);
    println!(
        "Redis down {:.1} s; first success {:.2} s after it came back; worker loop restarts logged: {} while down, {} in all",
        (up - down).as_secs_f64(),
        back.as_secs_f64(),
        restarts_while_down,
        worker.log().matches("restarting it").count()
    );

    // Files written again after the restart are served at once.
    env.put_files(&[("lib/util.py", "def double(x):\n    return 10 * x\n")])
        .await;
    let e = execute_when_reachable(&env, "cold", json!({"x": 2}), Duration::from_secs(30)).await;
    assert_eq!(e["result"], 20, "{e}");
    assert_eq!(
        e["worker"].as_str().map(|w| w.starts_with(&worker.name)),
        Some(true),
        "{e}"
    );
    drop(worker);
    env.cleanup().await;
    drop(redis);
}

// ---------------------------------------------------------------- 8. SIGTERM

/// SIGTERM lets the running execution finish (drain), then the process
/// exits 0 and its zygote goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_running_execution() {
    let env = TestEnv::new().await;
    let markers = marker_dir(&env);
    env.put_files(&[("flows/slow.py", SLOW)]).await;
    let mut worker = WorkerProcess::spawn(
        &env,
        "term",
        &[("RUNEFLOW_DRAIN_SECS", "20"), ("RUNEFLOW_CONCURRENCY", "2")],
    );
    let id = submit(
        &env,
        "slow_once",
        json!({"marker_dir": markers.display().to_string(), "sleep": 2.0}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    assert!(
        eventually(Duration::from_secs(20), || lines(&runs).len() == 1).await,
        "the workflow never started\n{}",
        worker.log()
    );
    let zygotes = children_of(worker.pid());
    let t = Instant::now();
    kill(Pid::from_raw(worker.pid()), Signal::SIGTERM).unwrap();
    // Queued while the worker drains (it has a free slot): it must not be
    // lost, whoever runs it.
    let later = submit(
        &env,
        "slow_once",
        json!({"marker_dir": markers.display().to_string(), "sleep": 0.0}),
    )
    .await;
    let status = worker.wait_exit(Duration::from_secs(25)).await;
    let exited = t.elapsed();
    let e = wait_final(&env, &id, Duration::from_secs(5)).await;
    println!("SIGTERM → exit {:.2} s ({status:?})", exited.as_secs_f64());
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    assert_eq!(e["attempt"], 1);
    assert_eq!(e["result"]["first"], true);
    let status = status.unwrap_or_else(|| panic!("worker still running\n{}", worker.log()));
    assert!(status.success(), "exit {status:?}\n{}", worker.log());
    for z in zygotes {
        assert!(
            eventually(Duration::from_secs(5), || !alive(z)).await,
            "zygote {z} outlived its worker"
        );
    }
    let seen = env.get(&format!("/api/executions/{later}")).await.json();
    println!(
        "queued during the drain: {} (attempt {})",
        seen["status"], seen["attempt"]
    );
    let next = env.start_worker(test_worker_config()).await;
    let e = wait_final(&env, &later, Duration::from_secs(20)).await;
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(
        lines(&markers.join(format!("{later}.runs"))).len(),
        1,
        "ran once"
    );
    next.stop().await;
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

// ---------------------------------------------------------------- 6b. a real worker fault

/// A real infrastructure fault on every delivery (the zygote died and the
/// interpreter is gone, e.g. a venv removed by a deploy) is retried a
/// bounded number of times, then recorded as `WorkerLost`; once Python is
/// back the worker serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_fault_retries_are_bounded() {
    let env = TestEnv::new().await;
    let markers = marker_dir(&env);
    let python = markers.join("python3");
    std::os::unix::fs::symlink(real_python(), &python).unwrap();
    let params = json!({"marker_dir": markers.display().to_string()});
    env.put_files(&[("flows/effect.py", SIDE_EFFECT)]).await;
    let worker = WorkerProcess::spawn(
        &env,
        "fault",
        &[("RUNEFLOW_PYTHON", python.to_str().unwrap())],
    );
    let ok = submit(&env, "effect", params.clone()).await;
    let e = wait_final(&env, &ok, Duration::from_secs(20)).await;
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());

    // The interpreter disappears and the zygote dies: no delivery can fork.
    std::fs::remove_file(&python).unwrap();
    for z in children_of(worker.pid()) {
        let _ = kill(Pid::from_raw(z), Signal::SIGKILL);
    }
    let t = Instant::now();
    let lost = submit(&env, "effect", params.clone()).await;
    let e = wait_final(&env, &lost, Duration::from_secs(30)).await;
    println!(
        "worker fault: gave up after {:.1} s, attempt {}",
        t.elapsed().as_secs_f64(),
        e["attempt"]
    );
    assert_eq!(e["status"], "failed", "{e}\n{}", worker.log());
    assert_eq!(e["error"]["type"], "WorkerLost", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the last fault: could not start Python"),
        "the message says what went wrong: {e}"
    );
    assert_eq!(e["attempt"], 4, "3 attempts lost, the 4th gives up: {e}");
    assert!(lines(&markers.join(format!("{lost}.runs"))).is_empty());
    assert_eq!(
        worker
            .log()
            .matches("the job will be delivered again")
            .count(),
        3,
        "{}",
        worker.log()
    );

    // Python back: the next execution starts a new zygote and succeeds.
    std::os::unix::fs::symlink(real_python(), &python).unwrap();
    let again = submit(&env, "effect", params).await;
    let e = wait_final(&env, &again, Duration::from_secs(20)).await;
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    assert_eq!(e["attempt"], 1);
    drop(worker);
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

/// An interpreter that starts but dies during boot (a crash in a preload,
/// a broken venv) must be noticed at once. `Zygote::start` keeps the
/// zygote's end of the control socket open in the worker (inside the
/// `Command`) until boot ends, so EOF never comes and each attempt waits
/// out BOOT_TIMEOUT (60 s), holding the zygote lock for every execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zygote_dying_at_boot_is_noticed_at_once() {
    let env = TestEnv::new().await;
    let markers = marker_dir(&env);
    let flag = markers.join("python-broken");
    let wrapper = markers.join("python");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'python unavailable' >&2; exit 1; fi\nexec '{}' \"$@\"\n",
            flag.display(),
            real_python()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.put_files(&[("flows/hello.py", HELLO)]).await;
    let worker = WorkerProcess::spawn(
        &env,
        "boot",
        &[("RUNEFLOW_PYTHON", wrapper.to_str().unwrap())],
    );
    let e = env.execute("hello", json!({})).await;
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    std::fs::write(&flag, "").unwrap();
    for z in children_of(worker.pid()) {
        let _ = kill(Pid::from_raw(z), Signal::SIGKILL);
    }
    let id = submit(&env, "hello", json!({})).await;
    let noticed = eventually(Duration::from_secs(10), || {
        worker.log().contains("the job will be delivered again")
    })
    .await;
    let log = worker.log();
    drop(worker);
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
    assert!(
        noticed,
        "execution {id}: the failed zygote boot was not noticed within 10 s\n{log}"
    );
}

// ---------------------------------------------------------------- 7b. Redis trouble mid-execution

/// Every client connection dropped (no data lost) while an execution runs:
/// the apalis worker dies on the error and its in-flight handler is
/// dropped, but the run is a task of its own: it goes on, and the job,
/// reclaimed as an orphan, joins it (or finds it final). So the workflow
/// runs once, as attempt 1, and ends `success`, recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connections_dropped_mid_execution() {
    let port = common::free_port();
    let _redis = RedisServer(common::start_redis(port));
    let env = TestEnv::with_redis(format!("redis://127.0.0.1:{port}/0")).await;
    let markers = marker_dir(&env);
    env.put_files(&[("flows/slow.py", SLOW)]).await;
    let worker = WorkerProcess::spawn(&env, "blip", &[]);
    let id = submit(
        &env,
        "slow_once",
        json!({"marker_dir": markers.display().to_string(), "sleep": 3.0}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    assert!(
        eventually(Duration::from_secs(20), || lines(&runs).len() == 1).await,
        "never started\n{}",
        worker.log()
    );
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(killed > 0);
    let e = wait_final(&env, &id, Duration::from_secs(25)).await;
    println!(
        "connections dropped mid-execution: {} attempt {}, workflow started {} time(s)",
        e["status"],
        e["attempt"],
        lines(&runs).len()
    );
    assert_eq!(e["status"], "success", "{e}\n{}", worker.log());
    assert_eq!(e["attempt"], 1, "{e}\n{}", worker.log());
    assert_eq!(lines(&runs).len(), 1, "the workflow started once");
    drop(worker);
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

/// Redis loses its data (FLUSHALL, or a restart without persistence) while
/// an execution runs: the job is gone with the data and the apalis worker
/// loop restarts, but the run (a task of its own) goes on and records its
/// outcome; the reconciler re-pushes `running` rows whose job was lost, and
/// such a re-push joins the run or finds it final. It never stays
/// `running` for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_data_loss_mid_execution_is_recovered() {
    let port = common::free_port();
    let _redis = RedisServer(common::start_redis(port));
    let env = TestEnv::with_redis(format!("redis://127.0.0.1:{port}/0")).await;
    let markers = marker_dir(&env);
    env.put_files(&[("flows/slow.py", SLOW)]).await;
    let worker = WorkerProcess::spawn(&env, "loss", &[]);
    let queue = JobQueue::new(env.store().connection(), &env.name);
    let id = submit(
        &env,
        "slow_once",
        json!({"marker_dir": markers.display().to_string(), "sleep": 3.0}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    assert!(
        eventually(Duration::from_secs(20), || lines(&runs).len() == 1).await,
        "never started\n{}",
        worker.log()
    );
    let mut conn = env.store().connection();
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    // The API's reconciler, run often (it runs every 15 s in `runeflow api`).
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let _ = runeflow_api::reconcile::repush_stale(
            &env.db,
            &Enqueue::new(env.db.clone(), queue.clone()),
            Duration::ZERO,
        )
        .await;
        last = env.get(&format!("/api/executions/{id}")).await.json();
        if is_final(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(worker);
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
    assert_eq!(last["status"], "success", "stuck: {last}");
}

//! What a deployment relies on, through the real `runeflow` binary: a
//! worker stopped mid-execution (`docker stop`) finishes it without another
//! worker starting it again; a worker cut off from Redis stops at once and
//! restarts its consumer with backoff; `runeflow worker-health` follows the
//! consumer's heartbeat; secrets left at their `.env.example` values are
//! refused at start-up; logs written to a file carry no colour codes.
//!
//! Real PostgreSQL, Redis and python3; each test has its own `TestEnv` (and,
//! where it stops Redis, its own redis-server).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::TestEnv;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

use common::worker_process::{
    RedisServer, WorkerProcess, alive, eventually, is_final, lines, submit,
};

/// A folder workflow children (whatever uid they run under) can write to.
fn shared_dir(env: &TestEnv, what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}_{what}", env.name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// The test worker binary (`WorkerProcess`: heartbeat 1 s × 3 missed, poll
/// 200 ms, concurrency 1) with a 60 s default timeout and a health file.
struct Worker {
    process: WorkerProcess,
    health: PathBuf,
}

impl Worker {
    fn spawn(env: &TestEnv, label: &str, extra: &[(&str, &str)]) -> Self {
        let health = std::env::temp_dir().join(format!("{}-{label}.health", env.name));
        let health_file = health.display().to_string();
        let mut vars = vec![
            ("RUNEFLOW_DEFAULT_TIMEOUT", "60"),
            ("RUNEFLOW_HEALTH_FILE", health_file.as_str()),
        ];
        vars.extend_from_slice(extra);
        Worker {
            process: WorkerProcess::spawn(env, label, &vars),
            health,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.process.pid())
    }

    fn log(&self) -> String {
        self.process.log()
    }

    /// `runeflow worker-health` on this worker's health file.
    fn health(&self) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_runeflow"))
            .arg("worker-health")
            .env_clear()
            .env("RUNEFLOW_HEALTH_FILE", &self.health)
            .output()
            .expect("run runeflow worker-health");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text.trim().to_owned())
    }

    async fn wait_healthy(&self) {
        assert!(
            eventually(Duration::from_secs(30), || self.health().0).await,
            "worker {} never healthy: {}\n{}",
            self.process.name,
            self.health().1,
            self.log()
        );
    }

    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout).await
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The process (killed with its group, log removed) drops after this.
        let _ = std::fs::remove_file(&self.health);
    }
}

async fn execution(env: &TestEnv, id: &str) -> Value {
    env.get(&format!("/api/executions/{id}")).await.json()
}

/// No ANSI escape sequence (colour codes) in a log written to a file.
fn assert_plain(log: &str) {
    assert!(
        !log.contains('\x1b'),
        "colour codes in a log that is not a terminal:\n{log}"
    );
}

// ---------------------------------------------------------------- drain

const APPEND: &str = r#"import os, pathlib, time
from runeflow import workflow, context

@workflow
def append_twice(marker_dir: str, seconds: float = 8.0):
    path = pathlib.Path(marker_dir) / f'{context.execution_id}.runs'
    with open(path, 'a') as f:
        f.write(f'start {os.getpid()}\n')
    time.sleep(seconds)
    with open(path, 'a') as f:
        f.write(f'end {os.getpid()}\n')
    return {'pid': os.getpid()}
"#;

/// `docker stop` of the worker running an execution: the stopping worker
/// fetches nothing more but keeps the execution's heartbeat until it ends,
/// so the other worker (which reclaims jobs of workers silent for 3 s)
/// never starts it again. The workflow ran once, on the stopped worker,
/// and the process exited 0 after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_keeps_the_execution_on_its_worker() {
    let env = TestEnv::new().await;
    let markers = shared_dir(&env, "markers");
    env.put_files(&[("flows/append.py", APPEND)]).await;
    let mut a = Worker::spawn(&env, "a", &[("RUNEFLOW_DRAIN_SECS", "30")]);
    let mut b = Worker::spawn(&env, "b", &[("RUNEFLOW_DRAIN_SECS", "30")]);
    a.wait_healthy().await;
    b.wait_healthy().await;

    let id = submit(
        &env,
        "append_twice",
        json!({"marker_dir": markers.display().to_string(), "seconds": 8.0}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    assert!(
        eventually(Duration::from_secs(30), || lines(&runs).len() == 1).await,
        "the workflow never started\n{}\n{}",
        a.log(),
        b.log()
    );
    let running = execution(&env, &id).await;
    let owner = running["worker"].as_str().unwrap_or_default().to_owned();
    let (stopped, other) = if owner.starts_with(&a.process.name) {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(owner.starts_with(&stopped.process.name), "{running}");

    let t = Instant::now();
    kill(stopped.pid(), Signal::SIGTERM).unwrap();
    let status = stopped.wait_exit(Duration::from_secs(40)).await;
    let exited = t.elapsed();
    let status = status.unwrap_or_else(|| panic!("worker still running\n{}", stopped.log()));
    let mut e = execution(&env, &id).await;
    for _ in 0..100 {
        if is_final(&e) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        e = execution(&env, &id).await;
    }
    println!(
        "SIGTERM → exit {:.2} s; execution {} attempt {} on {}",
        exited.as_secs_f64(),
        e["status"],
        e["attempt"],
        e["worker"]
    );
    let runs = lines(&runs);
    assert_eq!(
        runs.iter().filter(|l| l.starts_with("start")).count(),
        1,
        "the workflow started more than once: {runs:?}\nstopped:\n{}\nother:\n{}",
        stopped.log(),
        other.log()
    );
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(e["status"], "success", "{e}\n{}", stopped.log());
    assert_eq!(e["attempt"], 1, "{e}");
    assert_eq!(e["worker"].as_str(), Some(owner.as_str()), "{e}");
    assert!(status.success(), "exit {status:?}\n{}", stopped.log());
    assert_plain(&stopped.log());

    // The other worker still serves (and the stopped one took no job
    // queued during its drain along to its grave).
    let later = submit(
        &env,
        "append_twice",
        json!({"marker_dir": markers.display().to_string(), "seconds": 0.0}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(30), || {
            lines(&markers.join(format!("{later}.runs"))).len() == 2
        })
        .await,
        "the next execution never ran\n{}",
        other.log()
    );
    drop(a);
    drop(b);
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

/// When the drain deadline passes first, the stopping worker exits and its
/// child dies with it; the other worker then runs the execution again,
/// once, after the first run was stopped (never both at the same time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_deadline_hands_the_execution_back_once() {
    let env = TestEnv::new().await;
    let markers = shared_dir(&env, "markers");
    env.put_files(&[("flows/append.py", APPEND)]).await;
    let mut a = Worker::spawn(&env, "a", &[("RUNEFLOW_DRAIN_SECS", "1")]);
    a.wait_healthy().await;
    let id = submit(
        &env,
        "append_twice",
        json!({"marker_dir": markers.display().to_string(), "seconds": 6.0}),
    )
    .await;
    let runs = markers.join(format!("{id}.runs"));
    assert!(
        eventually(Duration::from_secs(30), || lines(&runs).len() == 1).await,
        "the workflow never started\n{}",
        a.log()
    );
    let b = Worker::spawn(&env, "b", &[]);
    b.wait_healthy().await;
    kill(a.pid(), Signal::SIGTERM).unwrap();
    let status = a.wait_exit(Duration::from_secs(20)).await;
    let status = status.unwrap_or_else(|| panic!("worker still running\n{}", a.log()));
    assert!(status.success(), "exit {status:?}\n{}", a.log());
    assert!(a.log().contains("drain deadline passed"), "{}", a.log());
    let first_pid = lines(&runs)[0].trim_start_matches("start ").to_owned();
    assert!(
        eventually(Duration::from_secs(5), || !alive(
            first_pid.parse().expect("a pid")
        ))
        .await,
        "the first run's child outlived its worker"
    );
    let mut e = execution(&env, &id).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while !is_final(&e) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        e = execution(&env, &id).await;
    }
    let runs = lines(&runs);
    assert_eq!(e["status"], "success", "{e}\n{}", b.log());
    assert_eq!(e["attempt"], 2, "{e}");
    assert!(
        e["worker"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&b.process.name),
        "{e}"
    );
    // start (first, killed), start (second), end (second).
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(
        runs[1].trim_start_matches("start "),
        runs[2].trim_start_matches("end ")
    );
    drop(b);
    let _ = std::fs::remove_dir_all(&markers);
    env.cleanup().await;
}

// ---------------------------------------------------------------- Redis gone

/// Delays (in ms) of the "restarting it" lines of a worker log.
fn restart_delays(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("worker loop failed; restarting it"))
        .filter_map(|l| {
            let rest = &l[l.find("delay=")? + "delay=".len()..];
            let value: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let unit: String = rest[value.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == 'µ')
                .collect();
            let v: f64 = value.parse().ok()?;
            Some(match unit.as_str() {
                "s" => v * 1000.0,
                "ms" => v,
                "µs" | "us" => v / 1000.0,
                _ => return None,
            })
        })
        .collect()
}

/// With Redis gone, the consumer loop fails again and again: it is
/// restarted with growing delays (not in a tight loop), and an idle worker
/// asked to stop exits at once instead of sitting out RUNEFLOW_DRAIN_SECS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_worker_stops_at_once_when_redis_is_gone() {
    let port = common::free_port();
    let mut redis = RedisServer(common::start_redis(port));
    let env = TestEnv::with_redis(format!("redis://127.0.0.1:{port}/0")).await;
    let mut worker = Worker::spawn(&env, "gone", &[("RUNEFLOW_DRAIN_SECS", "120")]);
    worker.wait_healthy().await;

    redis.0.kill().unwrap();
    redis.0.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(60), || restart_delays(&worker.log())
            .len()
            >= 4)
        .await,
        "the consumer loop was not restarted 4 times\n{}",
        worker.log()
    );
    let delays = restart_delays(&worker.log());
    println!("restart delays while Redis is down (ms): {delays:?}");
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0]) && delays[3] >= 4.0 * delays[0],
        "restarts do not back off: {delays:?}"
    );

    let t = Instant::now();
    kill(worker.pid(), Signal::SIGTERM).unwrap();
    // The drain is 120 s: only an exit that does not wait for it comes
    // within this bound.
    let status = worker.wait_exit(Duration::from_secs(20)).await;
    println!(
        "SIGTERM → exit {:.2} s with Redis down",
        t.elapsed().as_secs_f64()
    );
    let status = status.unwrap_or_else(|| panic!("worker still running\n{}", worker.log()));
    assert!(status.success(), "exit {status:?}\n{}", worker.log());
    assert_plain(&worker.log());
    drop(worker);
    env.cleanup().await;
}

// ---------------------------------------------------------------- health

/// `runeflow worker-health` passes while the consumer heartbeats, fails
/// once Redis is gone (the loop cannot heartbeat) and passes again when
/// Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_health_follows_the_consumer_heartbeat() {
    let port = common::free_port();
    let mut redis = RedisServer(common::start_redis(port));
    let env = TestEnv::with_redis(format!("redis://127.0.0.1:{port}/0")).await;
    let worker = Worker::spawn(&env, "health", &[]);
    worker.wait_healthy().await;
    let (_, said) = worker.health();
    assert!(said.starts_with("healthy: last heartbeat"), "{said}");

    redis.0.kill().unwrap();
    redis.0.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(40), || !worker.health().0).await,
        "still healthy with Redis gone: {}\n{}",
        worker.health().1,
        worker.log()
    );
    let (_, said) = worker.health();
    assert!(
        said.starts_with("runeflow: unhealthy: the worker's last heartbeat was"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one line: {said}");

    let _back = RedisServer(common::start_redis(port));
    worker.wait_healthy().await;
    drop(worker);
    env.cleanup().await;
}

// ---------------------------------------------------------------- secrets

/// `NAME=value` lines of `.env.example`.
fn env_example(name: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example"))
        .expect("read .env.example");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!(".env.example does not set {name}"))
        .to_owned()
}

/// Runs a server subcommand with only `vars`; returns (success, stderr).
fn start(cmd: &str, vars: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runeflow"));
    command
        .arg(cmd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        command.env(k, v);
    }
    let out = command.output().expect("run runeflow");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// The values `cp .env.example .env` gives (with the URLs compose builds
/// from them) are refused by init, api and worker before they connect
/// anywhere, in one line naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_secrets_are_refused_at_start_up() {
    let user = env_example("POSTGRES_USER");
    let db = env_example("POSTGRES_DB");
    let pg_password = env_example("POSTGRES_PASSWORD");
    let redis_password = env_example("REDIS_PASSWORD");
    let token = env_example("RUNEFLOW_API_TOKEN");
    let secret_key = env_example("RUNEFLOW_SECRET_KEY");
    // Unreachable hosts: a refusal must come before any connection.
    let example_db = format!("postgres://{user}:{pg_password}@127.0.0.1:1/{db}");
    let real_db = format!("postgres://{user}:0f3a9c5e@127.0.0.1:1/{db}");
    let example_redis = format!("redis://:{redis_password}@127.0.0.1:1/0");
    let real_redis = "redis://:9b1e77d0@127.0.0.1:1/0".to_owned();

    let cases = [
        (
            "init",
            vec![
                ("DATABASE_URL", example_db.clone()),
                ("REDIS_URL", real_redis.clone()),
            ],
            "DATABASE_URL",
        ),
        (
            "worker",
            vec![
                ("DATABASE_URL", real_db.clone()),
                ("REDIS_URL", example_redis.clone()),
            ],
            "REDIS_URL",
        ),
        (
            "api",
            vec![
                ("DATABASE_URL", real_db.clone()),
                ("REDIS_URL", real_redis.clone()),
                ("RUNEFLOW_API_TOKEN", token.clone()),
            ],
            "RUNEFLOW_API_TOKEN",
        ),
        (
            "worker",
            vec![
                ("DATABASE_URL", real_db.clone()),
                ("REDIS_URL", real_redis.clone()),
                ("RUNEFLOW_SECRET_KEY", secret_key.clone()),
            ],
            "RUNEFLOW_SECRET_KEY",
        ),
    ];
    for (cmd, vars, variable) in cases {
        let (ok, stderr) = start(cmd, &vars);
        assert!(
            !ok,
            "`runeflow {cmd}` started with {variable} at its example value"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "runeflow: {variable} still holds the example value"
            )),
            "{cmd}: {stderr}"
        );
    }

    // Real secrets get past the check (and fail later, on the unreachable
    // PostgreSQL).
    let (ok, stderr) = start(
        "api",
        &[
            ("DATABASE_URL", real_db),
            ("REDIS_URL", real_redis),
            ("RUNEFLOW_API_TOKEN", "3c5e0a7d11".to_owned()),
        ],
    );
    assert!(!ok);
    assert!(!stderr.contains("example value"), "{stderr}");
}

//! Running the real `runeflow worker` binary from tests, and the small
//! process and execution helpers those tests share.
#![allow(dead_code)]

use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use runeflow_shared::executions::Status;
use serde_json::{Value, json};

use super::TestEnv;

/// The interpreter behind `python3` (not a pyenv shim, which would add its
/// own `PYENV_*` variables to the child's environment).
pub fn real_python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    assert!(out.status.success(), "python3 -c failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A fresh folder for marker files a workflow writes.
pub fn marker_dir(env: &TestEnv) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}_markers", env.name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised name) is the state.
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<i32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Queues an execution without waiting; returns its id.
pub async fn submit(env: &TestEnv, workflow: &str, parameters: Value) -> String {
    let r = env
        .post_json(
            "/api/executions",
            json!({"workflow": workflow, "parameters": parameters}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "submit {workflow}: {}",
        r.text()
    );
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Polls GET /api/executions/{id} until `done` holds (or panics at `timeout`).
pub async fn wait_execution(
    env: &TestEnv,
    id: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        let r = env.get(&format!("/api/executions/{id}")).await;
        if r.status == StatusCode::OK {
            last = r.json();
            if done(&last) {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}; last seen {last}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn is_final(e: &Value) -> bool {
    e["status"]
        .as_str()
        .and_then(|s| s.parse::<Status>().ok())
        .is_some_and(Status::is_final)
}

pub async fn wait_final(env: &TestEnv, id: &str, timeout: Duration) -> Value {
    wait_execution(env, id, timeout, "final status", is_final).await
}

/// `runeflow worker` as a child process in its own process group, logging
/// to a file. Killed (with its group) on drop.
pub struct WorkerProcess {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl WorkerProcess {
    /// Starts the binary on `env`'s database and prefix with test timings
    /// (heartbeat 1 s × 3, poll 200 ms, concurrency 1) and an otherwise
    /// clean environment; `extra` adds or overrides variables.
    pub fn spawn(env: &TestEnv, label: &str, extra: &[(&str, &str)]) -> Self {
        Self::spawn_with(env, label, extra, None)
    }

    /// Like [`WorkerProcess::spawn`]. Descriptors this test process holds
    /// without close-on-exec (e.g. a CI runner's pipes) are not passed on,
    /// except `inherit`, which the worker then inherits as an outside
    /// supervisor's descriptor would be.
    pub fn spawn_with(
        env: &TestEnv,
        label: &str,
        extra: &[(&str, &str)],
        inherit: Option<RawFd>,
    ) -> Self {
        let name = format!("{}-{label}", env.name);
        let log = std::env::temp_dir().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_runeflow"));
        command
            .arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("DATABASE_URL", &env.database_url)
            .env("REDIS_URL", &env.redis_url)
            .env("RUNEFLOW_REDIS_PREFIX", &env.name)
            .env("RUNEFLOW_WORKER_NAME", &name)
            .env("RUNEFLOW_PYTHON", real_python())
            .env("RUNEFLOW_HEARTBEAT_MS", "1000")
            .env("RUNEFLOW_MISSED_HEARTBEATS", "3")
            .env("RUNEFLOW_POLL_MS", "200")
            .env("RUNEFLOW_CONCURRENCY", "1")
            .env("RUNEFLOW_DEFAULT_TIMEOUT", "30")
            // The tests' python3 may live under /root, which child uids
            // cannot read; containment tests turn this back on.
            .env("RUNEFLOW_CHILD_USERS", "off")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0);
        // SAFETY: only fcntl(2) between fork and exec (async-signal-safe).
        unsafe {
            command.pre_exec(move || {
                for fd in 3..4096 {
                    let fd = BorrowedFd::borrow_raw(fd);
                    let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
                }
                if let Some(fd) = inherit {
                    fcntl(
                        BorrowedFd::borrow_raw(fd),
                        FcntlArg::F_SETFD(FdFlag::empty()),
                    )?;
                }
                Ok(())
            });
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("start runeflow worker");
        WorkerProcess { child, name, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL to the worker's whole process group (worker + zygote), then reap.
    pub fn kill_group(&mut self) {
        let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGKILL to the worker process alone (as the OOM killer would), then reap.
    pub fn kill_worker_only(&mut self) {
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill_group();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Kills a private redis-server when the test ends, however it ends.
pub struct RedisServer(pub Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

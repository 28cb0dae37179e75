//! Unprivileged users for executions: one uid per concurrency slot.
//!
//! Any process may signal, trace or read the `/proc` files of any other
//! process of its uid. So when the worker can switch users, each running
//! execution gets a uid of its own from a configured range: it can then
//! signal neither the worker, nor the zygote, nor another execution, and
//! when it ends every process of that uid is killed (`kill(-1)` as that
//! uid), which catches what left the process group, the session or the
//! subreaper. One shared "nobody" would not do: executions could then kill
//! each other.
//!
//! Several workers may share a host (and a range): each uid is claimed
//! with an exclusive `flock` on a file in a root-only folder, held for
//! the worker's life and released by the kernel when it dies.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use runeflow_shared::protocol::ChildUser;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Whether children run under uids of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChildUsersMode {
    /// Switch when the worker can (root with CAP_SETUID, CAP_SETGID and
    /// CAP_KILL); otherwise say so once at start-up and run children as
    /// the worker's own user.
    Auto,
    /// Refuse to start when the worker cannot switch.
    Required,
    /// Never switch: children run as the worker's user.
    Off,
}

/// Capabilities the worker needs to run children as other users: change
/// uid and gid (in the zygote's forks) and signal them (timeouts, reaping).
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;

/// Modules the start-up check imports as a child uid: the zygote's preload
/// and a few a child imports lazily from the standard library; then the
/// interpreter's `sys.prefix`, which must be the one the worker's own run
/// of the same command finds (a PATH entry the uid cannot search, such as a
/// pyenv shim under /root, makes its lookup fall through to another
/// interpreter, and the children would miss the stdlib the zygote has).
const INTERPRETER_CHECK: &str =
    "import json, asyncio, logging, traceback, encodings.idna, inspect, sys; print(sys.prefix)";

#[derive(Debug, thiserror::Error)]
pub enum ChildUsersError {
    #[error("RUNEFLOW_CHILD_USERS=required, but this worker cannot switch users: {0}")]
    CannotSwitch(String),
    #[error(
        "RUNEFLOW_CHILD_UID_RANGE '{0}' is not a range FIRST-LAST of uids above 0 (e.g. 70000-70999)"
    )]
    BadRange(String),
    #[error(
        "every uid of RUNEFLOW_CHILD_UID_RANGE {first}-{last} is claimed by other workers on this host; {wanted} are needed (one per concurrency slot)"
    )]
    Exhausted {
        first: u32,
        last: u32,
        wanted: usize,
    },
    #[error("claiming child uids in {path}: {source}")]
    Claim {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the Python interpreter '{python}' cannot run as child uid {uid}: {detail}. Point RUNEFLOW_PYTHON at an interpreter every user can read (e.g. /usr/bin/python3), or set RUNEFLOW_CHILD_USERS=off"
    )]
    Interpreter {
        python: String,
        uid: u32,
        detail: String,
    },
}

/// An inclusive range of uids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub first: u32,
    pub last: u32,
}

impl std::str::FromStr for UidRange {
    type Err = ChildUsersError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ChildUsersError::BadRange(text.to_owned());
        let (first, last) = text.trim().split_once('-').ok_or_else(bad)?;
        let first: u32 = first.trim().parse().map_err(|_| bad())?;
        let last: u32 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first || last == u32::MAX {
            return Err(bad());
        }
        Ok(UidRange { first, last })
    }
}

/// Why this worker cannot switch users, or `None` when it can.
pub fn cannot_switch() -> Option<String> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Some(format!("it runs as uid {euid}, not root"));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = [
        (CAP_SETUID, "CAP_SETUID"),
        (CAP_SETGID, "CAP_SETGID"),
        (CAP_KILL, "CAP_KILL"),
    ]
    .into_iter()
    .filter(|(bit, _)| effective & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    (!missing.is_empty()).then(|| format!("it lacks {}", missing.join(", ")))
}

/// The uids this worker claimed, handed out one per running execution.
pub struct ChildUsers {
    free: Mutex<Vec<ChildUser>>,
    available: Arc<Semaphore>,
    /// Held for the worker's life: the claim on each uid.
    _claims: Vec<Flock<File>>,
}

impl ChildUsers {
    /// Claims `slots` uids of `range` not claimed by another worker on this
    /// host and kills whatever still runs under them (a previous worker's
    /// leftovers).
    pub fn claim(range: UidRange, slots: usize) -> Result<Arc<Self>, ChildUsersError> {
        let folder = claims_folder();
        let claim_error = |source| ChildUsersError::Claim {
            path: folder.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)
            .map_err(claim_error)?;
        let mut claims = Vec::with_capacity(slots);
        let mut users = Vec::with_capacity(slots);
        for uid in range.first..=range.last {
            if users.len() == slots {
                break;
            }
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(folder.join(format!("{uid}.lock")))
                .map_err(claim_error)?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(claim) => {
                    let user = ChildUser { uid, gid: uid };
                    reap(user);
                    claims.push(claim);
                    users.push(user);
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, errno)) => return Err(claim_error(errno.into())),
            }
        }
        if users.len() < slots {
            return Err(ChildUsersError::Exhausted {
                first: range.first,
                last: range.last,
                wanted: slots,
            });
        }
        users.reverse(); // handed out from the end: lowest uid first
        Ok(Arc::new(ChildUsers {
            available: Arc::new(Semaphore::new(users.len())),
            free: Mutex::new(users),
            _claims: claims,
        }))
    }

    /// The claimed uids, lowest first.
    pub fn uids(&self) -> Vec<u32> {
        let mut uids: Vec<u32> = self
            .free
            .lock()
            .map(|free| free.iter().map(|u| u.uid).collect())
            .unwrap_or_default();
        uids.sort_unstable();
        uids
    }

    /// A uid for one execution; waits while all are in use (more runs than
    /// slots only happen while a restarted worker loop overlaps old runs).
    pub async fn acquire(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.available.clone().acquire_owned().await.ok()?;
        let user = self.free.lock().ok()?.pop()?;
        Some(Slot {
            user,
            pool: self.clone(),
            _permit: Some(permit),
        })
    }

    /// Runs `python` once as the first claimed uid, importing what a child
    /// imports: an interpreter that uid cannot read is a start-up error,
    /// not a failure inside the first execution.
    pub fn check_interpreter(
        &self,
        python: &str,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ChildUsersError> {
        let Some(user) = self.free.lock().ok().and_then(|free| free.last().copied()) else {
            return Ok(());
        };
        let failed = |detail: String| ChildUsersError::Interpreter {
            python: python.to_owned(),
            uid: user.uid,
            detail,
        };
        let run = |as_user: Option<ChildUser>| {
            let mut command = std::process::Command::new(python);
            command
                .args(["-I", "-B", "-c", INTERPRETER_CHECK])
                .env_clear()
                .envs(env)
                .current_dir("/")
                .stdin(std::process::Stdio::null());
            if let Some(user) = as_user {
                command.uid(user.uid).gid(user.gid);
            }
            command.output().map_err(|e| failed(e.to_string()))
        };
        let output = run(Some(user))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("no error output").trim();
            return Err(failed(format!("{} ({last})", output.status)));
        }
        let theirs = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let ours = run(None)?;
        let ours = String::from_utf8_lossy(&ours.stdout).trim().to_owned();
        if ours != theirs {
            return Err(failed(format!(
                "as the worker it runs from {ours}, as that uid from {theirs} (a path it cannot read)"
            )));
        }
        Ok(())
    }

    fn give_back(&self, user: ChildUser) {
        if let Ok(mut free) = self.free.lock() {
            free.push(user);
        }
    }
}

/// One execution's uid. Dropping it kills every process left under that
/// uid, then makes the uid available again.
pub struct Slot {
    user: ChildUser,
    pool: Arc<ChildUsers>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    pub fn user(&self) -> ChildUser {
        self.user
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (user, pool, permit) = (self.user, self.pool.clone(), self._permit.take());
        let release = move || {
            reap(user);
            pool.give_back(user);
            drop(permit);
        };
        // A fork: off the async threads when there is a runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(release);
            }
            Err(_) => release(),
        }
    }
}

/// SIGKILLs every process running as `user.uid`: a forked process switches
/// to that uid and calls `kill(-1, SIGKILL)`, which reaches exactly the
/// processes that uid may signal (never the caller itself), then exits
/// without executing anything. Twice, for a process forked while the first
/// signal was on its way.
fn reap(user: ChildUser) {
    for _ in 0..2 {
        let mut command = std::process::Command::new("/");
        command
            .uid(user.uid)
            .gid(user.gid)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: between fork and exec only kill(2) and _exit(2), both
        // async-signal-safe; std switched uid and gid before this runs.
        unsafe {
            command.pre_exec(|| {
                let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                libc::_exit(0)
            });
        }
        match command.spawn() {
            Ok(mut reaper) => {
                let _ = reaper.wait();
            }
            Err(err) => {
                tracing::warn!(uid = user.uid, %err, "could not kill the processes left by an execution");
                return;
            }
        }
    }
}

/// Where uid claims live: root-only, per host.
fn claims_folder() -> PathBuf {
    let run = Path::new("/run");
    if run.is_dir() && nix::unistd::access(run, nix::unistd::AccessFlags::W_OK).is_ok() {
        run.join("runeflow").join("child-uids")
    } else {
        std::env::temp_dir().join("runeflow-child-uids")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges_parse_or_name_the_problem() {
        assert_eq!(
            "70000-70999".parse::<UidRange>().unwrap(),
            UidRange {
                first: 70000,
                last: 70999
            }
        );
        for bad in ["", "70000", "0-10", "10-5", "a-b", "-5-10"] {
            let err = bad.parse::<UidRange>().unwrap_err();
            assert!(
                err.to_string().contains("RUNEFLOW_CHILD_UID_RANGE"),
                "{bad}"
            );
        }
    }
}

//! The warm interpreter: one Python process per worker that imported the
//! shim once and forks a child per execution (see python_shim/PROTOCOL.md).
//!
//! The zygote gets a scrubbed environment and its control socket as stdin;
//! each child gets its own socketpair end through SCM_RIGHTS, so no socket
//! path exists on disk and a child can talk to nobody but this worker.

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use runeflow_shared::protocol::{
    ControlReply, ControlRequest, ProtocolError, Rlimits, read_message, write_message,
};
use tokio::io::{AsyncBufReadExt, BufReader, Interest};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::shim;

/// How long booting the zygote (interpreter start + preload) may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one fork request may take.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest control reply accepted from the zygote.
const CONTROL_FRAME_LIMIT: usize = 64 * 1024;
/// Variables a child may see besides `LC_*` and `RUNEFLOW_CHILD_ENV`; never secrets.
const BASE_ENV: &[&str] = &["PATH", "LANG", "TZ", "TERM"];

#[derive(Debug, thiserror::Error)]
pub enum ZygoteError {
    #[error("cannot start the Python interpreter '{python}': {source}")]
    Start {
        python: String,
        source: std::io::Error,
    },
    #[error("zygote protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("zygote exited or closed its control socket")]
    Gone,
    #[error("zygote refused: {0}")]
    Refused(String),
    #[error("zygote did not answer in time")]
    Timeout,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// How to start a zygote.
#[derive(Debug, Clone)]
pub struct ZygoteConfig {
    pub python: String,
    pub preload: Vec<String>,
    /// Names of extra variables to pass through to user code.
    pub child_env: Vec<String>,
    pub virtual_root: String,
}

/// A running zygote: an interpreter booted without a role.
struct Zygote(Interpreter);

/// A booted interpreter (zygote or compiler) and the worker's end of its
/// control socket.
pub(crate) struct Interpreter {
    pub process: Child,
    pub control: UnixStream,
    pub pid: i32,
}

/// Starts `python -I -B -c BOOTSTRAP` with a scrubbed environment, sends
/// `boot` (with `role`, if any) and waits for `ready`.
pub(crate) async fn boot(
    config: &ZygoteConfig,
    role: Option<&str>,
) -> Result<Interpreter, ZygoteError> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let mut command = Command::new(&config.python);
    command
        .args(["-I", "-B", "-c", shim::BOOTSTRAP])
        .env_clear()
        .envs(child_environment(&config.child_env))
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut process = command.spawn().map_err(|source| ZygoteError::Start {
        python: config.python.clone(),
        source,
    })?;
    // The Command still owns the child's end of the control socket: close
    // it, or a process dying during boot never gives us EOF.
    drop(command);
    forward_output(&mut process);
    let mut control = UnixStream::from_std(ours)?;
    let boot = ControlRequest::Boot {
        shim: shim::sources(),
        preload: config.preload.clone(),
        root: config.virtual_root.clone(),
        role: role.map(str::to_owned),
    };
    let reply = tokio::time::timeout(BOOT_TIMEOUT, async {
        write_message(&mut control, &boot).await?;
        read_message(&mut control, CONTROL_FRAME_LIMIT).await
    })
    .await
    .map_err(|_| ZygoteError::Timeout)??;
    match reply {
        Some(ControlReply::Ready { pid, python }) => {
            let pid = if pid > 0 {
                pid
            } else {
                process
                    .id()
                    .and_then(|p| i32::try_from(p).ok())
                    .unwrap_or(0)
            };
            tracing::info!(pid, %python, role = role.unwrap_or("zygote"), "Python interpreter ready");
            Ok(Interpreter {
                process,
                control,
                pid,
            })
        }
        Some(ControlReply::Error { message }) => Err(ZygoteError::Refused(message)),
        Some(other) => Err(ZygoteError::Refused(format!("unexpected reply {other:?}"))),
        None => Err(ZygoteError::Gone),
    }
}

impl Interpreter {
    /// False once the process has exited.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }
}

impl Zygote {
    async fn start(config: &ZygoteConfig) -> Result<Self, ZygoteError> {
        boot(config, None).await.map(Zygote)
    }

    /// Forks one child that owns `child_end`; returns its pid.
    async fn spawn(
        &mut self,
        execution_id: &str,
        rlimits: &Rlimits,
        child_end: &OwnedFd,
    ) -> Result<i32, ZygoteError> {
        let frame = runeflow_shared::protocol::encode(&ControlRequest::Spawn {
            execution_id: execution_id.to_owned(),
            rlimits: rlimits.clone(),
        })?;
        let fds = [child_end.as_raw_fd()];
        let control = &mut self.0.control;
        // The descriptor travels with the first byte; the rest is plain data.
        let mut sent = 0;
        while sent < frame.len() {
            let chunk = &frame[sent..];
            let n = control
                .async_io(Interest::WRITABLE, || {
                    let iov = [IoSlice::new(chunk)];
                    let cmsgs = [ControlMessage::ScmRights(&fds)];
                    let cmsg: &[ControlMessage] = if sent == 0 { &cmsgs } else { &[] };
                    sendmsg::<()>(
                        control.as_raw_fd(),
                        &iov,
                        cmsg,
                        MsgFlags::MSG_NOSIGNAL,
                        None,
                    )
                    .map_err(std::io::Error::from)
                })
                .await?;
            sent += n;
        }
        let reply = tokio::time::timeout(SPAWN_TIMEOUT, read_message(control, CONTROL_FRAME_LIMIT))
            .await
            .map_err(|_| ZygoteError::Timeout)??;
        match reply {
            Some(ControlReply::Spawned { pid }) => Ok(pid),
            Some(ControlReply::Error { message }) => Err(ZygoteError::Refused(message)),
            Some(other) => Err(ZygoteError::Refused(format!("unexpected reply {other:?}"))),
            None => Err(ZygoteError::Gone),
        }
    }

    fn is_alive(&mut self) -> bool {
        self.0.is_alive()
    }

    fn pid(&self) -> i32 {
        self.0.pid
    }
}

/// The worker's zygote, restarted when it dies. Forks are serialised: the
/// zygote handles one control request at a time anyway, and a fork takes
/// about a millisecond.
pub struct Zygotes {
    config: ZygoteConfig,
    current: Mutex<Option<Zygote>>,
}

/// A freshly forked child and the worker's end of its socket.
pub struct SpawnedChild {
    pub pid: i32,
    pub socket: UnixStream,
    /// How many bytes of the preamble were already written (see `spawn`).
    pub preamble_sent: usize,
}

impl Zygotes {
    pub fn new(config: ZygoteConfig) -> Self {
        Zygotes {
            config,
            current: Mutex::new(None),
        }
    }

    /// Starts the zygote now, so the first execution does not wait for it.
    pub async fn warm_up(&self) -> Result<(), ZygoteError> {
        let mut current = self.current.lock().await;
        if current.as_mut().is_none_or(|z| !z.is_alive()) {
            *current = Some(Zygote::start(&self.config).await?);
        }
        Ok(())
    }

    /// Forks a child for one execution, replacing a dead zygote once.
    ///
    /// As much of `preamble` (the child's first frames) as the socket
    /// buffer takes is written before the fork request, so the child finds
    /// its `run` waiting instead of waiting a round trip for it; the caller
    /// writes the rest (`preamble_sent` onwards).
    pub async fn spawn(
        &self,
        execution_id: &str,
        rlimits: &Rlimits,
        preamble: &[u8],
    ) -> Result<SpawnedChild, ZygoteError> {
        let mut current = self.current.lock().await;
        for attempt in 0..2 {
            if current.as_mut().is_none_or(|z| !z.is_alive()) {
                if attempt > 0 || current.is_some() {
                    tracing::warn!("Python zygote died; starting a new one");
                }
                *current = Some(Zygote::start(&self.config).await?);
            }
            let Some(zygote) = current.as_mut() else {
                continue;
            };
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
            ours.set_nonblocking(true)?;
            let preamble_sent = write_ahead(&ours, preamble)?;
            let theirs = OwnedFd::from(theirs);
            match zygote.spawn(execution_id, rlimits, &theirs).await {
                Ok(pid) => {
                    drop(theirs);
                    return Ok(SpawnedChild {
                        pid,
                        socket: UnixStream::from_std(ours)?,
                        preamble_sent,
                    });
                }
                Err(err) if attempt == 0 => {
                    tracing::warn!(%err, zygote = zygote.pid(), "fork request failed; replacing the zygote");
                    *current = None;
                }
                Err(err) => return Err(err),
            }
        }
        Err(ZygoteError::Gone)
    }

    /// Pid of the current zygote, if one runs (for tests and logs).
    pub async fn pid(&self) -> Option<i32> {
        self.current.lock().await.as_ref().map(Zygote::pid)
    }
}

/// Writes what fits of `bytes` into a non-blocking socket; how much did.
fn write_ahead(socket: &std::os::unix::net::UnixStream, bytes: &[u8]) -> std::io::Result<usize> {
    use std::io::Write;
    let mut sent = 0;
    let mut writer = socket;
    while sent < bytes.len() {
        match writer.write(&bytes[sent..]) {
            Ok(0) => break,
            Ok(n) => sent += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
    Ok(sent)
}

/// The only environment user code sees: a fixed allow-list plus the names
/// the operator listed, copied from the worker's own environment.
pub fn child_environment(extra: &[String]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("LC_"))
        .collect();
    for name in BASE_ENV
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.to_owned(), value);
        }
    }
    env.insert(
        "HOME".to_owned(),
        std::env::temp_dir().display().to_string(),
    );
    env.insert("PYTHONIOENCODING".to_owned(), "utf-8".to_owned());
    env
}

/// Logs what the zygote (and children before their redirect) print.
fn forward_output(process: &mut Child) {
    if let Some(out) = process.stdout.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "runeflow::python", "{line}");
            }
        });
    }
    if let Some(err) = process.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(target: "runeflow::python", "{line}");
            }
        });
    }
}

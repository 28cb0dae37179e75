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

use nix::fcntl::OFlag;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use runeflow_shared::protocol::{
    ChildUser, ControlReply, ControlRequest, ProtocolError, Rlimits, read_message, write_message,
};
use tokio::io::{AsyncRead, AsyncReadExt, Interest};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, oneshot, watch};

use crate::shim;

/// How long booting the zygote (interpreter start + preload) may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one fork request may take.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest control reply accepted from the zygote.
const CONTROL_FRAME_LIMIT: usize = 64 * 1024;
/// Variables a child may see besides `LC_*` and `RUNEFLOW_CHILD_ENV`; never secrets.
const BASE_ENV: &[&str] = &["PATH", "LANG", "TZ", "TERM"];
/// Longest line of the interpreters' own output logged as one record: the
/// rest of a longer line goes in further records, so a line without a
/// newline never grows the worker's memory.
const OUTPUT_LINE_LIMIT: usize = 8 * 1024;

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
/// control socket. Dropping it kills the process.
pub(crate) struct Interpreter {
    pub control: UnixStream,
    pub pid: i32,
    /// Becomes true once the process has exited.
    exited: watch::Receiver<bool>,
    _kill_on_drop: oneshot::Sender<()>,
}

/// Tells whether the zygote that forked a child has exited: a child that
/// dies with its zygote is a worker fault, not an outcome of its workflow.
#[derive(Clone)]
pub struct ZygoteLife(watch::Receiver<bool>);

impl ZygoteLife {
    /// True once the zygote has exited, waiting at most `grace` for the
    /// news: a child killed by its zygote's death may report EOF a moment
    /// before the zygote's exit is seen.
    pub async fn exited_within(&self, grace: Duration) -> bool {
        let mut exited = self.0.clone();
        tokio::time::timeout(grace, exited.wait_for(|gone| *gone))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Owns `process` in a task of its own that reaps it (so its exit is
/// known at once) and kills it when the returned sender is dropped.
fn watch_exit(mut process: Child) -> (watch::Receiver<bool>, oneshot::Sender<()>) {
    let (exited_tx, exited) = watch::channel(false);
    let (kill, killed) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = process.wait() => {}
            _ = killed => {
                let _ = process.start_kill();
                let _ = process.wait().await;
            }
        }
        let _ = exited_tx.send(true);
    });
    (exited, kill)
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
            let (exited, kill) = watch_exit(process);
            Ok(Interpreter {
                control,
                pid,
                exited,
                _kill_on_drop: kill,
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
        !*self.exited.borrow()
    }
}

impl Zygote {
    async fn start(config: &ZygoteConfig) -> Result<Self, ZygoteError> {
        boot(config, None).await.map(Zygote)
    }

    /// Forks one child that owns `child_end` and writes its output to
    /// `output`, under `user` when given; returns its pid.
    async fn spawn(
        &mut self,
        execution_id: &str,
        rlimits: &Rlimits,
        user: Option<ChildUser>,
        child_end: &OwnedFd,
        output: &OwnedFd,
    ) -> Result<i32, ZygoteError> {
        let frame = runeflow_shared::protocol::encode(&ControlRequest::Spawn {
            execution_id: execution_id.to_owned(),
            rlimits: rlimits.clone(),
            user,
        })?;
        let fds = [child_end.as_raw_fd(), output.as_raw_fd()];
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

    fn life(&self) -> ZygoteLife {
        ZygoteLife(self.0.exited.clone())
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
    /// The read end of the pipe that is the child's (and its
    /// subprocesses') stdout and stderr.
    pub output: OwnedFd,
    /// How many bytes of the preamble were already written (see `spawn`).
    pub preamble_sent: usize,
    /// The zygote that forked it.
    pub zygote: ZygoteLife,
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
        user: Option<ChildUser>,
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
            let (output, output_end) =
                nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
            match zygote
                .spawn(execution_id, rlimits, user, &theirs, &output_end)
                .await
            {
                Ok(pid) => {
                    drop(theirs);
                    drop(output_end);
                    return Ok(SpawnedChild {
                        pid,
                        socket: UnixStream::from_std(ours)?,
                        output,
                        preamble_sent,
                        zygote: zygote.life(),
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

/// Logs what the zygote and the compiler print (children write to their
/// execution's own pipe instead).
fn forward_output(process: &mut Child) {
    if let Some(out) = process.stdout.take() {
        tokio::spawn(log_lines(
            out,
            |line| tracing::info!(target: "runeflow::python", "{line}"),
        ));
    }
    if let Some(err) = process.stderr.take() {
        tokio::spawn(log_lines(
            err,
            |line| tracing::warn!(target: "runeflow::python", "{line}"),
        ));
    }
}

/// Reads `reader` in bounded chunks and logs it line by line, cutting lines
/// at [`OUTPUT_LINE_LIMIT`] bytes: memory stays bounded whatever is written.
async fn log_lines(mut reader: impl AsyncRead + Unpin, log: impl Fn(&str)) {
    let mut chunk = [0u8; 4096];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &chunk[..n] {
            if byte == b'\n' || line.len() >= OUTPUT_LINE_LIMIT {
                log(&String::from_utf8_lossy(&line));
                line.clear();
                if byte == b'\n' {
                    continue;
                }
            }
            line.push(byte);
        }
    }
    if !line.is_empty() {
        log(&String::from_utf8_lossy(&line));
    }
}

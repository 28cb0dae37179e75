//! Running one execution in a forked child: send `run`, serve its requests,
//! collect output and the result, enforce the timeout by killing the child's
//! whole process group.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use runeflow_shared::protocol::{
    ChildMessage, ErrorInfo, ExecutionResult, GO, ProtocolError, Rlimits, RunMessage, append_frame,
    encode, read_message, write_message,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::modules::ModuleServer;
use crate::prefetch::Bundle;
use crate::zygote::{ZygoteError, Zygotes};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub execution_id: String,
    pub path: String,
    pub module: Option<String>,
    pub function: String,
    pub parameters: serde_json::Value,
    pub timeout: Duration,
}

/// Per-worker limits applied to every execution.
#[derive(Debug, Clone)]
pub struct Limits {
    pub rlimits: Rlimits,
    pub max_log_bytes: usize,
    pub max_frame_bytes: usize,
    pub virtual_root: String,
}

/// How an execution ended. Every variant is final: user code is never retried.
#[derive(Debug, Clone)]
pub enum Outcome {
    Success(serde_json::Value),
    Failed(ErrorInfo),
    Timeout,
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub outcome: Outcome,
    pub logs: String,
    pub logs_truncated: bool,
    pub duration: Duration,
    /// Of `duration`, how long getting a child took (for the phase log).
    pub spawn: Duration,
}

/// Appends output up to a byte budget, noting truncation once.
#[derive(Debug, Default)]
struct LogBuffer {
    text: String,
    limit: usize,
    truncated: bool,
}

impl LogBuffer {
    fn push(&mut self, chunk: &str) {
        if self.truncated {
            return;
        }
        let room = self.limit.saturating_sub(self.text.len());
        if chunk.len() <= room {
            self.text.push_str(chunk);
        } else {
            let mut cut = room;
            while !chunk.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&chunk[..cut]);
            self.text.push_str("\n[runeflow: output truncated]\n");
            self.truncated = true;
        }
    }
}

/// A forked child that has its `run` (or most of it) but has not been
/// told to go when `run` was gated. Dropping it kills the child's group.
pub struct Child {
    group: GroupGuard,
    socket: UnixStream,
    /// The preamble's bytes not written ahead of the fork request.
    unsent: Vec<u8>,
    gated: bool,
    started: Instant,
    spawn: Duration,
}

/// Forks a child for `spec` and hands it its `run`. With `gated`, the
/// child prepares but waits for [`Child::run`]'s `go` before it touches
/// user code. `Err` only for worker faults (no child could be started).
pub async fn spawn(
    zygotes: &Zygotes,
    server: &ModuleServer,
    spec: &RunSpec,
    prefetch: Option<Bundle>,
    limits: &Limits,
    gated: bool,
) -> Result<Child, ZygoteError> {
    let started = Instant::now();
    let preamble = preamble(server, spec, prefetch, limits, gated)?;
    let child = zygotes
        .spawn(&spec.execution_id, &limits.rlimits, &preamble)
        .await?;
    Ok(Child {
        // Kills the child's group however it ends (finished, timed out,
        // never told to go, or dropped because apalis cancelled the handler).
        group: GroupGuard(child.pid),
        socket: child.socket,
        unsent: preamble
            .get(child.preamble_sent..)
            .unwrap_or_default()
            .to_vec(),
        gated,
        started,
        spawn: started.elapsed(),
    })
}

impl Child {
    /// Lets the child run (sends `go` to a gated one) and serves it until
    /// its result or `spec`'s timeout; anything the child does is an
    /// [`Outcome`].
    pub async fn run(self, server: &ModuleServer, spec: &RunSpec, limits: &Limits) -> Finished {
        let Child {
            group: _group,
            mut socket,
            mut unsent,
            gated,
            started,
            spawn,
        } = self;
        if gated {
            // Infallible: a constant, far below the frame limit.
            let _ = append_frame(&mut unsent, GO.as_bytes());
        }
        let mut logs = LogBuffer {
            limit: limits.max_log_bytes,
            ..LogBuffer::default()
        };
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let outcome = tokio::select! {
            outcome = converse(&mut socket, server, spec, &unsent, limits, &mut logs) => outcome,
            _ = tokio::time::sleep_until(deadline) => Outcome::Timeout,
        };
        Finished {
            outcome,
            logs: logs.text,
            logs_truncated: logs.truncated,
            duration: started.elapsed(),
            spawn,
        }
    }
}

/// Kills the child and anything it started (its process group) on drop.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        match killpg(Pid::from_raw(self.0), Signal::SIGKILL) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(err) => {
                tracing::warn!(pid = self.0, %err, "could not kill the child's process group")
            }
        }
    }
}

fn failed(kind: &str, message: impl Into<String>) -> Outcome {
    Outcome::Failed(ErrorInfo {
        kind: kind.to_owned(),
        message: message.into(),
        traceback: None,
    })
}

/// The child's first frames: `run`, then (with a prefetch) the blob of
/// the modules' code.
fn preamble(
    server: &ModuleServer,
    spec: &RunSpec,
    prefetch: Option<Bundle>,
    limits: &Limits,
    gate: bool,
) -> Result<Vec<u8>, ZygoteError> {
    let (entries, blob) = match prefetch {
        Some(bundle) => (Some(bundle.entries), Some(bundle.blob)),
        None => (None, None),
    };
    let run = RunMessage {
        op: "run".to_owned(),
        execution_id: spec.execution_id.clone(),
        path: spec.path.clone(),
        module: spec.module.clone(),
        function: spec.function.clone(),
        parameters: spec.parameters.clone(),
        top_level: server.snapshot.top_level().to_vec(),
        root: limits.virtual_root.clone(),
        max_log_bytes: limits.max_log_bytes,
        prefetch: entries,
        gate,
    };
    let mut frames = encode(&run)?;
    if let Some(blob) = blob {
        append_frame(&mut frames, &blob)?;
    }
    Ok(frames)
}

/// Sends what is left of the preamble, then serves the child until its result.
async fn converse(
    socket: &mut UnixStream,
    server: &ModuleServer,
    spec: &RunSpec,
    unsent: &[u8],
    limits: &Limits,
    logs: &mut LogBuffer,
) -> Outcome {
    if let Err(err) = socket.write_all(unsent).await {
        return failed(
            "ChildDied",
            format!("the Python child went away before it started: {err}"),
        );
    }
    loop {
        let message = match read_message::<_, ChildMessage>(socket, limits.max_frame_bytes).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(ProtocolError::Truncated) => {
                return failed(
                    "ChildDied",
                    "the Python process exited without reporting a result (killed, crashed, or os._exit in user code)",
                );
            }
            Err(ProtocolError::Io(err)) => {
                return failed("ChildDied", format!("socket error: {err}"));
            }
            Err(err) => {
                tracing::warn!(execution = %spec.execution_id, %err, "bad frame from a child");
                return failed(
                    "ProtocolError",
                    format!("the Python process sent a bad message: {err}"),
                );
            }
        };
        let reply = match message {
            ChildMessage::Log { text } => {
                logs.push(&text);
                continue;
            }
            ChildMessage::Result(ExecutionResult::Success { value }) => {
                return Outcome::Success(value);
            }
            ChildMessage::Result(ExecutionResult::Failed { error }) => {
                return Outcome::Failed(error);
            }
            ChildMessage::Find { name } => match server.find(&name).await {
                Ok(found) => {
                    serde_json::to_value(found).unwrap_or_else(|_| json!({"found": false}))
                }
                Err(err) => {
                    return failed(
                        "WorkspaceUnavailable",
                        format!("loading module '{name}': {err}"),
                    );
                }
            },
            ChildMessage::Read { path } => match server.read(&path).await {
                Ok(Some(content)) => json!({"found": true, "content": &*content}),
                Ok(None) => json!({"found": false}),
                Err(err) => {
                    return failed("WorkspaceUnavailable", format!("reading '{path}': {err}"));
                }
            },
            ChildMessage::List { dir } => json!({"entries": server.list(&dir)}),
        };
        if let Err(err) = write_message(socket, &reply).await {
            return failed("ChildDied", format!("the Python process went away: {err}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogBuffer;

    #[test]
    fn log_buffer_truncates_once_on_a_char_boundary() {
        let mut logs = LogBuffer {
            limit: 5,
            ..LogBuffer::default()
        };
        logs.push("abc");
        logs.push("déf");
        logs.push("more");
        assert!(logs.truncated);
        assert!(logs.text.starts_with("abcd"));
        assert_eq!(logs.text.matches("truncated").count(), 1);
    }
}

//! Running one execution in a forked child: send `run`, serve its requests,
//! collect output (its log frames and its stdout/stderr pipe, in one
//! bounded budget) and the result, enforce the timeout, and kill the child
//! with every process it started.

use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runeflow_shared::protocol::{
    ChildMessage, ErrorInfo, GO, ProtocolError, Rlimits, RunMessage, append_frame, encode,
    read_frame, write_message,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;

use crate::child_frame::{self, Incoming, ResultBounds};
use crate::child_users::Slot;
use crate::config_reads::{ConfigReader, Reads};
use crate::modules::ModuleServer;
use crate::prefetch::Bundle;
use crate::process_tree;
use crate::running::CancelSignal;
use crate::zygote::{ZygoteError, ZygoteLife, Zygotes};

/// How long a child's EOF waits for news of its zygote's exit before it is
/// taken as the child's own death.
const ZYGOTE_DEATH_GRACE: Duration = Duration::from_millis(200);
/// What ends logs cut at their budget (the child writes the same line).
pub const TRUNCATION_NOTE: &str = "\n[runeflow: output truncated]\n";
/// Bytes read from a child's output pipe at a time.
const OUTPUT_CHUNK: usize = 16 * 1024;

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
///
/// Whatever the child sends, the worker's memory per execution stays under
/// about `max_frame_bytes` (one frame being read) + 2 × `max_log_bytes`
/// (the log budget, shared by log frames and the output pipe, and its
/// escaped copy) + 3 × `max_result_memory` (the parsed result, the copy
/// bound to the update and the row it returns) + 2 × `max_result_bytes`
/// (the result as text, sent and returned). Defaults: 16 + 2 + 192 + 16
/// MiB. The module caches are per worker, bounded in bytes too.
#[derive(Debug, Clone)]
pub struct Limits {
    pub rlimits: Rlimits,
    pub max_log_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_result_bytes: usize,
    /// Estimated memory a parsed result may take (see `bounded_json`).
    pub max_result_memory: usize,
    pub virtual_root: String,
}

/// The child's zygote died under it: a worker fault (the execution is
/// delivered again), not an outcome of the workflow.
#[derive(Debug, thiserror::Error)]
#[error("the Python zygote died while the execution ran (its child was killed with it)")]
pub struct ZygoteLost;

/// How an execution ended. Every variant is final: user code is never retried.
#[derive(Debug, Clone)]
pub enum Outcome {
    Success(serde_json::Value),
    Failed(ErrorInfo),
    Timeout,
    /// Cancelled by request (`POST /api/executions/{id}/cancel`); the row
    /// is already `cancelled`, the worker only adds what the child logged.
    Cancelled,
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
            self.text.push_str(TRUNCATION_NOTE);
            self.truncated = true;
        }
    }
}

/// A forked child that has its `run` (or most of it) but has not been
/// told to go when `run` was gated. Dropping it kills the child and every
/// process it started, then frees its user slot (fields drop in order).
pub struct Child {
    group: GroupGuard,
    /// After `group`: its uid's leftovers are killed before reuse.
    _slot: Option<Slot>,
    socket: UnixStream,
    output: pipe::Receiver,
    zygote: ZygoteLife,
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
    slot: Option<Slot>,
) -> Result<Child, ZygoteError> {
    let started = Instant::now();
    let preamble = preamble(server, spec, prefetch, limits, gated)?;
    let user = slot.as_ref().map(Slot::user);
    let child = zygotes
        .spawn(&spec.execution_id, &limits.rlimits, user, &preamble)
        .await?;
    Ok(Child {
        // Kills the child's group however it ends (finished, timed out,
        // never told to go, or dropped because apalis cancelled the handler).
        group: GroupGuard {
            pid: child.pid,
            reported: false,
        },
        _slot: slot,
        output: pipe::Receiver::from_owned_fd(child.output)?,
        zygote: child.zygote,
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
    /// its result, `spec`'s timeout or a cancel; anything the child does is
    /// an [`Outcome`]. `Err` only when the child died with its zygote.
    pub async fn run(
        self,
        server: &ModuleServer,
        config: &ConfigReader,
        spec: &RunSpec,
        limits: &Limits,
        cancel: &mut CancelSignal,
    ) -> Result<Finished, ZygoteLost> {
        let Child {
            mut group,
            _slot,
            mut socket,
            mut output,
            zygote,
            mut unsent,
            gated,
            started,
            spawn,
        } = self;
        if gated {
            // Infallible: a constant, far below the frame limit.
            let _ = append_frame(&mut unsent, GO.as_bytes());
        }
        let logs = Mutex::new(Output::new(limits.max_log_bytes));
        let mut reads = Reads::default();
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let ended = if cancel.is_cancelled() {
            Ok(Outcome::Cancelled)
        } else {
            tokio::select! {
                ended = converse(&mut socket, server, config, &mut reads, spec, &unsent, limits, &logs) => ended,
                never = read_output(&mut output, &logs) => match never {},
                _ = tokio::time::sleep_until(deadline) => Ok(Outcome::Timeout),
                _ = cancel.cancelled() => Ok(Outcome::Cancelled),
            }
        };
        // What the child wrote before it ended is in the pipe already.
        drain_ready_output(&mut output, &logs);
        let outcome = match ended {
            Ok(outcome) => {
                group.reported = !matches!(outcome, Outcome::Timeout | Outcome::Cancelled);
                outcome
            }
            Err(ChildGone(message)) => {
                if zygote.exited_within(ZYGOTE_DEATH_GRACE).await {
                    return Err(ZygoteLost);
                }
                failed("ChildDied", message)
            }
        };
        let logs = logs.into_inner().unwrap_or_else(|p| p.into_inner()).logs;
        let mut finished = Finished {
            outcome,
            logs: logs.text,
            logs_truncated: logs.truncated,
            duration: started.elapsed(),
            spawn,
        };
        // Before anything of it is stored or announced.
        reads.redactor().finished(&mut finished);
        Ok(finished)
    }
}

/// Kills the child and everything it started on drop. A child that
/// reported its result kills its own descendants on its way out, so only
/// its group is signalled then; otherwise (timeout, crash, protocol
/// error) every descendant is found while the child, their subreaper, is
/// still alive, also those that left the group or session.
struct GroupGuard {
    pid: i32,
    reported: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.reported {
            process_tree::kill_descendants(self.pid);
        }
        process_tree::kill_group(self.pid);
    }
}

/// The output buffer, also after a panic elsewhere poisoned it (it holds
/// plain text, never a broken invariant).
fn lock(output: &Mutex<Output>) -> std::sync::MutexGuard<'_, Output> {
    output.lock().unwrap_or_else(|p| p.into_inner())
}

/// An execution's captured output: log frames and the output pipe feed
/// one budget; pipe bytes are decoded as UTF-8 across chunk boundaries.
struct Output {
    logs: LogBuffer,
    /// An incomplete UTF-8 sequence at the end of the last pipe chunk.
    carry: Vec<u8>,
}

impl Output {
    fn new(limit: usize) -> Self {
        Output {
            logs: LogBuffer {
                limit,
                ..LogBuffer::default()
            },
            carry: Vec::new(),
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        if self.logs.truncated {
            return; // read and dropped, so writers never block on a full pipe
        }
        self.carry.extend_from_slice(bytes);
        let keep = incomplete_utf8_tail(&self.carry);
        let complete = self.carry.len() - keep;
        let text = String::from_utf8_lossy(&self.carry[..complete]).into_owned();
        self.carry.drain(..complete);
        self.logs.push(&text);
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 sequence that the
/// next chunk may complete (0 to 3).
fn incomplete_utf8_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back
        }
        let needed = match byte {
            b if b >= 0b1111_0000 => 4,
            b if b >= 0b1110_0000 => 3,
            b if b >= 0b1100_0000 => 2,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

/// Reads the child's output pipe into `logs` until EOF, then never ends
/// (the result or the timeout ends the execution, not the pipe).
async fn read_output(output: &mut pipe::Receiver, logs: &Mutex<Output>) -> Infallible {
    let mut chunk = vec![0u8; OUTPUT_CHUNK];
    loop {
        match output.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => lock(logs).push_bytes(&chunk[..n]),
        }
    }
    std::future::pending::<Infallible>().await
}

/// Takes what is in the pipe now, without waiting for more.
fn drain_ready_output(output: &mut pipe::Receiver, logs: &Mutex<Output>) {
    let mut chunk = vec![0u8; OUTPUT_CHUNK];
    while let Ok(n) = output.try_read(&mut chunk) {
        if n == 0 {
            break;
        }
        lock(logs).push_bytes(&chunk[..n]);
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

/// The child's socket ended without a result (why, for `ChildDied`).
struct ChildGone(String);

/// Sends what is left of the preamble, then serves the child until its
/// result; `Err` when the child went away without one.
#[allow(clippy::too_many_arguments)]
async fn converse(
    socket: &mut UnixStream,
    server: &ModuleServer,
    config: &ConfigReader,
    reads: &mut Reads,
    spec: &RunSpec,
    unsent: &[u8],
    limits: &Limits,
    logs: &Mutex<Output>,
) -> Result<Outcome, ChildGone> {
    if let Err(err) = socket.write_all(unsent).await {
        return Err(ChildGone(format!(
            "the Python child went away before it started: {err}"
        )));
    }
    loop {
        let frame = match read_frame(socket, limits.max_frame_bytes).await {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(ProtocolError::Truncated) => {
                return Err(ChildGone(
                    "the Python process exited without reporting a result (killed, crashed, or os._exit in user code)".to_owned(),
                ));
            }
            Err(ProtocolError::Io(err)) => {
                return Err(ChildGone(format!("socket error: {err}")));
            }
            Err(err) => return Ok(bad_frame(spec, reads, &err)),
        };
        let bounds = ResultBounds {
            max_bytes: limits.max_result_bytes,
            max_memory: limits.max_result_memory,
        };
        let message = match child_frame::decode(&frame, bounds) {
            Ok(Incoming::Message(message)) => message,
            Ok(Incoming::Success(value)) => return Ok(Outcome::Success(value)),
            Ok(Incoming::Failed(error)) => return Ok(Outcome::Failed(error)),
            Ok(Incoming::Refused { kind, message }) => return Ok(failed(kind, message)),
            Err(err) => return Ok(bad_frame(spec, reads, &err)),
        };
        drop(frame);
        let reply = match message {
            ChildMessage::Log { text } => {
                lock(logs).logs.push(&text);
                continue;
            }
            // Decoded as `Incoming::Success` / `Failed` above, never here.
            ChildMessage::Result(_) => {
                return Ok(bad_frame(
                    spec,
                    reads,
                    &ProtocolError::Malformed("an undecoded result".to_owned()),
                ));
            }
            ChildMessage::Find { name } => match server.find(&name).await {
                Ok(found) => {
                    serde_json::to_value(found).unwrap_or_else(|_| json!({"found": false}))
                }
                Err(err) => {
                    return Ok(failed(
                        "WorkspaceUnavailable",
                        format!("loading module '{name}': {err}"),
                    ));
                }
            },
            ChildMessage::Read { path } => match server.read(&path).await {
                Ok(Some(content)) => json!({"found": true, "content": &*content}),
                Ok(None) => json!({"found": false}),
                Err(err) => {
                    return Ok(failed(
                        "WorkspaceUnavailable",
                        format!("reading '{path}': {err}"),
                    ));
                }
            },
            ChildMessage::List { dir } => json!({"entries": server.list(&dir)}),
            ChildMessage::Config { key } => config.config(&spec.execution_id, &key).await,
            ChildMessage::Secret { key } => config.secret(&spec.execution_id, &key, reads).await,
        };
        if let Err(err) = write_message(socket, &reply).await {
            return Err(ChildGone(format!("the Python process went away: {err}")));
        }
    }
}

/// A frame that broke the protocol ends the execution. Its description
/// may quote what the child sent, so the secrets it read are masked
/// before the worker's own log line too.
fn bad_frame(spec: &RunSpec, reads: &Reads, err: &ProtocolError) -> Outcome {
    let err = reads.redactor().text(&err.to_string());
    tracing::warn!(execution = %spec.execution_id, %err, "bad frame from a child");
    failed(
        "ProtocolError",
        format!("the Python process sent a bad message: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::{LogBuffer, Output, incomplete_utf8_tail};

    #[test]
    fn pipe_bytes_decode_across_chunks_and_count_in_the_budget() {
        assert_eq!(incomplete_utf8_tail(b"ab"), 0);
        assert_eq!(incomplete_utf8_tail("é".as_bytes()), 0);
        assert_eq!(incomplete_utf8_tail(&"é".as_bytes()[..1]), 1);
        assert_eq!(incomplete_utf8_tail(&"€".as_bytes()[..2]), 2);
        assert_eq!(incomplete_utf8_tail(&"😀".as_bytes()[..3]), 3);
        let mut output = Output::new(12);
        let euro = "€".as_bytes();
        output.push_bytes(b"a");
        output.push_bytes(&euro[..1]);
        output.push_bytes(&euro[1..]);
        output.push_bytes(&[b'b', 0xff, b'c']);
        assert_eq!(output.logs.text, "a€b\u{fffd}c");
        output.push_bytes(&[b'x'; 100]);
        assert!(output.logs.truncated);
        let kept = output.logs.text.len();
        output.push_bytes(b"more");
        assert_eq!(
            output.logs.text.len(),
            kept,
            "nothing kept after the budget"
        );
    }

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

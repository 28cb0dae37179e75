//! The worker ⇄ Python protocol (see `python_shim/PROTOCOL.md`): frames of a
//! 4-byte big-endian length followed by a JSON object with an `op`.
//!
//! Everything a child sends is untrusted: frames are size-checked before any
//! allocation, and a bad frame ends that execution, never the worker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Default largest frame accepted from a child (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {len} bytes is over the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, ProtocolError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ProtocolError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(ProtocolError::TooLarge { len, limit });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Truncated
        } else {
            ProtocolError::Io(e)
        }
    })?;
    Ok(Some(body))
}

/// Reads and decodes one message; `Ok(None)` on a clean end of stream.
pub async fn read_message<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<T>, ProtocolError> {
    match read_frame(reader, limit).await? {
        None => Ok(None),
        Some(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| ProtocolError::Malformed(e.to_string())),
    }
}

/// Encodes a message as one frame (header included).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let body = serde_json::to_vec(message).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    append_frame(&mut frame, &body)?;
    Ok(frame)
}

/// Appends `body` as one frame (header included) to `out`: a message's
/// JSON, or a blob announced by the message before it.
pub fn append_frame(out: &mut Vec<u8>, body: &[u8]) -> Result<(), ProtocolError> {
    let len = u32::try_from(body.len()).map_err(|_| ProtocolError::TooLarge {
        len: body.len(),
        limit: u32::MAX as usize,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Writes one message as a frame.
pub async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), ProtocolError> {
    writer.write_all(&encode(message)?).await?;
    Ok(())
}

/// Worker → zygote.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    Boot {
        /// Relative path (`runeflow/_hook.py`) → source of the shim.
        shim: BTreeMap<String, String>,
        preload: Vec<String>,
        root: String,
        /// `compiler` boots the trusted compiler instead of a zygote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// Sent with one or two descriptors: the child's socket, and the write
    /// end of the pipe that becomes its fds 1 and 2.
    Spawn {
        execution_id: String,
        rlimits: Rlimits,
        /// The uid/gid the child switches to before anything else runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<ChildUser>,
    },
}

/// Resource limits applied in a child right after fork (`None`: inherited).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rlimits {
    pub as_bytes: Option<u64>,
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_NPROC: processes of the child's real uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// RLIMIT_NOFILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
    /// RLIMIT_FSIZE: the largest file the child may write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_bytes: Option<u64>,
}

/// An unprivileged identity for one execution's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildUser {
    pub uid: u32,
    pub gid: u32,
}

/// Zygote → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlReply {
    Ready { pid: i32, python: String },
    Spawned { pid: i32 },
    Error { message: String },
}

/// Worker → child, first message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMessage {
    pub op: String,
    pub execution_id: String,
    pub path: String,
    pub module: Option<String>,
    pub function: String,
    pub parameters: serde_json::Value,
    pub top_level: Vec<String>,
    pub root: String,
    pub max_log_bytes: usize,
    /// Modules sent along (the workflow's imports); when present, one blob
    /// frame with their code objects follows this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<Vec<PrefetchEntry>>,
    /// The child prepares everything, then waits for [`GO`] before it
    /// imports the workflow: the worker sends `run` while it is still
    /// marking the execution running, and `go` only if that says to run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gate: bool,
}

/// The frame that opens a gated `run` (see [`RunMessage::gate`]).
pub const GO: &str = r#"{"op":"go"}"#;

/// A module sent with `run`, as a `find` reply would describe it: a
/// namespace package, or a module with `code_len` bytes of marshalled code
/// in the blob frame (in list order), or with its `source` when the
/// compiler could not compile it (the child then raises the real error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefetchEntry {
    pub name: String,
    pub kind: ModuleKind,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Worker → compiler: sources to compile, with their virtual file names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompileRequest {
    pub op: String,
    pub items: Vec<CompileItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompileItem {
    pub filename: String,
    pub source: String,
}

/// Compiler → worker, followed by one blob frame of the code objects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompileReply {
    pub op: String,
    pub items: Vec<CompiledItem>,
}

/// One compiled module (`size` bytes of the blob) and its imports, or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CompiledItem {
    Code {
        size: usize,
        /// `[name, fromlist, level]` per import statement in the bytecode.
        imports: Vec<(String, Vec<String>, u32)>,
    },
    Failed {
        error: String,
    },
}

/// Child → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ChildMessage {
    Find {
        name: String,
    },
    Read {
        path: String,
    },
    List {
        dir: String,
    },
    /// A plain config entry (`context.config["key"]`).
    Config {
        key: String,
    },
    /// A secret (`context.secret("key")`).
    Secret {
        key: String,
    },
    Log {
        text: String,
    },
    Result(ExecutionResult),
}

/// How the workflow ended, as the child saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExecutionResult {
    Success {
        #[serde(default)]
        value: serde_json::Value,
    },
    Failed {
        error: ErrorInfo,
    },
}

/// An exception as reported by the child (or made up by the worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub traceback: Option<String>,
}

/// Reply to `find`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FindReply {
    Found {
        found: bool,
        kind: ModuleKind,
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    Missing {
        found: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    Module,
    Package,
    Namespace,
}

/// One entry of a `list` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let msg = ChildMessage::Find { name: "a.b".into() };
        let frame = encode(&msg).unwrap();
        let mut r: &[u8] = &frame;
        let back: ChildMessage = read_message(&mut r, 1024).await.unwrap().unwrap();
        assert!(matches!(back, ChildMessage::Find { name } if name == "a.b"));

        let mut r: &[u8] = &frame;
        assert!(matches!(
            read_frame(&mut r, 4).await,
            Err(ProtocolError::TooLarge { .. })
        ));
        let mut r: &[u8] = &frame[..frame.len() - 1];
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(ProtocolError::Truncated)
        ));
        let mut r: &[u8] = &frame[..2];
        assert!(matches!(
            read_frame(&mut r, 1024).await,
            Err(ProtocolError::Truncated)
        ));
        let mut r: &[u8] = &[];
        assert!(read_frame(&mut r, 1024).await.unwrap().is_none());
        let bad = [0, 0, 0, 2, b'{', b'x'];
        let mut r: &[u8] = &bad;
        assert!(matches!(
            read_message::<_, ChildMessage>(&mut r, 1024).await,
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn results_decode_as_the_shim_sends_them() {
        let ok: ChildMessage =
            serde_json::from_str(r#"{"op":"result","status":"success","value":{"a":1}}"#).unwrap();
        assert!(matches!(
            ok,
            ChildMessage::Result(ExecutionResult::Success { .. })
        ));
        let failed: ChildMessage = serde_json::from_str(
            r#"{"op":"result","status":"failed","error":{"type":"ValueError","message":"x","traceback":"tb"}}"#,
        )
        .unwrap();
        match failed {
            ChildMessage::Result(ExecutionResult::Failed { error }) => {
                assert_eq!(error.kind, "ValueError")
            }
            other => panic!("{other:?}"),
        }
        let missing = serde_json::to_string(&FindReply::Missing { found: false }).unwrap();
        assert_eq!(missing, r#"{"found":false}"#);
    }
}

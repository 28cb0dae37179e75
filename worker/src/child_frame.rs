//! Decoding one frame from a child without letting the child choose how
//! much of the worker's memory its result takes.
//!
//! A frame may be up to RUNEFLOW_MAX_FRAME_BYTES. Decoding it straight into
//! a `ChildMessage` would build the result's `Value` before its size is
//! known. So the operation is read first (skipping the rest, which
//! allocates nothing); a result is then checked against
//! RUNEFLOW_MAX_RESULT_BYTES as text and parsed within
//! RUNEFLOW_MAX_RESULT_MEMORY_MB ([`crate::bounded_json`]).

use std::borrow::Cow;

use runeflow_shared::protocol::{ChildMessage, ErrorInfo, ProtocolError};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::bounded_json::{self, BoundedError};

/// What a frame asked for or reported.
#[derive(Debug)]
pub enum Incoming {
    /// A request or a log line (never a result).
    Message(ChildMessage),
    Success(Value),
    Failed(ErrorInfo),
    /// A result the worker will not hold: a failed outcome of this type and
    /// message instead.
    Refused {
        kind: &'static str,
        message: String,
    },
}

/// Bounds applied to a result frame.
#[derive(Debug, Clone, Copy)]
pub struct ResultBounds {
    /// Of the frame, as JSON text.
    pub max_bytes: usize,
    /// Of the parsed value, estimated.
    pub max_memory: usize,
}

#[derive(Deserialize)]
struct Op<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ResultFrame<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorInfo>,
}

pub fn decode(frame: &[u8], bounds: ResultBounds) -> Result<Incoming, ProtocolError> {
    let malformed = |err: serde_json::Error| ProtocolError::Malformed(err.to_string());
    let op: Op = serde_json::from_slice(frame).map_err(malformed)?;
    if op.op != "result" {
        return serde_json::from_slice(frame)
            .map(Incoming::Message)
            .map_err(malformed);
    }
    if frame.len() > bounds.max_bytes {
        return Ok(Incoming::Refused {
            kind: "ResultTooLarge",
            message: format!(
                "the workflow's result is {} bytes of JSON, over the limit of {} (RUNEFLOW_MAX_RESULT_BYTES)",
                frame.len(),
                bounds.max_bytes
            ),
        });
    }
    let result: ResultFrame = serde_json::from_slice(frame).map_err(malformed)?;
    match result.status.as_ref() {
        "success" => {
            let Some(raw) = result.value else {
                return Ok(Incoming::Success(Value::Null));
            };
            match bounded_json::parse(raw.get(), bounds.max_memory) {
                Ok(value) => Ok(Incoming::Success(value)),
                Err(BoundedError::OverBudget { budget }) => Ok(Incoming::Refused {
                    kind: "ResultTooLarge",
                    message: format!(
                        "the workflow's result ({} bytes of JSON) would take more than {} MiB of the worker's memory once parsed (RUNEFLOW_MAX_RESULT_MEMORY_MB); return fewer, larger values",
                        frame.len(),
                        budget / (1024 * 1024)
                    ),
                }),
                Err(BoundedError::Malformed(err)) => Err(malformed(err)),
            }
        }
        "failed" => match result.error {
            Some(error) => Ok(Incoming::Failed(error)),
            None => Err(ProtocolError::Malformed(
                "a failed result without its error".to_owned(),
            )),
        },
        other => Err(ProtocolError::Malformed(format!(
            "unknown result status {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BOUNDS: ResultBounds = ResultBounds {
        max_bytes: 1 << 20,
        max_memory: 1 << 20,
    };

    #[test]
    fn requests_and_results_decode_as_before() {
        let find = decode(br#"{"op":"find","name":"a.b"}"#, BOUNDS).unwrap();
        assert!(matches!(find, Incoming::Message(ChildMessage::Find { name }) if name == "a.b"));
        let ok = decode(
            br#"{"value":{"a":[1,"\u00e9"]},"status":"success","op":"result"}"#,
            BOUNDS,
        )
        .unwrap();
        assert!(matches!(ok, Incoming::Success(v) if v == json!({"a": [1, "é"]})));
        let none = decode(br#"{"op":"result","status":"success"}"#, BOUNDS).unwrap();
        assert!(matches!(none, Incoming::Success(Value::Null)));
        let failed = decode(
            br#"{"op":"result","status":"failed","error":{"type":"E","message":"m"}}"#,
            BOUNDS,
        )
        .unwrap();
        assert!(matches!(failed, Incoming::Failed(e) if e.kind == "E" && e.message == "m"));
    }

    #[test]
    fn oversized_results_are_refused_before_they_are_built() {
        let long = format!(
            r#"{{"op":"result","status":"success","value":"{}"}}"#,
            "x".repeat(2000)
        );
        let bounds = ResultBounds {
            max_bytes: 1000,
            max_memory: 1 << 20,
        };
        assert!(matches!(
            decode(long.as_bytes(), bounds),
            Ok(Incoming::Refused { kind: "ResultTooLarge", message }) if message.contains("RUNEFLOW_MAX_RESULT_BYTES")
        ));
        let zeros = format!(
            r#"{{"op":"result","status":"success","value":[{}0]}}"#,
            "0,".repeat(10_000)
        );
        let bounds = ResultBounds {
            max_bytes: 1 << 20,
            max_memory: 2 * zeros.len(),
        };
        assert!(matches!(
            decode(zeros.as_bytes(), bounds),
            Ok(Incoming::Refused { kind: "ResultTooLarge", message }) if message.contains("RUNEFLOW_MAX_RESULT_MEMORY_MB")
        ));
        // A log frame of the same size is not a result: it goes through.
        let log = format!(r#"{{"op":"log","text":"{}"}}"#, "x".repeat(2000));
        let bounds = ResultBounds {
            max_bytes: 1000,
            max_memory: 1000,
        };
        assert!(matches!(
            decode(log.as_bytes(), bounds),
            Ok(Incoming::Message(ChildMessage::Log { .. }))
        ));
    }

    #[test]
    fn bad_frames_are_protocol_errors() {
        for frame in [
            &b"not json"[..],
            br#"{"name":"x"}"#,
            br#"{"op":"result","status":"weird"}"#,
            br#"{"op":"result","status":"failed"}"#,
            br#"{"op":"result","status":"success","value":[1,}"#,
            br#"{"op":"teleport"}"#,
        ] {
            assert!(
                matches!(decode(frame, BOUNDS), Err(ProtocolError::Malformed(_))),
                "{frame:?}"
            );
        }
    }
}

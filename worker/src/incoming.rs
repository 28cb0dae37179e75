//! A job as the queue delivered it, decoded so that no payload can fail in
//! apalis's codec.
//!
//! A payload apalis cannot decode never reaches a handler: it is left to
//! apalis's error path and retries, and its execution stays `pending`. So
//! the worker's queue decodes with [`Lenient`], which never fails: what is
//! not a readable [`RunWorkflow`] becomes [`Incoming::Unreadable`], with
//! the execution id when one can still be read, and the handler fails that
//! execution (`UnreadableJob`) or drops the job.

use std::convert::Infallible;

use apalis::prelude::Codec;
use runeflow_shared::jobs::RunWorkflow;
use serde::Deserialize;
use uuid::Uuid;

/// How much of an unreadable payload's decoding error is kept.
const MAX_PROBLEM_CHARS: usize = 300;

/// A delivered job: runnable, or not.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Run(RunWorkflow),
    /// Not a `RunWorkflow`; `problem` says why.
    Unreadable {
        execution_id: Option<Uuid>,
        problem: String,
    },
}

impl Incoming {
    /// Reads a payload; never fails.
    pub fn read(bytes: &[u8]) -> Incoming {
        let problem = match serde_json::from_slice::<RunWorkflow>(bytes) {
            Ok(job) => return Incoming::Run(job),
            Err(err) => short(&err.to_string()),
        };
        Incoming::Unreadable {
            execution_id: execution_id(bytes),
            problem,
        }
    }

    /// The execution this job is for, when it can be read.
    pub fn execution_id(&self) -> Option<Uuid> {
        match self {
            Incoming::Run(job) => Some(job.execution_id),
            Incoming::Unreadable { execution_id, .. } => *execution_id,
        }
    }
}

/// The execution id of a JSON object whose other fields may be unreadable.
fn execution_id(bytes: &[u8]) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct IdOnly {
        execution_id: Uuid,
    }
    serde_json::from_slice::<IdOnly>(bytes)
        .ok()
        .map(|j| j.execution_id)
}

fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_PROBLEM_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The worker's queue codec: JSON like apalis's, but decoding never fails
/// (see [`Incoming::read`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lenient;

/// Encoding is only for completeness (the worker pushes nothing): an
/// unreadable job is written back as the JSON `null`.
impl Codec<Incoming> for Lenient {
    type Compact = Vec<u8>;
    type Error = Infallible;

    fn encode(&self, input: &Incoming) -> Result<Vec<u8>, Infallible> {
        Ok(match input {
            Incoming::Run(job) => serde_json::to_vec(job).unwrap_or_else(|_| b"null".to_vec()),
            Incoming::Unreadable { .. } => b"null".to_vec(),
        })
    }

    fn decode(&self, compact: &Vec<u8>) -> Result<Incoming, Infallible> {
        Ok(Incoming::read(compact))
    }
}

#[cfg(test)]
mod tests {
    use runeflow_shared::jobs::RunDetails;
    use runeflow_shared::store::StoreVersion;

    use super::*;

    fn job() -> RunWorkflow {
        RunWorkflow {
            execution_id: Uuid::now_v7(),
            workspace: StoreVersion::default(),
            run: RunDetails {
                path: "a.py".into(),
                function: "f".into(),
                parameters: serde_json::json!({}),
                timeout_seconds: None,
                max_concurrency: None,
            },
        }
    }

    #[test]
    fn a_good_job_round_trips() {
        let job = job();
        let bytes = Lenient.encode(&Incoming::Run(job.clone())).unwrap();
        assert_eq!(Lenient.decode(&bytes).unwrap(), Incoming::Run(job));
    }

    #[test]
    fn an_id_is_kept_when_the_rest_is_unreadable() {
        let id = Uuid::now_v7();
        for payload in [
            format!(r#"{{"execution_id":"{id}"}}"#),
            format!(r#"{{"execution_id":"{id}","workspace":7,"run":"x"}}"#),
            format!(r#"{{"execution_id":"{id}","workspace":{{"id":"s","generation":1}}}}"#),
        ] {
            let incoming = Incoming::read(payload.as_bytes());
            assert!(
                matches!(&incoming, Incoming::Unreadable { execution_id: Some(got), problem } if *got == id && !problem.is_empty()),
                "{payload}: {incoming:?}"
            );
        }
    }

    #[test]
    fn garbage_has_no_id_and_never_fails() {
        for payload in [
            &b"not json"[..],
            b"",
            b"\xff\xfe",
            b"[1,2]",
            b"{\"execution_id\":\"nope\"}",
        ] {
            assert_eq!(Incoming::read(payload).execution_id(), None, "{payload:?}");
        }
        let long = vec![b'x'; 10_000];
        let Incoming::Unreadable { problem, .. } = Incoming::read(&long) else {
            panic!("garbage read as a job");
        };
        assert!(problem.chars().count() <= MAX_PROBLEM_CHARS + 1);
    }
}

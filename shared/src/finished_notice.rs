//! The notice a worker publishes on the "finished" channel once an outcome
//! is recorded. When the recorded row is small it rides along, so a
//! `wait`ing request answers from the notice instead of reading the row
//! back from PostgreSQL (one round trip less on every waited execution);
//! otherwise the notice is the bare execution id and the API reads the row.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entities::execution;

/// Rows whose JSON is larger than this are announced by id only: a notice
/// is copied to every API process, waiting or not.
pub const MAX_INLINE_BYTES: usize = 64 * 1024;

/// A decoded notice: which execution finished and, when it was small
/// enough to send, its recorded row.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedNotice {
    pub id: Uuid,
    pub execution: Option<execution::Model>,
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    id: Uuid,
    #[serde(borrow)]
    execution: std::borrow::Cow<'a, execution::Model>,
}

/// The payload to publish: the row as JSON when it fits, else the id.
pub fn encode(id: Uuid, execution: Option<&execution::Model>) -> String {
    if let Some(row) = execution.filter(|row| row.id == id) {
        let wire = Wire {
            id,
            execution: std::borrow::Cow::Borrowed(row),
        };
        if let Ok(json) = serde_json::to_string(&wire)
            && json.len() <= MAX_INLINE_BYTES
        {
            return json;
        }
    }
    id.to_string()
}

/// Reads a payload written by [`encode`] (or by a worker that only ever
/// sends ids). `None` for anything else: a stray publish is ignored.
pub fn decode(payload: &str) -> Option<FinishedNotice> {
    if let Ok(id) = payload.parse::<Uuid>() {
        return Some(FinishedNotice {
            id,
            execution: None,
        });
    }
    let wire: Wire = serde_json::from_str(payload).ok()?;
    let row = wire.execution.into_owned();
    // A row under another id is not trusted as this execution's outcome.
    let execution = (row.id == wire.id).then_some(row);
    Some(FinishedNotice {
        id: wire.id,
        execution,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: Uuid, logs: &str) -> execution::Model {
        let now = chrono::Utc::now().fixed_offset();
        execution::Model {
            id,
            workflow_name: "hello".into(),
            workflow_path: "flows/hello.py".into(),
            function_name: "hello".into(),
            parameters: serde_json::json!({"name": "ü"}),
            status: crate::executions::Status::Success,
            result: Some(serde_json::json!([1, 2])),
            error_type: None,
            error_message: None,
            error_traceback: None,
            logs: logs.into(),
            logs_truncated: false,
            attempt: 1,
            worker: Some("w-1".into()),
            workspace_gen: 7,
            timeout_seconds: Some(1.5),
            queued_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            duration_ms: Some(3),
            last_fault: None,
            run_at: None,
            retry_policy: None,
            retry: 0,
            attempts: serde_json::json!([]),
            requeues: 0,
            concurrency_key: None,
            max_concurrency: None,
            schedule_tick: None,
            config_read: serde_json::json!([]),
        }
    }

    #[test]
    fn a_small_row_travels_with_the_notice() {
        let id = Uuid::now_v7();
        let sent = row(id, "printed\n");
        let notice = decode(&encode(id, Some(&sent))).expect("decodes");
        assert_eq!(notice.id, id);
        assert_eq!(notice.execution, Some(sent));
    }

    #[test]
    fn a_large_row_or_none_is_announced_by_id() {
        let id = Uuid::now_v7();
        let big = row(id, &"x".repeat(MAX_INLINE_BYTES));
        assert_eq!(encode(id, Some(&big)), id.to_string());
        assert_eq!(encode(id, None), id.to_string());
        let notice = decode(&id.to_string()).expect("decodes");
        assert_eq!((notice.id, notice.execution), (id, None));
    }

    #[test]
    fn a_row_of_another_execution_is_not_trusted() {
        let (id, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(encode(id, Some(&row(other, ""))), id.to_string());
        let forged = format!(
            "{{\"id\":\"{id}\",\"execution\":{}}}",
            serde_json::to_string(&row(other, "")).expect("serialises")
        );
        let notice = decode(&forged).expect("decodes");
        assert_eq!((notice.id, notice.execution), (id, None));
        assert_eq!(decode("not a notice"), None);
    }
}

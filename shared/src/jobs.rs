//! What the API and the worker agree on about executions: the job payload
//! pushed to the queue, the queue name and the "finished" channel
//! (statuses and statements: `executions`).

use serde::{Deserialize, Serialize};

use crate::entities::execution;
use crate::store::StoreVersion;

/// The job pushed for each execution: which row, and which workspace
/// version it must see at least (read-your-writes). The `executions` row
/// is the truth; `run` repeats what the worker needs to prepare the child
/// while it marks the row running (the child starts the workflow only
/// once that update says so), so the update costs no time on the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunWorkflow {
    pub execution_id: uuid::Uuid,
    pub workspace: StoreVersion,
    /// Required: a job without it is unreadable (see the worker's
    /// `incoming.rs`) and fails its execution.
    pub run: RunDetails,
}

/// The immutable part of an `executions` row the child is prepared from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetails {
    pub path: String,
    pub function: String,
    pub parameters: serde_json::Value,
    pub timeout_seconds: Option<f64>,
    /// The workflow's `max_concurrency` when it was queued: the worker
    /// then starts it only while fewer run (see `executions::limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<i32>,
}

impl RunDetails {
    pub fn of(row: &execution::Model) -> Self {
        RunDetails {
            path: row.workflow_path.clone(),
            function: row.function_name.clone(),
            parameters: row.parameters.clone(),
            timeout_seconds: row.timeout_seconds,
            max_concurrency: row.max_concurrency,
        }
    }
}

/// Queue (apalis namespace) under a deployment's prefix. No `:` inside the
/// name part: apalis's pub/sub wake-up splits channel names on `:`.
pub fn queue_name(prefix: &str) -> String {
    format!("{prefix}-executions")
}

/// Redis channel a worker publishes an execution id on once its outcome is
/// recorded; `wait` requests listen to it instead of polling PostgreSQL.
pub fn finished_channel(prefix: &str) -> String {
    format!("{prefix}:executions:finished")
}

/// Redis channel the API publishes an execution id on once it marked the
/// row `cancelled`; the worker running it kills the child.
pub fn cancel_channel(prefix: &str) -> String {
    format!("{prefix}:executions:cancel")
}

/// Channel that wakes idle workers right after a push. apalis-redis 1.0
/// listens for it but never publishes it on a push (every push lands in its
/// `scheduled` set), so the API publishes it and workers subscribe
/// themselves; polling stays as a slow safety net.
pub fn wake_channel(prefix: &str) -> String {
    format!("tasks:{}:active:available", queue_name(prefix))
}

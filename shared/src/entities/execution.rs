//! `executions`: one row per requested run. PostgreSQL, not the queue, is the
//! source of truth for an execution's status.

use sea_orm::entity::prelude::*;

pub use crate::executions::Status;

/// Serde: a worker sends the recorded row with its "finished" notice
/// (`finished_notice`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "executions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub workflow_name: String,
    pub workflow_path: String,
    pub function_name: String,
    pub parameters: Json,
    /// See `executions::transitions` for how it moves.
    pub status: Status,
    pub result: Option<Json>,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub error_traceback: Option<String>,
    /// Captured stdout, stderr and log records (bounded).
    pub logs: String,
    pub logs_truncated: bool,
    /// How many times a worker started it.
    pub attempt: i32,
    pub worker: Option<String>,
    /// Module-store generation the API saw when it enqueued.
    pub workspace_gen: i64,
    pub timeout_seconds: Option<f64>,
    pub queued_at: DateTimeWithTimeZone,
    pub started_at: Option<DateTimeWithTimeZone>,
    pub finished_at: Option<DateTimeWithTimeZone>,
    pub duration_ms: Option<i64>,
    /// Why the last attempt ended in a worker fault, if one did.
    pub last_fault: Option<String>,
    /// When a `scheduled` execution becomes `pending` (delayed runs, retries).
    pub run_at: Option<DateTimeWithTimeZone>,
    /// `{retries, backoff_seconds, retry_on}` from the workflow when it was
    /// queued; `None`: user failures are final.
    pub retry_policy: Option<Json>,
    /// Retries of user failures used so far.
    pub retry: i32,
    /// Earlier attempts that failed and were retried, oldest first.
    pub attempts: Json,
    /// Times the row went back to the queue (a retry, a wait for a
    /// concurrency slot): each push of it is a job of its own.
    pub requeues: i32,
    /// `path::function` of a workflow with `max_concurrency`, else `None`.
    pub concurrency_key: Option<String>,
    pub max_concurrency: Option<i32>,
    /// `<schedule id>@<tick RFC 3339>` for a run a schedule enqueued
    /// (unique: one execution per tick).
    #[serde(default)]
    pub schedule_tick: Option<String>,
    /// Names of the config entries and secrets the execution read (a JSON
    /// array of strings, in the order first read; never a value).
    #[serde(default = "empty_list")]
    pub config_read: Json,
}

fn empty_list() -> Json {
    Json::Array(Vec::new())
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

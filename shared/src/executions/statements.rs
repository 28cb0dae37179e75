//! Every statement on `executions`. Status changes are conditional updates
//! (see [`MOVES`] and `transitions`): delivery is at least once, so a
//! duplicate or a late attempt matches nothing and changes nothing.
//!
//! The bookkeeping writes commit asynchronously (see `durability`): the
//! caller flushes the WAL once before it promises anything (the API before
//! it answers, the worker before it acknowledges the job).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, Statement, Value};
use uuid::Uuid;

use super::Status::{self, *};
use super::transitions::Move;
use crate::durability::ASYNC_COMMIT;
use crate::entities::execution;

pub const START: Move = Move {
    statement: "start",
    from: &[Pending, Running],
    to: &[Running],
};
pub const FINISH: Move = Move {
    statement: "finish",
    from: &[Running],
    to: &[Success, Failed, Timeout],
};
pub const PROMOTE: Move = Move {
    statement: "promote_due",
    from: &[Scheduled],
    to: &[Pending],
};
pub const RETRY_LATER: Move = Move {
    statement: "retry_later",
    from: &[Running],
    to: &[Scheduled],
};
pub const CANCEL: Move = Move {
    statement: "cancel",
    from: &[Scheduled, Pending, Running],
    to: &[Cancelled],
};
/// Every status change a statement here makes.
pub const MOVES: &[Move] = &[
    START,
    FINISH,
    PROMOTE,
    RETRY_LATER,
    CANCEL,
    super::limits::WAIT_FOR_SLOT,
    super::limits::RELEASE_SLOT,
];

/// What a new execution is: the row's immutable part.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: Uuid,
    pub workflow_name: String,
    pub workflow_path: String,
    pub function_name: String,
    pub parameters: serde_json::Value,
    /// Module-store generation the API saw.
    pub workspace_gen: u64,
    pub timeout_seconds: Option<f64>,
    /// Not before this time: the row is `scheduled` until then (delayed runs).
    pub run_at: Option<DateTime<Utc>>,
    /// The workflow's retry policy when it was queued (see `RetryPolicy`).
    pub retry_policy: Option<serde_json::Value>,
    /// The workflow's `max_concurrency` (see `limits`).
    pub max_concurrency: Option<i32>,
    /// The schedule tick that enqueued it (`<schedule id>@<tick>`), unique.
    pub schedule_tick: Option<String>,
}

impl NewExecution {
    /// The status it is inserted with: `scheduled` while `run_at` is ahead.
    pub fn initial_status(&self) -> Status {
        match self.run_at {
            Some(at) if at > Utc::now() => Scheduled,
            _ => Pending,
        }
    }
}

/// Inserts the row, `pending` or (with a `run_at` ahead) `scheduled`
/// (asynchronous commit); returns the status it got, or `None` when a row
/// already holds its `schedule_tick` (that tick was enqueued).
pub async fn insert(
    db: &impl ConnectionTrait,
    new: &NewExecution,
) -> Result<Option<Status>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO executions (id, workflow_name, workflow_path, function_name, parameters,
                                     status, workspace_gen, timeout_seconds, queued_at,
                                     run_at, retry_policy, max_concurrency, concurrency_key,
                                     schedule_tick)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, now(), $9, $10, $11, $12, $13
             FROM {ASYNC_COMMIT}
             ON CONFLICT (schedule_tick) DO NOTHING"
        )
    });
    let status = new.initial_status();
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            SQL.as_str(),
            [
                new.id.into(),
                new.workflow_name.clone().into(),
                new.workflow_path.clone().into(),
                new.function_name.clone().into(),
                new.parameters.clone().into(),
                status.as_str().into(),
                i64::try_from(new.workspace_gen).unwrap_or(i64::MAX).into(),
                new.timeout_seconds.into(),
                new.run_at.map(|at| at.fixed_offset()).into(),
                new.retry_policy.clone().into(),
                new.max_concurrency.into(),
                new.max_concurrency
                    .map(|_| super::limits::key(&new.workflow_path, &new.function_name))
                    .into(),
                new.schedule_tick.clone().into(),
            ],
        ))
        .await?;
    Ok((done.rows_affected() == 1).then_some(status))
}

/// Moves up to `limit` `scheduled` rows whose time came to `pending`, each
/// by exactly one caller however many run this (`SKIP LOCKED`): the rows,
/// for the caller to push.
pub async fn promote_due(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<execution::Model>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions SET status = 'pending', queued_at = now()
             FROM {ASYNC_COMMIT}
             WHERE id IN (SELECT id FROM executions
                          WHERE status IN ({}) AND run_at <= now()
                          ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING executions.*",
            PROMOTE.from_sql()
        )
    });
    execution::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SQL.as_str(),
        [i64::try_from(limit).unwrap_or(i64::MAX).into()],
    ))
    .all(db)
    .await
}

/// How much of an attempt's logs `retry_later` keeps in `attempts`.
pub const ATTEMPT_LOG_CHARS: i32 = 65536;

/// Ends attempt `attempt` as a failure to retry at `run_at`: its outcome
/// goes to `attempts` (logs cut to their last [`ATTEMPT_LOG_CHARS`]), the
/// row becomes `scheduled` with `retry + 1` and no `started_at` (the next
/// try's start sets it). Only while that attempt owns
/// the row: the row, or `None`.
pub async fn retry_later(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: i32,
    outcome: Outcome<'_>,
    run_at: DateTime<Utc>,
) -> Result<Option<execution::Model>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions
             SET attempts = attempts || jsonb_build_array(jsonb_build_object(
                     'attempt', attempt, 'status', $3::text, 'worker', worker,
                     'error', jsonb_build_object('type', $4::text, 'message', $5::text,
                                                 'traceback', $6::text),
                     'logs', right($7::text, {ATTEMPT_LOG_CHARS}),
                     'started_at', started_at, 'finished_at', now(),
                     'duration_ms', $8::bigint)),
                 status = 'scheduled', run_at = $9, retry = retry + 1, started_at = NULL,
                 requeues = requeues + 1,
                 result = NULL, error_type = NULL, error_message = NULL,
                 error_traceback = NULL, logs = '', logs_truncated = false
             FROM {ASYNC_COMMIT}
             WHERE id = $1 AND attempt = $2 AND status IN ({})
             RETURNING executions.*",
            RETRY_LATER.from_sql()
        )
    });
    let (kind, message, traceback) = outcome.error_columns();
    one(
        db,
        &SQL,
        vec![
            id.into(),
            attempt.into(),
            outcome.status.as_str().into(),
            kind.into(),
            message.into(),
            traceback.into(),
            outcome.logs.into(),
            outcome.duration_ms.into(),
            run_at.fixed_offset().into(),
        ],
    )
    .await
}

/// Marks the execution running for a new attempt (`attempt + 1`) by
/// `worker`: the row, or `None` when it is final or unknown.
pub async fn start(
    db: &impl ConnectionTrait,
    id: Uuid,
    worker: &str,
) -> Result<Option<execution::Model>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions
             SET status = 'running', attempt = attempt + 1, worker = $2,
                 started_at = COALESCE(started_at, now())
             FROM {ASYNC_COMMIT}
             WHERE id = $1 AND status IN ({})
             RETURNING executions.*",
            START.from_sql()
        )
    });
    one(db, &SQL, vec![id.into(), worker.into()]).await
}

/// An attempt's outcome, as stored (the caller makes it storable).
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    /// One of [`FINISH`]'s targets.
    pub status: Status,
    pub result: Option<serde_json::Value>,
    /// Type, message, traceback.
    pub error: Option<(&'a str, &'a str, Option<&'a str>)>,
    pub logs: &'a str,
    pub logs_truncated: bool,
    pub duration_ms: Option<i64>,
}

impl Outcome<'_> {
    /// `error_type`, `error_message`, `error_traceback` as bound values.
    fn error_columns(&self) -> (Option<String>, Option<String>, Option<String>) {
        match self.error {
            Some((k, m, t)) => (Some(k.to_owned()), Some(m.to_owned()), t.map(str::to_owned)),
            None => (None, None, None),
        }
    }
}

/// Records the outcome of `attempt`, only while that attempt owns the row
/// (`status = 'running' AND attempt = $n`): the row, or `None`.
pub async fn finish(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: i32,
    outcome: Outcome<'_>,
) -> Result<Option<execution::Model>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions
             SET status = $3, result = $4, error_type = $5, error_message = $6, error_traceback = $7,
                 logs = $8, logs_truncated = $9, finished_at = now(), duration_ms = $10
             FROM {ASYNC_COMMIT}
             WHERE id = $1 AND attempt = $2 AND status IN ({})
             RETURNING executions.*",
            FINISH.from_sql()
        )
    });
    if !FINISH.to.contains(&outcome.status) {
        return Err(DbErr::Custom(format!(
            "an outcome cannot be '{}'",
            outcome.status
        )));
    }
    let (kind, message, traceback) = outcome.error_columns();
    one(
        db,
        &SQL,
        vec![
            id.into(),
            attempt.into(),
            outcome.status.as_str().into(),
            outcome.result.into(),
            kind.into(),
            message.into(),
            traceback.into(),
            outcome.logs.into(),
            outcome.logs_truncated.into(),
            outcome.duration_ms.into(),
        ],
    )
    .await
}

/// Notes why an attempt ended in a worker fault (for the `WorkerLost`
/// message if the execution is given up); no status change.
pub async fn note_fault(db: &impl ConnectionTrait, id: Uuid, fault: &str) -> Result<(), DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions SET last_fault = $2
             FROM {ASYNC_COMMIT}
             WHERE id = $1 AND status IN ({})",
            START.from_sql()
        )
    });
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SQL.as_str(),
        [id.into(), fault.into()],
    ))
    .await?;
    Ok(())
}

/// Cancels an execution that is not final (`scheduled`, `pending` or
/// `running`, whatever its attempt): the row, now final, or `None` when it
/// was already final or does not exist. A worker that started it finds
/// the row cancelled: `start` skips it, `finish` matches nothing, and the
/// worker kills the child (see `cancel_channel`).
pub async fn cancel(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<execution::Model>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions
             SET status = 'cancelled', finished_at = now(),
                 error_type = 'Cancelled', error_message = 'cancelled by request',
                 duration_ms = CASE WHEN started_at IS NULL THEN 0
                     ELSE (extract(epoch FROM now() - started_at) * 1000)::bigint END
             FROM {ASYNC_COMMIT}
             WHERE id = $1 AND status IN ({})
             RETURNING executions.*",
            CANCEL.from_sql()
        )
    });
    one(db, &SQL, vec![id.into()]).await
}

/// What the worker of a cancelled attempt adds to the row once the child
/// is gone: its logs and how long it ran (no status change). Only for that
/// attempt, and only once the row is cancelled.
pub async fn keep_cancelled_logs(
    db: &impl ConnectionTrait,
    id: Uuid,
    attempt: i32,
    logs: &str,
    logs_truncated: bool,
    duration_ms: i64,
) -> Result<Option<execution::Model>, DbErr> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE executions SET logs = $3, logs_truncated = $4, duration_ms = $5
             FROM {ASYNC_COMMIT}
             WHERE id = $1 AND attempt = $2 AND status = 'cancelled'
             RETURNING executions.*"
        )
    });
    one(
        db,
        &SQL,
        vec![
            id.into(),
            attempt.into(),
            logs.into(),
            logs_truncated.into(),
            duration_ms.into(),
        ],
    )
    .await
}

/// Which of `ids` are cancelled (the worker's check of its running
/// executions, for a cancel whose message it missed).
pub async fn cancelled_among(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<Uuid>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM executions WHERE id = ANY($1) AND status = 'cancelled'",
            [ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect()
}

/// Executions whose job may be lost: `pending` since before `cutoff`, or
/// `running` since before it (Redis lost the job while it ran); oldest
/// first, at most `limit`.
pub async fn stale(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<execution::Model>, DbErr> {
    const SQL: &str = "SELECT * FROM executions
         WHERE (status = 'pending' AND queued_at < $1)
            OR (status = 'running' AND started_at < $1)
         ORDER BY id LIMIT $2";
    execution::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SQL,
        [
            cutoff.fixed_offset().into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    ))
    .all(db)
    .await
}

/// One execution.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<execution::Model>, DbErr> {
    execution::Entity::find_by_id(id).one(db).await
}

/// Which executions a listing shows: newest first, below `cursor`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub workflow: Option<String>,
    pub cursor: Option<Uuid>,
    pub limit: u64,
}

/// Longest `error_message` prefix a summary carries, in characters.
pub const SUMMARY_MESSAGE_CHARS: i32 = 200;

/// A page of summaries (no parameters, result, logs or traceback), read
/// into `T`, whose fields are: id, workflow, path, function, status,
/// error_type, error_message (its first [`SUMMARY_MESSAGE_CHARS`]),
/// logs_truncated, attempt, worker, queued_at, started_at, finished_at,
/// duration_ms.
pub async fn list<T: FromQueryResult>(
    db: &impl ConnectionTrait,
    filter: &ListFilter,
) -> Result<Vec<T>, DbErr> {
    let mut sql = format!(
        "SELECT id, workflow_name AS workflow, workflow_path AS path, function_name AS function,
                status, error_type, left(error_message, {SUMMARY_MESSAGE_CHARS}) AS error_message,
                logs_truncated, attempt, worker, queued_at, started_at, finished_at, duration_ms
         FROM executions WHERE true"
    );
    let mut values: Vec<Value> = Vec::new();
    let filters = [
        ("status", filter.status.map(|s| Value::from(s.as_str()))),
        ("workflow_name", filter.workflow.clone().map(Value::from)),
    ];
    for (column, value) in filters {
        if let Some(value) = value {
            values.push(value);
            sql.push_str(&format!(" AND {column} = ${}", values.len()));
        }
    }
    if let Some(cursor) = filter.cursor {
        values.push(cursor.into());
        sql.push_str(&format!(" AND id < ${}", values.len()));
    }
    values.push(i64::try_from(filter.limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len()));
    T::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .all(db)
    .await
}

/// Deletes up to `batch` executions queued before `cutoff` (retention);
/// returns how many. Rows are taken `FOR UPDATE SKIP LOCKED`, so API
/// processes running it at once take disjoint rows. Ids are UUIDv7, so
/// "older than the cutoff" is first a primary-key range; `queued_at` is
/// checked too, so a row whose id is not a v7 is never deleted early.
pub async fn delete_batch_queued_before(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, DbErr> {
    const SQL: &str = "DELETE FROM executions WHERE id IN (
        SELECT id FROM executions
        WHERE id < $1 AND queued_at < $2
        ORDER BY id
        LIMIT $3
        FOR UPDATE SKIP LOCKED)";
    Ok(db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            SQL,
            [
                smallest_v7(cutoff).into(),
                cutoff.fixed_offset().into(),
                i64::try_from(batch).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?
        .rows_affected())
}

/// The smallest UUIDv7 of `at`'s millisecond: every v7 id made before `at`
/// sorts below it.
fn smallest_v7(at: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

async fn one(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<execution::Model>, DbErr> {
    execution::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_v7_sorts_below_every_later_id() {
        let at = Utc::now() - chrono::Duration::days(30);
        let bound = smallest_v7(at);
        assert_eq!(bound.get_version_num(), 7);
        let later = Uuid::now_v7();
        assert!(later > bound);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(at.timestamp() - 1).unwrap(),
            0,
        );
        assert!(Uuid::new_v7(ts) < bound);
    }

    #[test]
    fn conditions_come_from_the_declared_moves() {
        assert_eq!(START.from_sql(), "'pending', 'running'");
        assert_eq!(CANCEL.from_sql(), "'scheduled', 'pending', 'running'");
    }
}

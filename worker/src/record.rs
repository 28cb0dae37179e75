//! Recording executions in PostgreSQL, exactly once.
//!
//! Delivery is at least once, so both updates are conditional: `start` only
//! moves a row that is not final, and `finish` only writes the outcome of
//! the attempt that started it. A duplicate or a late attempt changes
//! nothing.

use std::sync::LazyLock;

use runeflow_shared::durability::ASYNC_COMMIT;
use runeflow_shared::entities::execution;
use runeflow_shared::jobs::status;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement};
use uuid::Uuid;

use crate::execution::{Finished, Outcome};
use crate::storable;

/// The row as an outcome left it (sent with the "finished" notice), or
/// `None` when the update matched nothing: another attempt owns the row.
pub type Recorded = Option<Box<execution::Model>>;

/// What to do with a delivered job.
#[derive(Debug)]
pub enum Start {
    /// Run it: this is the row, with `attempt` already counted.
    Run(Box<execution::Model>),
    /// Already final (a duplicate delivery) or unknown: acknowledge only.
    Skip,
    /// Lost to worker faults too often: recorded as failed, do not run.
    GaveUp,
}

/// Both updates commit asynchronously (see `runeflow_shared::durability`):
/// the job handler flushes the WAL once, before the job is acknowledged.
static START: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE executions
         SET status = 'running', attempt = attempt + 1, worker = $2,
             started_at = COALESCE(started_at, now())
         FROM {ASYNC_COMMIT}
         WHERE id = $1 AND status IN ('pending', 'running')
         RETURNING executions.*"
    )
});

static FINISH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE executions
         SET status = $3, result = $4, error_type = $5, error_message = $6, error_traceback = $7,
             logs = $8, logs_truncated = $9, finished_at = now(), duration_ms = $10
         FROM {ASYNC_COMMIT}
         WHERE id = $1 AND attempt = $2 AND status = 'running'
         RETURNING executions.*"
    )
});

static FAULT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE executions SET last_fault = $2
         FROM {ASYNC_COMMIT}
         WHERE id = $1 AND status IN ('pending', 'running')"
    )
});

/// Notes why an attempt ended in a worker fault (kept for the `WorkerLost`
/// message if the execution is given up). Best effort: PostgreSQL may be
/// the fault.
pub async fn note_fault(db: &DatabaseConnection, id: Uuid, fault: &str) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        FAULT.as_str(),
        [id.into(), fault.into()],
    ))
    .await?;
    Ok(())
}

/// Marks an execution running for this attempt.
pub async fn start(
    db: &DatabaseConnection,
    id: Uuid,
    worker: &str,
    max_attempts: i32,
) -> Result<Start, DbErr> {
    let row = execution::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        START.as_str(),
        [id.into(), worker.into()],
    ))
    .one(db)
    .await?;
    let Some(row) = row else {
        return Ok(Start::Skip);
    };
    if row.attempt > max_attempts {
        let mut message = format!(
            "the execution was interrupted {} times by worker faults (worker killed or lost); giving up",
            row.attempt - 1
        );
        if let Some(fault) = &row.last_fault {
            message.push_str("; the last fault: ");
            message.push_str(fault);
        }
        write(
            db,
            id,
            row.attempt,
            status::FAILED,
            None,
            Some(("WorkerLost", message.as_str(), None)),
            "",
            false,
            None,
        )
        .await?;
        return Ok(Start::GaveUp);
    }
    Ok(Start::Run(Box::new(row)))
}

/// Records the outcome of `attempt`: the recorded row, or `None` when
/// another attempt owns it.
///
/// Strings are escaped where PostgreSQL cannot hold them (see
/// `storable`); if it still refuses the outcome because of its content,
/// the execution is recorded `failed` with `OutcomeUnrecordable` (keeping
/// the logs when those can be stored), never left for a retry that would
/// run user code again.
pub async fn finish(
    db: &DatabaseConnection,
    id: Uuid,
    attempt: i32,
    finished: &Finished,
) -> Result<Recorded, DbErr> {
    if let Outcome::Cancelled = finished.outcome {
        return keep_cancelled_logs(db, id, attempt, finished).await;
    }
    let refused = match write_outcome(db, id, attempt, finished).await {
        Err(err) if storable::is_content_refusal(&err) => err,
        other => return other,
    };
    tracing::warn!(execution = %id, err = %refused, "PostgreSQL refused the outcome's content; recording it as failed");
    let message =
        format!("the workflow's outcome could not be stored: PostgreSQL refused it ({refused})");
    let error = Some(("OutcomeUnrecordable", message.as_str(), None));
    // With the logs if PostgreSQL takes them, else without.
    let mut refused = refused;
    for (logs, truncated) in [
        (finished.logs.as_str(), finished.logs_truncated),
        ("", true),
    ] {
        match write(
            db,
            id,
            attempt,
            status::FAILED,
            None,
            error,
            logs,
            truncated,
            Some(duration_ms(finished)),
        )
        .await
        {
            Err(err) if storable::is_content_refusal(&err) => refused = err,
            other => return other,
        }
    }
    Err(refused)
}

fn duration_ms(finished: &Finished) -> i64 {
    i64::try_from(finished.duration.as_millis()).unwrap_or(i64::MAX)
}

async fn write_outcome(
    db: &DatabaseConnection,
    id: Uuid,
    attempt: i32,
    finished: &Finished,
) -> Result<Recorded, DbErr> {
    let timeout_message;
    let (state, value, error) = match &finished.outcome {
        Outcome::Success(value) => (status::SUCCESS, Some(value.clone()), None),
        Outcome::Failed(e) => (
            status::FAILED,
            None,
            Some((e.kind.as_str(), e.message.as_str(), e.traceback.as_deref())),
        ),
        // Handled by `finish` before this.
        Outcome::Cancelled => return keep_cancelled_logs(db, id, attempt, finished).await,
        Outcome::Timeout => {
            timeout_message = format!(
                "the execution ran for {:.1} s and was killed at its timeout",
                finished.duration.as_secs_f64()
            );
            (
                status::TIMEOUT,
                None,
                Some(("Timeout", timeout_message.as_str(), None)),
            )
        }
    };
    write(
        db,
        id,
        attempt,
        state,
        value,
        error,
        &finished.logs,
        finished.logs_truncated,
        Some(duration_ms(finished)),
    )
    .await
}

/// A cancelled run: the API already made the row final (`cancelled`);
/// this adds what the child logged and how long it ran, for this attempt
/// only. Content PostgreSQL refuses is escaped; logs it still refuses are
/// dropped rather than retried.
async fn keep_cancelled_logs(
    db: &DatabaseConnection,
    id: Uuid,
    attempt: i32,
    finished: &Finished,
) -> Result<Recorded, DbErr> {
    let logs = storable::text(&finished.logs);
    let kept = execution::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE executions SET logs = $3, logs_truncated = $4, duration_ms = $5
         WHERE id = $1 AND attempt = $2 AND status = 'cancelled'
         RETURNING *",
        [
            id.into(),
            attempt.into(),
            logs.as_ref().into(),
            finished.logs_truncated.into(),
            Some(duration_ms(finished)).into(),
        ],
    ))
    .one(db)
    .await;
    match kept {
        Err(err) if storable::is_content_refusal(&err) => {
            tracing::warn!(execution = %id, %err, "the logs of a cancelled execution could not be stored");
            Ok(None)
        }
        other => other.map(|row| row.map(Box::new)),
    }
}

/// Records a failure that happened before the child ran (e.g. the workflow's
/// file is gone); final like any user-side failure.
pub async fn fail(
    db: &DatabaseConnection,
    id: Uuid,
    attempt: i32,
    kind: &str,
    message: &str,
) -> Result<Recorded, DbErr> {
    write(
        db,
        id,
        attempt,
        status::FAILED,
        None,
        Some((kind, message, None)),
        "",
        false,
        Some(0),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn write(
    db: &DatabaseConnection,
    id: Uuid,
    attempt: i32,
    state: &str,
    value: Option<serde_json::Value>,
    error: Option<(&str, &str, Option<&str>)>,
    logs: &str,
    logs_truncated: bool,
    duration_ms: Option<i64>,
) -> Result<Recorded, DbErr> {
    let (kind, message, traceback) = match error {
        Some((k, m, t)) => (
            Some(storable::text(k).into_owned()),
            Some(storable::text(m).into_owned()),
            t.map(|t| storable::text(t).into_owned()),
        ),
        None => (None, None, None),
    };
    let value = value.map(|mut value| {
        storable::escape_json(&mut value);
        value
    });
    let logs = storable::text(logs);
    let recorded = execution::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        FINISH.as_str(),
        [
            id.into(),
            attempt.into(),
            state.into(),
            value.into(),
            kind.into(),
            message.into(),
            traceback.into(),
            logs.as_ref().into(),
            logs_truncated.into(),
            duration_ms.into(),
        ],
    ))
    .one(db)
    .await?;
    Ok(recorded.map(Box::new))
}

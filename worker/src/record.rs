//! Recording executions in PostgreSQL, exactly once: the worker's thin
//! layer over `runeflow_shared::executions::statements` (the give-up rule,
//! escaping what PostgreSQL refuses, timing).
//!
//! Delivery is at least once, so both updates are conditional: `start` only
//! moves a row that is not final, and `finish` only writes the outcome of
//! the attempt that started it. A duplicate or a late attempt changes
//! nothing.

use chrono::{DateTime, Utc};
use runeflow_shared::entities::execution;
use runeflow_shared::executions::limits::{self, Admitted};
use runeflow_shared::executions::statements::Outcome as Stored;
use runeflow_shared::executions::{RetryPolicy, Status, statements};
use sea_orm::{DatabaseConnection, DbErr};
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
    /// Its workflow's `max_concurrency` is reached: the row waits for a
    /// slot (see `executions::limits`); acknowledge only.
    Waiting,
}

/// Notes why an attempt ended in a worker fault (kept for the `WorkerLost`
/// message if the execution is given up). Best effort: PostgreSQL may be
/// the fault.
pub async fn note_fault(db: &DatabaseConnection, id: Uuid, fault: &str) -> Result<(), DbErr> {
    statements::note_fault(db, id, &storable::text(fault)).await
}

/// Marks an execution running for this attempt.
pub async fn start(
    db: &DatabaseConnection,
    id: Uuid,
    worker: &str,
    max_attempts: i32,
    limit: Option<(&str, i32)>,
) -> Result<Start, DbErr> {
    let started = match limit {
        Some((key, max)) => match limits::start_limited(db, id, worker, key, max).await? {
            Admitted::Started(row) => Some(*row),
            Admitted::Waiting => return Ok(Start::Waiting),
            Admitted::Skip => None,
        },
        None => statements::start(db, id, worker).await?,
    };
    let Some(row) = started else {
        return Ok(Start::Skip);
    };
    // Each try (the first run, then each retry of a user failure) starts
    // once; starts beyond that are redeliveries after worker faults, which
    // have their own bound whatever the retry policy.
    let faults = row.attempt - 1 - row.retry;
    if faults >= max_attempts {
        let mut message = format!(
            "the execution was interrupted {faults} times by worker faults (worker killed or lost); giving up"
        );
        if let Some(fault) = &row.last_fault {
            message.push_str("; the last fault: ");
            message.push_str(fault);
        }
        write(
            db,
            id,
            row.attempt,
            Status::Failed,
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
            Status::Failed,
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
        Outcome::Success(value) => (Status::Success, Some(value.clone()), None),
        Outcome::Failed(e) => (
            Status::Failed,
            None,
            Some((e.kind.as_str(), e.message.as_str(), e.traceback.as_deref())),
        ),
        // Handled by `finish` before this.
        Outcome::Cancelled => return keep_cancelled_logs(db, id, attempt, finished).await,
        Outcome::Timeout => {
            timeout_message = timeout_text(finished);
            (
                Status::Timeout,
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
    let kept = statements::keep_cancelled_logs(
        db,
        id,
        attempt,
        &logs,
        finished.logs_truncated,
        duration_ms(finished),
    )
    .await;
    match kept {
        Err(err) if storable::is_content_refusal(&err) => {
            tracing::warn!(execution = %id, %err, "the logs of a cancelled execution could not be stored");
            Ok(None)
        }
        other => other.map(|row| row.map(Box::new)),
    }
}

/// When this attempt's failure is retried under the policy the execution
/// was queued with; `None`: the outcome is final (success, cancel, no
/// policy, retries used up, or an error type `retry_on` does not name).
pub fn retry_at(row: &execution::Model, finished: &Finished) -> Option<DateTime<Utc>> {
    let kind = match &finished.outcome {
        Outcome::Failed(error) => error.kind.as_str(),
        Outcome::Timeout => "Timeout",
        Outcome::Success(_) | Outcome::Cancelled => return None,
    };
    let policy = RetryPolicy::from_json(row.retry_policy.as_ref())?;
    if !policy.retries(row.retry, kind) {
        return None;
    }
    // 0.75..1.25 from the OS's randomness (as a v4 uuid draws it).
    let draw = (Uuid::new_v4().as_u128() >> 64) as f64 / u64::MAX as f64;
    let delay = policy.delay(row.retry, 0.75 + draw * 0.5);
    Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default())
}

/// Ends this attempt as a failure to retry at `run_at` (see
/// `statements::retry_later`): the row, now `scheduled`, or `None` when
/// another attempt owns it. If PostgreSQL refuses the attempt's content
/// even escaped, the outcome is recorded as final instead (`finish`).
pub async fn retry_later(
    db: &DatabaseConnection,
    id: Uuid,
    attempt: i32,
    finished: &Finished,
    run_at: DateTime<Utc>,
) -> Result<Recorded, DbErr> {
    let timeout_message;
    let (status, kind, message, traceback) = match &finished.outcome {
        Outcome::Failed(e) => (
            Status::Failed,
            e.kind.as_str(),
            e.message.as_str(),
            e.traceback.as_deref(),
        ),
        _ => {
            timeout_message = timeout_text(finished);
            (Status::Timeout, "Timeout", timeout_message.as_str(), None)
        }
    };
    let (kind, message) = (storable::text(kind), storable::text(message));
    let traceback = traceback.map(storable::text);
    let logs = storable::text(&finished.logs);
    let stored = Stored {
        status,
        result: None,
        error: Some((&kind, &message, traceback.as_deref())),
        logs: &logs,
        logs_truncated: finished.logs_truncated,
        duration_ms: Some(duration_ms(finished)),
    };
    match statements::retry_later(db, id, attempt, stored, run_at).await {
        Err(err) if storable::is_content_refusal(&err) => {
            tracing::warn!(execution = %id, %err, "the failed attempt could not be kept for a retry; recording it as final");
            finish(db, id, attempt, finished).await
        }
        other => other.map(|row| row.map(Box::new)),
    }
}

fn timeout_text(finished: &Finished) -> String {
    format!(
        "the execution ran for {:.1} s and was killed at its timeout",
        finished.duration.as_secs_f64()
    )
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
        Status::Failed,
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
    state: Status,
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
    let recorded = statements::finish(
        db,
        id,
        attempt,
        statements::Outcome {
            status: state,
            result: value,
            error: kind
                .as_deref()
                .zip(message.as_deref())
                .map(|(k, m)| (k, m, traceback.as_deref())),
            logs: &logs,
            logs_truncated,
            duration_ms,
        },
    )
    .await?;
    Ok(recorded.map(Box::new))
}

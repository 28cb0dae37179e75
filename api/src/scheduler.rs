//! The scheduler: every [`EVERY`], each API process syncs the decorator
//! schedules, then enqueues the due ticks of every enabled schedule.
//!
//! One execution per tick, however many API processes run this loop: a
//! pass locks the schedule rows it handles (`FOR UPDATE SKIP LOCKED`, so a
//! second process skips them instead of waiting), inserts each tick's
//! execution with its unique `schedule_tick` (`ON CONFLICT DO NOTHING`, the
//! last guard) and moves `last_tick` in the same transaction. Only after
//! the commit are the jobs pushed (through `Enqueue`); a lost push leaves a
//! pending row the reconciler pushes again. Which ticks are due, and how
//! missed ones are caught up, is `runeflow_shared::schedules::ticks`.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use runeflow_shared::executions::statements::NewExecution;
use runeflow_shared::schedule::Schedule;
use runeflow_shared::schedules::{ScheduleRow, due, statements, tick_key};
use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};
use uuid::Uuid;

use crate::queue::EnqueueError;
use crate::state::AppState;

/// How often a pass runs ([`runeflow_shared::schedules::ON_TIME`] is twice this).
pub const EVERY: Duration = Duration::from_millis(500);
/// Most schedules one pass locks (the rest wait for the next pass).
const BATCH: u64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("PostgreSQL failed during a scheduler pass: {0}")]
    Db(#[from] DbErr),
    #[error("Redis unreachable, ticks wait for the next pass: {0}")]
    Redis(String),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Runs passes until `stop` resolves.
pub async fn run(state: AppState, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match pass(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(executions = n, "scheduler enqueued ticks"),
            Err(err) => tracing::warn!(%err, "scheduler pass failed"),
        }
    }
}

/// One pass: sync decorator schedules, enqueue every due tick; returns how
/// many executions it enqueued.
pub async fn pass(state: &AppState) -> Result<usize, SchedulerError> {
    let db = state.db();
    statements::sync_decorator(db).await?;
    // The version is read before any workflow lookup, so the lookups are
    // at least as new as the version the jobs are pinned to.
    let version = state
        .store()
        .version()
        .await
        .map_err(|e| SchedulerError::Redis(e.to_string()))?;
    let now = Utc::now();
    let txn = db.begin().await?;
    let mut inserted = Vec::new();
    for row in statements::lock_enabled(&txn, BATCH).await? {
        inserted.extend(handle(state, &txn, &row, now, version.generation).await?);
    }
    txn.commit().await?;
    for new in &inserted {
        state.enqueue.push_committed(new, version.clone()).await?;
    }
    Ok(inserted.len())
}

/// Inserts the due ticks of one locked schedule and moves its `last_tick`.
async fn handle(
    state: &AppState,
    txn: &DatabaseTransaction,
    row: &ScheduleRow,
    now: chrono::DateTime<Utc>,
    generation: u64,
) -> Result<Vec<NewExecution>, SchedulerError> {
    let schedule = match Schedule::parse(&row.cron, &row.timezone) {
        Ok(schedule) => schedule,
        Err(err) => {
            tracing::warn!(schedule = %row.id, %err, "schedule cannot be parsed; skipped");
            return Ok(Vec::new());
        }
    };
    let due = due(&schedule, row.ticks_after(), now, row.catch_up);
    let Some(handled_up_to) = due.handled_up_to else {
        return Ok(Vec::new());
    };
    let mut inserted = Vec::new();
    if !due.run.is_empty() {
        match target(state, row).await {
            Ok((workflow, parameters)) => {
                let (retry_policy, max_concurrency) =
                    crate::routes::executions::policies(&workflow);
                for tick in &due.run {
                    let new = NewExecution {
                        id: Uuid::now_v7(),
                        workflow_name: workflow.name.clone(),
                        workflow_path: workflow.path.clone(),
                        function_name: workflow.function_name.clone(),
                        parameters: parameters.clone(),
                        workspace_gen: generation,
                        timeout_seconds: workflow.timeout_seconds,
                        run_at: None,
                        retry_policy: retry_policy.clone(),
                        max_concurrency,
                        schedule_tick: Some(tick_key(row.id, *tick)),
                    };
                    if state.enqueue.insert_in(txn, &new).await? {
                        inserted.push(new);
                    }
                }
            }
            // The tick is skipped (not retried every 500 ms): a workflow
            // that is gone or now wants other parameters will not come back
            // by itself, and its next tick tries again.
            Err(err) => tracing::warn!(
                schedule = %row.id, workflow = %row.workflow_name, %err,
                "scheduled tick skipped: its workflow cannot run"
            ),
        }
    }
    statements::advance(txn, row.id, handled_up_to).await?;
    Ok(inserted)
}

/// The workflow a schedule runs, now, and its parameters checked against it.
async fn target(
    state: &AppState,
    row: &ScheduleRow,
) -> crate::error::Result<(
    runeflow_shared::entities::workflow::Model,
    serde_json::Value,
)> {
    let workflow =
        crate::routes::executions::resolve_workflow(state, &row.workflow_reference()).await?;
    let parameters =
        crate::routes::executions::check_parameters(&workflow, row.parameters.clone())?;
    Ok((workflow, parameters))
}

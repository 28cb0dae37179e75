//! Concurrency limits (`@workflow(max_concurrency=N)`): never more than N
//! executions of a workflow running, across all workers.
//!
//! A worker starts a limited execution only under the workflow's advisory
//! lock, after counting the running ones. When the limit is reached the
//! row goes back to `scheduled` with no `run_at` (waiting for a slot) and
//! the job is acknowledged: the execution holds no worker slot and nothing
//! polls for it. Each attempt that ends releases its slot: the oldest
//! waiting execution becomes `pending` and is pushed again (under the same
//! lock, so a start and a release never miss each other). Every API also
//! releases free slots each promotion tick, in case the worker that should
//! have died first.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement,
    TransactionTrait,
};
use uuid::Uuid;

use super::Status::*;
use super::statements;
use super::transitions::Move;
use crate::entities::execution;

pub const WAIT_FOR_SLOT: Move = Move {
    statement: "start_limited",
    from: &[Pending],
    to: &[Scheduled],
};
pub const RELEASE_SLOT: Move = Move {
    statement: "release_slot",
    from: &[Scheduled],
    to: &[Pending],
};

/// The limit's key of a workflow: its identity, `path::function`.
pub fn key(path: &str, function: &str) -> String {
    format!("{path}::{function}")
}

/// What `start_limited` did.
#[derive(Debug)]
pub enum Admitted {
    /// Started as `statements::start` would (this attempt's row).
    Started(Box<execution::Model>),
    /// The limit is reached: the row waits for a slot; acknowledge the job.
    Waiting,
    /// Final or unknown: acknowledge only.
    Skip,
}

/// `statements::start` for an execution limited to `max` running at once.
pub async fn start_limited(
    db: &DatabaseConnection,
    id: Uuid,
    worker: &str,
    key: &str,
    max: i32,
) -> Result<Admitted, DbErr> {
    let txn = db.begin().await?;
    lock(&txn, key).await?;
    let running = count(&txn, key, "status = 'running' AND id <> $2", Some(id)).await?;
    if running >= i64::from(max) {
        let waiting = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "UPDATE executions SET status = 'scheduled', run_at = NULL,
                         requeues = requeues + 1
                     WHERE id = $1 AND status IN ({})",
                    WAIT_FOR_SLOT.from_sql()
                ),
                [id.into()],
            ))
            .await?
            .rows_affected();
        if waiting == 1 {
            txn.commit().await?;
            return Ok(Admitted::Waiting);
        }
        // A redelivery of a running attempt already holds its slot.
    }
    let started = statements::start(&txn, id, worker).await?;
    txn.commit().await?;
    Ok(match started {
        Some(row) => Admitted::Started(Box::new(row)),
        None => Admitted::Skip,
    })
}

/// Gives free slots of `key` to the oldest waiting executions: each becomes
/// `pending` (the caller pushes it). Returns them.
pub async fn release_slots(
    db: &DatabaseConnection,
    key: &str,
) -> Result<Vec<execution::Model>, DbErr> {
    let txn = db.begin().await?;
    lock(&txn, key).await?;
    let mut released = Vec::new();
    // One at a time: each count sees the rows released before it.
    for _ in 0..1000 {
        let row = execution::Model::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "UPDATE executions SET status = 'pending', queued_at = now()
                 WHERE id = (SELECT id FROM executions
                             WHERE concurrency_key = $1 AND status IN ({}) AND run_at IS NULL
                             ORDER BY queued_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
                   AND max_concurrency > (SELECT count(*) FROM executions
                             WHERE concurrency_key = $1 AND status IN ('running', 'pending'))
                 RETURNING executions.*",
                RELEASE_SLOT.from_sql()
            ),
            [key.into()],
        ))
        .one(&txn)
        .await?;
        match row {
            Some(row) => released.push(row),
            None => break,
        }
    }
    txn.commit().await?;
    Ok(released)
}

/// The keys with executions waiting for a slot.
pub async fn waiting_keys(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT DISTINCT concurrency_key FROM executions
             WHERE concurrency_key IS NOT NULL AND status = 'scheduled' AND run_at IS NULL",
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String>("", "concurrency_key"))
        .collect()
}

/// Serializes starts and releases of one workflow (until commit).
async fn lock(txn: &impl ConnectionTrait, key: &str) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtext('runeflow-limit:' || $1))",
        [key.into()],
    ))
    .await?;
    Ok(())
}

async fn count(
    txn: &impl ConnectionTrait,
    key: &str,
    condition: &str,
    id: Option<Uuid>,
) -> Result<i64, DbErr> {
    let mut values = vec![key.into()];
    if let Some(id) = id {
        values.push(id.into());
    }
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT count(*) AS n FROM executions WHERE concurrency_key = $1 AND {condition}"
            ),
            values,
        ))
        .await?;
    row.map_or(Ok(0), |row| row.try_get::<i64>("", "n"))
}

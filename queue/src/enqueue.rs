//! The one way an execution enters the system: insert its `pending` row,
//! push its job, wake a worker, and make the row durable before the caller
//! promises anything. REST create uses it; so does the reconciler's
//! re-push of rows whose job may be lost, and the scheduler (`insert_in`
//! within its transaction, then `push_committed`); later endpoints and
//! retries.

use std::future::Future;

use runeflow_shared::durability::flush_wal;
use runeflow_shared::entities::execution;
use runeflow_shared::executions::idempotency;
use runeflow_shared::executions::statements::{self, NewExecution};
use runeflow_shared::executions::{Status, limits};
use runeflow_shared::jobs::{RunDetails, RunWorkflow};
use runeflow_shared::store::StoreVersion;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

use crate::push::{JobQueue, QueueError};

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("PostgreSQL could not write the execution: {0}")]
    Insert(#[source] DbErr),
    #[error("PostgreSQL could not make the execution durable: {0}")]
    Flush(#[source] DbErr),
}

/// An `Idempotency-Key` presented with a new execution.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyClaim<'a> {
    /// `executions` or `endpoint:<name>`.
    pub scope: &'a str,
    pub key: &'a str,
    /// [`idempotency::request_hash`] of the request.
    pub request_hash: &'a str,
}

/// What [`Enqueue::submit_once`] did.
#[derive(Debug)]
pub enum Submitted<T> {
    /// The key was free: the execution was inserted and pushed.
    New(T),
    /// A live key row already names an execution (possibly for another body).
    Existing(idempotency::Recorded),
}

/// Inserts and pushes executions (cheap to clone).
#[derive(Clone)]
pub struct Enqueue {
    db: DatabaseConnection,
    queue: JobQueue,
}

impl Enqueue {
    pub fn new(db: DatabaseConnection, queue: JobQueue) -> Self {
        Enqueue { db, queue }
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Inserts `new` (`pending`, or `scheduled` with a `run_at` ahead) and
    /// pushes a pending one's job pinned to `workspace`, then runs
    /// `meanwhile` (e.g. waiting for the outcome). The insert commits
    /// without waiting for the disk; the WAL flush runs alongside the push
    /// and `meanwhile`, and this returns only after both, so the execution
    /// is durable before the caller answers. A failed push is logged: the
    /// row stays pending and the reconciler pushes it again. A scheduled
    /// row is pushed by [`Enqueue::promote_due`] when its time comes.
    pub async fn submit<T>(
        &self,
        new: &NewExecution,
        workspace: StoreVersion,
        meanwhile: impl Future<Output = T>,
    ) -> Result<(Status, T), EnqueueError> {
        let status = statements::insert(&self.db, new)
            .await
            .map_err(EnqueueError::Insert)?
            .ok_or_else(|| not_inserted(new))?;
        self.push_and_flush(new, status, workspace, meanwhile).await
    }

    /// Inserts `new` inside the caller's transaction `txn` (the
    /// scheduler's, which holds the schedule row): false when its
    /// `schedule_tick` was already enqueued. Once `txn` commits, the caller
    /// hands each inserted row to [`Enqueue::push_committed`].
    pub async fn insert_in(
        &self,
        txn: &impl ConnectionTrait,
        new: &NewExecution,
    ) -> Result<bool, EnqueueError> {
        statements::insert(txn, new)
            .await
            .map(|inserted| inserted.is_some())
            .map_err(EnqueueError::Insert)
    }

    /// Pushes the job of a row [`Enqueue::insert_in`] inserted (after its
    /// transaction committed) and makes it durable. A failed push is logged:
    /// the reconciler pushes the pending row again.
    pub async fn push_committed(
        &self,
        new: &NewExecution,
        workspace: StoreVersion,
    ) -> Result<(), EnqueueError> {
        self.push_and_flush(new, new.initial_status(), workspace, async {})
            .await
            .map(|_| ())
    }

    /// [`Enqueue::submit`] under an idempotency key: the execution row and
    /// the key row are inserted in one transaction, so of two requests
    /// racing with one key exactly one inserts its execution. The other
    /// waits on the key's primary key until the first commits, rolls back
    /// its own row and gets the winner's (`Existing`); nothing is pushed
    /// for it and `meanwhile` is not run.
    pub async fn submit_once<T>(
        &self,
        new: &NewExecution,
        workspace: StoreVersion,
        claim: IdempotencyClaim<'_>,
        meanwhile: impl Future<Output = T>,
    ) -> Result<Submitted<(Status, T)>, EnqueueError> {
        // A row can vanish between the failed claim and the read (purged
        // past its window): then the key is free again, so try once more.
        for _ in 0..3 {
            let txn = self.db.begin().await.map_err(EnqueueError::Insert)?;
            let status = statements::insert(&txn, new)
                .await
                .map_err(EnqueueError::Insert)?
                .ok_or_else(|| not_inserted(new))?;
            let took = idempotency::claim(&txn, claim.scope, claim.key, claim.request_hash, new.id)
                .await
                .map_err(EnqueueError::Insert)?;
            if took {
                txn.commit().await.map_err(EnqueueError::Insert)?;
                return Ok(Submitted::New(
                    self.push_and_flush(new, status, workspace, meanwhile)
                        .await?,
                ));
            }
            txn.rollback().await.map_err(EnqueueError::Insert)?;
            if let Some(found) = idempotency::find(&self.db, claim.scope, claim.key)
                .await
                .map_err(EnqueueError::Insert)?
            {
                return Ok(Submitted::Existing(found));
            }
        }
        Err(EnqueueError::Insert(DbErr::Custom(format!(
            "idempotency key in scope '{}' kept changing hands",
            claim.scope
        ))))
    }

    /// Pushes the committed row's job (a pending one's) ∥ flushes the WAL,
    /// then runs `meanwhile` after the push.
    async fn push_and_flush<T>(
        &self,
        new: &NewExecution,
        status: Status,
        workspace: StoreVersion,
        meanwhile: impl Future<Output = T>,
    ) -> Result<(Status, T), EnqueueError> {
        let job = RunWorkflow {
            execution_id: new.id,
            workspace,
            run: RunDetails {
                path: new.workflow_path.clone(),
                function: new.function_name.clone(),
                parameters: new.parameters.clone(),
                timeout_seconds: new.timeout_seconds,
                max_concurrency: new.max_concurrency,
            },
        };
        let push_then = async {
            if status == Status::Pending
                && let Err(err) = self.queue.push(&job, 0).await
            {
                tracing::warn!(id = %new.id, %err, "enqueue failed after the row was committed");
            }
            meanwhile.await
        };
        let (flushed, out) = tokio::join!(flush_wal(&self.db), push_then);
        flushed.map_err(EnqueueError::Flush)?;
        Ok((status, out))
    }

    /// Pushes the job of an existing row again (a no-op while its job is
    /// still queued: the execution id and retry are its idempotency key).
    /// The version it was queued at is unknown here; the current one is at
    /// least as new, which is all read-your-writes needs.
    pub async fn repush(&self, row: &execution::Model) -> Result<(), QueueError> {
        let job = RunWorkflow {
            execution_id: row.id,
            workspace: StoreVersion::default(),
            run: RunDetails::of(row),
        };
        self.queue.push(&job, row.requeues).await
    }

    /// Gives the free concurrency slots to waiting executions and pushes
    /// them (the safety net of the worker's release; see
    /// `executions::limits`); returns how many.
    pub async fn release_slots(&self) -> Result<usize, EnqueueError> {
        let keys = limits::waiting_keys(&self.db)
            .await
            .map_err(EnqueueError::Insert)?;
        let mut released = 0;
        for key in keys {
            let rows = limits::release_slots(&self.db, &key)
                .await
                .map_err(EnqueueError::Insert)?;
            released += self.push_rows(&rows).await?;
        }
        Ok(released)
    }

    /// Makes `rows` (just moved to `pending`) durable and pushes them.
    pub async fn push_rows(&self, rows: &[execution::Model]) -> Result<usize, EnqueueError> {
        if rows.is_empty() {
            return Ok(0);
        }
        flush_wal(&self.db).await.map_err(EnqueueError::Flush)?;
        for row in rows {
            if let Err(err) = self.repush(row).await {
                tracing::warn!(id = %row.id, %err, "push of a due execution failed; the reconciler retries");
            }
        }
        Ok(rows.len())
    }

    /// Moves the `scheduled` executions whose time came to `pending` and
    /// pushes them; returns how many. Safe from every API process at once:
    /// each row is promoted by one of them. A push that fails leaves the row
    /// pending for the reconciler.
    pub async fn promote_due(&self) -> Result<usize, EnqueueError> {
        let rows = statements::promote_due(&self.db, 500)
            .await
            .map_err(EnqueueError::Insert)?;
        self.push_rows(&rows).await
    }
}

/// Only a `schedule_tick` can keep an insert from happening, and only the
/// scheduler (through `insert_in`) sets one.
fn not_inserted(new: &NewExecution) -> EnqueueError {
    EnqueueError::Insert(DbErr::Custom(format!(
        "execution {} was not inserted: its schedule tick was enqueued already",
        new.id
    )))
}

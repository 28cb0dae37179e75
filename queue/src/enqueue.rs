//! The one way an execution enters the system: insert its `pending` row,
//! push its job, wake a worker, and make the row durable before the caller
//! promises anything. REST create uses it; so does the reconciler's
//! re-push of rows whose job may be lost, and the scheduler (`insert_in`
//! within its transaction, then `push_committed`); later endpoints and
//! retries.

use std::future::Future;

use runeflow_shared::durability::flush_wal;
use runeflow_shared::entities::execution;
use runeflow_shared::executions::statements::{self, NewExecution};
use runeflow_shared::jobs::{RunDetails, RunWorkflow};
use runeflow_shared::store::StoreVersion;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::push::{JobQueue, QueueError};

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("PostgreSQL could not insert the execution: {0}")]
    Insert(#[source] DbErr),
    #[error("PostgreSQL could not make the execution durable: {0}")]
    Flush(#[source] DbErr),
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

    /// Inserts `new` as `pending` and pushes its job pinned to `workspace`,
    /// then runs `meanwhile` (e.g. waiting for the outcome). The insert
    /// commits without waiting for the disk; the WAL flush runs alongside
    /// the push and `meanwhile`, and this returns only after both, so the
    /// execution is durable before the caller answers. A failed push is
    /// logged: the row stays pending and the reconciler pushes it again.
    pub async fn submit<T>(
        &self,
        new: &NewExecution,
        workspace: StoreVersion,
        meanwhile: impl Future<Output = T>,
    ) -> Result<T, EnqueueError> {
        statements::insert_pending(&self.db, new)
            .await
            .map_err(EnqueueError::Insert)?;
        self.push_then(new, workspace, meanwhile).await
    }

    /// Inserts `new` as `pending` inside the caller's transaction `txn`
    /// (the scheduler's, which holds the schedule row): false when its
    /// `schedule_tick` was already enqueued. Once `txn` commits, the caller
    /// hands each inserted row to [`Enqueue::push_committed`].
    pub async fn insert_in(
        &self,
        txn: &impl ConnectionTrait,
        new: &NewExecution,
    ) -> Result<bool, EnqueueError> {
        statements::insert_pending(txn, new)
            .await
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
        self.push_then(new, workspace, async {}).await
    }

    /// Push ∥ flush, then `meanwhile`'s output.
    async fn push_then<T>(
        &self,
        new: &NewExecution,
        workspace: StoreVersion,
        meanwhile: impl Future<Output = T>,
    ) -> Result<T, EnqueueError> {
        let job = RunWorkflow {
            execution_id: new.id,
            workspace,
            run: RunDetails {
                path: new.workflow_path.clone(),
                function: new.function_name.clone(),
                parameters: new.parameters.clone(),
                timeout_seconds: new.timeout_seconds,
            },
        };
        let push_then = async {
            if let Err(err) = self.queue.push(&job).await {
                tracing::warn!(id = %new.id, %err, "enqueue failed after the row was committed");
            }
            meanwhile.await
        };
        let (flushed, out) = tokio::join!(flush_wal(&self.db), push_then);
        flushed.map_err(EnqueueError::Flush)?;
        Ok(out)
    }

    /// Pushes the job of an existing row again (a no-op while its job is
    /// still queued: the execution id is its idempotency key). The version
    /// it was queued at is unknown here; the current one is at least as
    /// new, which is all read-your-writes needs.
    pub async fn repush(&self, row: &execution::Model) -> Result<(), QueueError> {
        let job = RunWorkflow {
            execution_id: row.id,
            workspace: StoreVersion::default(),
            run: RunDetails::of(row),
        };
        self.queue.push(&job).await
    }
}

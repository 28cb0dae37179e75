//! Pushing `RunWorkflow` jobs to apalis on Redis, and waking a worker.

use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use runeflow_shared::jobs::{RunWorkflow, wake_channel};

#[derive(Debug, thiserror::Error)]
#[error("queue (Redis): {0}")]
pub struct QueueError(String);

/// The executions queue (cheap to clone).
#[derive(Clone)]
pub struct JobQueue {
    storage: RedisStorage<RunWorkflow>,
    conn: ConnectionManager,
    wake_channel: String,
}

impl JobQueue {
    /// Uses `conn` (our connection, with our timeouts) and the deployment's
    /// queue name.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        JobQueue {
            storage: RedisStorage::new(conn.clone()).with_config(crate::config::config(prefix)),
            conn,
            wake_channel: wake_channel(prefix),
        }
    }

    /// Pushes a job whose task id and idempotency key are the execution id,
    /// so pushing the same execution twice runs it once.
    pub async fn push(&self, job: &RunWorkflow) -> Result<(), QueueError> {
        let id = job.execution_id.to_string();
        let task = TaskBuilder::new(job.clone())
            .task_id(TaskId::from_string(id.clone()))
            .idempotency_key(&id)
            .build();
        let mut storage = self.storage.clone();
        storage
            .push_task(task)
            .await
            .map_err(|e| QueueError(e.to_string()))?;
        // Wake an idle worker now rather than at its next poll.
        let mut conn = self.conn.clone();
        let woken: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.wake_channel)
            .arg(&id)
            .query_async(&mut conn)
            .await;
        if let Err(err) = woken {
            tracing::warn!(%err, "could not wake workers; they will poll");
        }
        Ok(())
    }
}

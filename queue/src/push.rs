//! Pushing `RunWorkflow` jobs to apalis on Redis, and waking a worker.

use apalis::prelude::{TaskBuilder, TaskId, TaskSink};
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;
use runeflow_shared::jobs::{RunWorkflow, cancel_channel, finished_channel, wake_channel};

#[derive(Debug, thiserror::Error)]
#[error("queue (Redis): {0}")]
pub struct QueueError(String);

/// The queue key of an execution's push: its id, then `<id>-r<n>` after it
/// went back to the queue n times (a retry, a wait for a concurrency
/// slot); a key stays deduplicated for days (`config::IDEMPOTENCY_TTL`).
pub fn job_key(id: uuid::Uuid, requeues: i32) -> String {
    if requeues <= 0 {
        id.to_string()
    } else {
        format!("{id}-r{requeues}")
    }
}

/// The executions queue (cheap to clone).
#[derive(Clone)]
pub struct JobQueue {
    storage: RedisStorage<RunWorkflow>,
    conn: ConnectionManager,
    wake_channel: String,
    cancel_channel: String,
    finished_channel: String,
}

impl JobQueue {
    /// Uses `conn` (our connection, with our timeouts) and the deployment's
    /// queue name.
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        JobQueue {
            storage: RedisStorage::new(conn.clone()).with_config(crate::config::config(prefix)),
            conn,
            wake_channel: wake_channel(prefix),
            cancel_channel: cancel_channel(prefix),
            finished_channel: finished_channel(prefix),
        }
    }

    /// Pushes a job whose task id and idempotency key are [`job_key`], so
    /// pushing the same execution twice runs it once, and each requeue (a
    /// retry, a freed concurrency slot) is a job of its own.
    pub async fn push(&self, job: &RunWorkflow, requeues: i32) -> Result<(), QueueError> {
        let id = job_key(job.execution_id, requeues);
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

    /// Tells the workers to kill the child of a cancelled execution and the
    /// `wait`ing requests that it is final (`notice`: see
    /// `finished_notice`). Best effort: workers also recheck their running
    /// executions against PostgreSQL every second, and waiters every
    /// `wait` period.
    pub async fn announce_cancel(&self, id: &str, notice: String) {
        let mut conn = self.conn.clone();
        let sent: redis::RedisResult<(i64, i64)> = redis::pipe()
            .cmd("PUBLISH")
            .arg(&self.cancel_channel)
            .arg(id)
            .cmd("PUBLISH")
            .arg(&self.finished_channel)
            .arg(notice)
            .query_async(&mut conn)
            .await;
        if let Err(err) = sent {
            tracing::warn!(%err, execution = id, "could not announce a cancel; workers find it within a second");
        }
    }
}

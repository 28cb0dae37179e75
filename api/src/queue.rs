//! The executions queue (in `runeflow-queue`, shared with the worker).

pub use runeflow_queue::config::IDEMPOTENCY_TTL;
pub use runeflow_queue::{
    Cancelled, Enqueue, EnqueueError, IdempotencyClaim, JobQueue, QueueError, Submitted,
};

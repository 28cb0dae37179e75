//! The executions queue, in one place for the API and the worker: the one
//! apalis-redis configuration ([`config`]), the push of `RunWorkflow` jobs
//! ([`JobQueue`]) and the [`Enqueue`] service (insert the row, flush, push,
//! wake; and cancel). `shared` knows nothing of apalis; this crate does, and knows
//! nothing of axum or the worker's internals.

mod cancel;
pub mod config;
mod enqueue;
mod push;

pub use cancel::Cancelled;
pub use enqueue::{Enqueue, EnqueueError, IdempotencyClaim, Submitted};
pub use push::{JobQueue, QueueError, job_key};

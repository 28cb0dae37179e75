//! The execution state machine, in one place: the [`Status`] values, the
//! legal [`transitions`] between them and every statement on `executions`
//! ([`statements`]). Nothing else writes the table, so a new feature adds
//! its transition here (and to the table in ARCHITECTURE.md) or not at all.

pub mod idempotency;
pub mod limits;
mod retry;
pub mod statements;
mod status;
pub mod transitions;

pub use retry::{DEFAULT_BACKOFF_SECONDS, MAX_BACKOFF, RetryPolicy};
pub use status::{Status, UnknownStatus};

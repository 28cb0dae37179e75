//! Starting `scheduled` executions when their time comes (delayed runs and
//! the backoff of retries): every [`EVERY`], the due rows become `pending`
//! and their jobs are pushed; so do executions waiting for a concurrency
//! slot that is free (normally the worker that freed it releases it). Every API process runs this; each row is
//! promoted by exactly one of them (see `statements::promote_due`).

use std::future::Future;
use std::time::Duration;

use crate::queue::Enqueue;

/// How often to look: the most a due execution waits past its `run_at`.
pub const EVERY: Duration = Duration::from_millis(500);

/// Runs until `stop` resolves.
pub async fn run(enqueue: Enqueue, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match enqueue.promote_due().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(executions = n, "due executions queued"),
            Err(err) => tracing::warn!(%err, "queueing due executions failed"),
        }
        match enqueue.release_slots().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                executions = n,
                "free concurrency slots given to waiting executions"
            ),
            Err(err) => tracing::warn!(%err, "releasing concurrency slots failed"),
        }
    }
}

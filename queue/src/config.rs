//! The apalis-redis configuration of the executions queue. Every part
//! (API push, worker consumer, janitor, tests) builds it here, so the queue
//! name and the idempotency window cannot differ between them.

use std::time::Duration;

use apalis_redis::Config;
use runeflow_shared::jobs::queue_name;

/// How long a pushed execution id stays deduplicated: a re-push of the same
/// execution within this window is a no-op (apalis's default expires the
/// key at once).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The queue of a deployment's `prefix`, as a pusher sees it.
pub fn config(prefix: &str) -> Config {
    Config::default()
        .queue(queue_name(prefix))
        .idempotency_ttl(Some(IDEMPOTENCY_TTL))
}

/// A consumer's timings (from the worker's settings).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerTimings {
    /// Jobs fetched at once: no more than the worker's concurrency.
    pub batch_size: usize,
    pub heartbeat: Duration,
    /// Heartbeats missed before another worker reclaims the jobs.
    pub missed_heartbeats: usize,
}

/// The queue as a worker consumes it: [`config`] with the worker's fetch
/// batch, heartbeat and orphan reclaim (each at least its minimum).
pub fn consumer(prefix: &str, timings: ConsumerTimings) -> Config {
    config(prefix)
        .batch_size(timings.batch_size.max(1))
        .heartbeat_interval(timings.heartbeat.max(Duration::from_millis(100)))
        .missed_heartbeats(timings.missed_heartbeats.max(1))
}

//! Draining on shutdown without handing running executions to another
//! worker.
//!
//! apalis 1.0 stops a worker's heartbeat the moment the worker is told to
//! stop: its consumer loop only heartbeats while it may fetch. Another
//! worker then finds the stopping one silent for `missed_heartbeats`
//! periods and re-queues every job in its in-flight set: attempt 2 started
//! ~5 s after `docker stop` while attempt 1 still ran, and attempt 1's
//! outcome was refused. So while a stopping worker still runs executions,
//! this module keeps its names' heartbeats in Redis itself (the same
//! `workers` sorted-set score apalis writes), until the runs end or the
//! drain deadline passes. At the deadline the process exits, its children
//! die with it, and the jobs are re-queued by the usual orphan reclaim: run
//! again once, never concurrently.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::running::Running;

/// How often the drain looks at the running executions.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Names this process has registered with apalis (one per consumer loop:
/// a loop restarted after a Redis failure gets a new name, and the runs it
/// started keep going under the old one).
#[derive(Clone, Default)]
pub struct WorkerNames(Arc<Mutex<Vec<String>>>);

impl WorkerNames {
    pub fn push(&self, name: String) {
        if let Ok(mut names) = self.0.lock() {
            names.push(name);
        }
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every running execution ended.
    AllDone,
    /// The deadline passed with this many executions still running.
    DeadlinePassed { running: usize },
}

/// What the heartbeat is written to.
pub struct Heartbeat {
    pub conn: ConnectionManager,
    /// apalis's `workers` sorted set of the queue.
    pub workers_set: String,
    pub names: WorkerNames,
    pub every: Duration,
}

/// Waits until `running` is empty or `deadline` passes, refreshing the
/// heartbeat of this process's worker names every `heartbeat.every` in the
/// meantime. A name another worker already reclaimed is not re-added
/// (`ZADD XX`); Redis errors are logged and ignored (with Redis gone there
/// is nobody to reclaim the jobs anyway).
pub async fn hold_until_done(
    running: &Running,
    mut heartbeat: Heartbeat,
    deadline: Instant,
) -> Drained {
    let mut next_beat = Instant::now();
    loop {
        if running.is_empty() {
            return Drained::AllDone;
        }
        let now = Instant::now();
        if now >= deadline {
            return Drained::DeadlinePassed {
                running: running.len(),
            };
        }
        if now >= next_beat {
            beat(&mut heartbeat).await;
            next_beat = Instant::now() + heartbeat.every;
        }
        tokio::time::sleep(CHECK_EVERY.min(deadline.saturating_duration_since(now))).await;
    }
}

async fn beat(heartbeat: &mut Heartbeat) {
    let names = heartbeat.names.all();
    if names.is_empty() {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut pipe = redis::pipe();
    for name in &names {
        pipe.cmd("ZADD")
            .arg(&heartbeat.workers_set)
            .arg("XX")
            .arg(now)
            .arg(name)
            .ignore();
    }
    let sent =
        tokio::time::timeout(heartbeat.every, pipe.query_async::<()>(&mut heartbeat.conn)).await;
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%err, "drain heartbeat failed"),
        Err(_) => tracing::warn!("drain heartbeat timed out"),
    }
}

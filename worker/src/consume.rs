//! The queue consumer: one apalis worker loop at a time, restarted with
//! backoff when it fails (Redis restarted or unreachable), stopped when the
//! process starts draining.
//!
//! A loop that fails drops its in-flight handler futures, but not the runs
//! (see `running.rs`); the next loop registers under a new name
//! (`<name>-r<N>`), since apalis refuses a name still registered.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{
    BackendExt, Event, EventListenerExt, WorkerBuilder, WorkerBuilderExt, WorkerError,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::drain::WorkerNames;
use crate::health::Liveness;
use crate::job::{JobContext, handle};
use crate::wake::{Queue, WakeUps};

/// First and longest wait before restarting a failed loop.
const FIRST_RESTART: Duration = Duration::from_millis(200);
const MAX_RESTART: Duration = Duration::from_secs(5);
/// A loop that ran this long was healthy: the next failure starts the
/// backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Where the process is in its life; the consumer runs while `Consuming`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Consuming,
    /// Shutdown asked: fetch nothing more; running executions go on.
    Draining,
}

/// What a consumer loop is built from.
pub struct Consumer {
    pub base_name: String,
    pub storage: Queue,
    pub poll: Duration,
    pub wakeups: WakeUps,
    pub concurrency: usize,
    pub ctx: Arc<JobContext>,
    pub liveness: Liveness,
    pub names: WorkerNames,
}

impl Consumer {
    /// Runs loops until the phase leaves `Consuming`. Returns once the last
    /// loop has stopped: after its handlers ended (they wait for their
    /// runs), or at once when no loop was running.
    pub async fn run(self, mut phase: watch::Receiver<Phase>) {
        let mut backoff = Backoff::new(FIRST_RESTART, MAX_RESTART);
        for run in 0usize.. {
            if *phase.borrow() != Phase::Consuming {
                return;
            }
            let name = if run == 0 {
                self.base_name.clone()
            } else {
                format!("{}-r{run}", self.base_name)
            };
            self.names.push(name.clone());
            let started = Instant::now();
            let result = self.run_loop(&name, phase.clone()).await;
            let Err(err) = result else {
                return; // stopped for the drain
            };
            if *phase.borrow() != Phase::Consuming {
                return;
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            tracing::warn!(worker = %name, %err, ?delay, "worker loop failed; restarting it");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = phase.wait_for(|p| *p != Phase::Consuming) => return,
            }
        }
    }

    /// One apalis worker loop under `name`, stopped when draining starts.
    async fn run_loop(&self, name: &str, phase: watch::Receiver<Phase>) -> Result<(), WorkerError> {
        let liveness = self.liveness.clone();
        let worker = WorkerBuilder::new(name)
            .backend(
                self.storage
                    .clone()
                    .poll_with_interval(self.poll)
                    .poll_with_stream(self.wakeups.stream()),
            )
            .concurrency(self.concurrency)
            .data(self.ctx.clone())
            .on_event(move |_, event| {
                if matches!(event, Event::HeartBeat) {
                    liveness.beat();
                }
            })
            .build(handle);
        worker
            .run_with_ctx(move |worker| {
                let mut phase = phase.clone();
                async move {
                    let _ = phase.wait_for(|p| *p != Phase::Consuming).await;
                    // Stops fetching (and apalis's heartbeat: the drain
                    // keeps that up while runs remain). A loop not started
                    // yet refuses; it starts at its first poll.
                    while worker.stop().is_err() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Ok(())
                }
            })
            .await
    }
}

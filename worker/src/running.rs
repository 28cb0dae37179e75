//! Executions running in this worker process, by id, detached from the
//! apalis handler that started them, each with its cancel switch.
//!
//! A Redis error stops the apalis worker loop, which drops its in-flight
//! handler futures; the monitor then starts a new loop and the job comes
//! back (reclaimed as an orphan). If the handler owned the run, the child
//! would be killed and the workflow started again. So each run is a task of
//! its own: a handler only waits for it, and a redelivered job whose
//! execution still runs here joins that run instead of starting another.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::watch;
use uuid::Uuid;

/// What a run ended with: `Err` is a worker fault to retry.
pub type RunResult = Result<(), String>;

type RunFuture = Shared<BoxFuture<'static, RunResult>>;

struct Entry {
    run: RunFuture,
    cancel: watch::Sender<bool>,
}

/// The runs in flight (cheap to share).
#[derive(Clone, Default)]
pub struct Running {
    runs: Arc<Mutex<HashMap<Uuid, Entry>>>,
}

/// Resolves once the run it was handed to is cancelled (see
/// [`Running::cancel`]); pends for good otherwise.
pub struct CancelSignal(watch::Receiver<bool>);

impl CancelSignal {
    /// Whether the cancel already came.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the run is cancelled.
    pub async fn cancelled(&mut self) {
        if self.0.wait_for(|cancelled| *cancelled).await.is_err() {
            // The table dropped the switch: the run is over, nothing to cancel.
            std::future::pending::<()>().await;
        }
    }
}

impl Running {
    /// Waits for the run of `id`: the one already in flight, or a new task
    /// made from `start`, which gets the run's cancel signal. The run goes
    /// on if this future is dropped.
    pub async fn join_or_start<F>(
        &self,
        id: Uuid,
        start: impl FnOnce(CancelSignal) -> F,
    ) -> RunResult
    where
        F: Future<Output = RunResult> + Send + 'static,
    {
        let run = {
            let Ok(mut runs) = self.runs.lock() else {
                return Err("the table of running executions is poisoned".to_owned());
            };
            match runs.get(&id) {
                Some(entry) => entry.run.clone(),
                None => {
                    let (cancel, signal) = watch::channel(false);
                    let work = start(CancelSignal(signal));
                    let table = self.runs.clone();
                    let task = tokio::spawn(async move {
                        let result = work.await;
                        if let Ok(mut runs) = table.lock() {
                            runs.remove(&id);
                        }
                        result
                    });
                    let run = async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("the execution task failed: {e}")))
                    }
                    .boxed()
                    .shared();
                    runs.insert(
                        id,
                        Entry {
                            run: run.clone(),
                            cancel,
                        },
                    );
                    run
                }
            }
        };
        run.await
    }

    /// Cancels the run of `id` if it runs here; true when it did.
    pub fn cancel(&self, id: Uuid) -> bool {
        let Ok(runs) = self.runs.lock() else {
            return false;
        };
        match runs.get(&id) {
            Some(entry) => {
                entry.cancel.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// The ids of the runs in flight.
    pub fn ids(&self) -> Vec<Uuid> {
        self.runs
            .lock()
            .map(|runs| runs.keys().copied().collect())
            .unwrap_or_default()
    }

    /// How many runs are in flight.
    pub fn len(&self) -> usize {
        self.runs.lock().map_or(0, |runs| runs.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_second_delivery_joins_the_run_and_a_dropped_waiter_does_not_stop_it() {
        let running = Running::default();
        let started = Arc::new(AtomicUsize::new(0));
        let id = Uuid::now_v7();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let start = |started: Arc<AtomicUsize>, wait| {
            move |_cancel| async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = wait.await;
                Ok(())
            }
        };
        // The first waiter is dropped (as apalis drops a handler).
        let first = running.join_or_start(id, start(started.clone(), wait));
        let _ = tokio::time::timeout(Duration::from_millis(50), first).await;
        assert_eq!(running.len(), 1, "the run goes on without its waiter");
        let (_unused, never) = tokio::sync::oneshot::channel::<()>();
        let second = running.join_or_start(id, start(started.clone(), never));
        release.send(()).unwrap();
        assert_eq!(second.await, Ok(()));
        assert_eq!(started.load(Ordering::SeqCst), 1, "started once");
        assert!(running.is_empty());
    }

    #[tokio::test]
    async fn a_cancel_reaches_the_run_of_that_id_only() {
        let running = Running::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let run = |mut cancel: CancelSignal| async move {
            match tokio::time::timeout(Duration::from_secs(5), cancel.cancelled()).await {
                Ok(()) => Err("cancelled".to_owned()),
                Err(_) => Ok(()),
            }
        };
        let first = tokio::spawn({
            let running = running.clone();
            async move { running.join_or_start(a, run).await }
        });
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let second = tokio::spawn({
            let running = running.clone();
            async move {
                running
                    .join_or_start(b, move |cancel: CancelSignal| async move {
                        let _ = wait.await;
                        assert!(!cancel.is_cancelled());
                        Ok(())
                    })
                    .await
            }
        });
        while running.len() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(running.cancel(a));
        assert_eq!(first.await.unwrap(), Err("cancelled".to_owned()));
        release.send(()).unwrap();
        assert_eq!(second.await.unwrap(), Ok(()));
        assert!(!running.cancel(a), "a finished run is not cancelled again");
    }
}

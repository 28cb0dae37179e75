//! Executions running in this worker process, by id, detached from the
//! apalis handler that started them.
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
use uuid::Uuid;

/// What a run ended with: `Err` is a worker fault to retry.
pub type RunResult = Result<(), String>;

type RunFuture = Shared<BoxFuture<'static, RunResult>>;

/// The runs in flight (cheap to share).
#[derive(Clone, Default)]
pub struct Running {
    runs: Arc<Mutex<HashMap<Uuid, RunFuture>>>,
}

impl Running {
    /// Waits for the run of `id`: the one already in flight, or a new task
    /// made from `start`. The run goes on if this future is dropped.
    pub async fn join_or_start<F>(&self, id: Uuid, start: impl FnOnce() -> F) -> RunResult
    where
        F: Future<Output = RunResult> + Send + 'static,
    {
        let run = {
            let Ok(mut runs) = self.runs.lock() else {
                return Err("the table of running executions is poisoned".to_owned());
            };
            match runs.get(&id) {
                Some(run) => run.clone(),
                None => {
                    let work = start();
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
                    runs.insert(id, run.clone());
                    run
                }
            }
        };
        run.await
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
            move || async move {
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
}

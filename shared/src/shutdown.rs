//! One stop handle for a process and the tasks it runs: trigger it once and
//! every `stopped()` future resolves, whenever it was made (before or after
//! the trigger). It replaces a watch channel plus a "wait for true" closure
//! in each long-running command.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks everything holding this handle to stop (idempotent).
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once [`Shutdown::trigger`] was called; owns what it needs,
    /// so it can go to a task of its own.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.tx.subscribe();
        async move {
            // An error means every sender is gone: nothing can trigger any
            // more, and nothing holds the handle to wait for; stop too.
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }

    /// Triggers this handle when `signal` resolves (e.g. SIGTERM); the
    /// task ends with it.
    pub fn trigger_on(
        &self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            signal.await;
            this.trigger();
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn every_waiter_made_before_or_after_the_trigger_stops() {
        let shutdown = Shutdown::new();
        let before = tokio::spawn(shutdown.clone().stopped());
        assert!(!shutdown.is_triggered());
        let pending = tokio::time::timeout(Duration::from_millis(20), shutdown.stopped()).await;
        assert!(pending.is_err(), "stopped before the trigger");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = shutdown.trigger_on(async move {
            let _ = rx.await;
        });
        tx.send(()).unwrap();
        signal.await.unwrap();
        assert!(shutdown.is_triggered());
        before.await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), shutdown.stopped())
            .await
            .expect("a waiter made after the trigger resolves at once");
        shutdown.trigger(); // idempotent
    }
}

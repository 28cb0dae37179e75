//! Publishing committed changes to the module store, with repair.
//!
//! PostgreSQL has already committed when we publish, so a Redis failure must
//! not fail the request: the paths are remembered and a repair loop
//! re-publishes their current PostgreSQL state until Redis takes it. That
//! memory dies with the process, so the same loop also [`reconcile`]s by
//! revision at start-up and every [`RECONCILE_EVERY`]: a write committed by
//! a process that died before publishing it is published by the next API
//! to start, or by any API still running.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{SyncError, find_rows, mutation_for, reconcile};
use crate::store::{ModuleStore, Mutation, StoreVersion};

/// How often the repair loop compares every row's revision with the store.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(60);

/// First and last pause between failed repair attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Publishes mutations and repairs failed publishes (cheap to clone).
#[derive(Clone)]
pub struct Publisher {
    store: ModuleStore,
    dirty: Arc<Mutex<BTreeSet<String>>>,
    wake: Arc<Notify>,
}

impl Publisher {
    pub fn new(store: ModuleStore) -> Self {
        Publisher {
            store,
            dirty: Arc::default(),
            wake: Arc::default(),
        }
    }

    pub fn store(&self) -> &ModuleStore {
        &self.store
    }

    /// Applies `mutations`; on failure logs, queues the paths for repair and
    /// returns `None`. Returns the store version on success.
    pub async fn publish(&self, mutations: &[Mutation]) -> Option<StoreVersion> {
        match self.store.apply(mutations).await {
            Ok(version) => Some(version),
            Err(err) => {
                tracing::warn!(%err, paths = mutations.len(), "module store write failed; queued for repair");
                self.mark_dirty(mutations.iter().map(|m| m.path().to_owned()));
                None
            }
        }
    }

    fn mark_dirty(&self, paths: impl IntoIterator<Item = String>) {
        if let Ok(mut dirty) = self.dirty.lock() {
            dirty.extend(paths);
        }
        self.wake.notify_one();
    }

    /// Paths waiting for repair (for tests and metrics).
    pub fn pending_repairs(&self) -> usize {
        self.dirty.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// [`Publisher::run_repair_every`] with [`RECONCILE_EVERY`].
    pub async fn run_repair(&self, db: DatabaseConnection, shutdown: impl Future<Output = ()>) {
        self.run_repair_every(db, RECONCILE_EVERY, shutdown).await
    }

    /// Until `shutdown` resolves: reconciles at once and then every `every`,
    /// and re-publishes queued paths from PostgreSQL as they are queued,
    /// backing off from 250 ms to 30 s while Redis keeps failing.
    pub async fn run_repair_every(
        &self,
        db: DatabaseConnection,
        every: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut backoff = BACKOFF_MIN;
        let mut next_reconcile = Instant::now();
        loop {
            let mut failed = false;
            if Instant::now() >= next_reconcile {
                match reconcile(&self.store, &db).await {
                    Ok(report) => {
                        if report.republished > 0 {
                            tracing::info!(
                                republished = report.republished,
                                checked = report.checked,
                                "module store was behind PostgreSQL; published the missing writes"
                            );
                        }
                        next_reconcile = Instant::now() + every;
                    }
                    Err(err) => {
                        tracing::warn!(%err, retry_in = ?backoff, "module store reconcile failed");
                        failed = true;
                    }
                }
            }
            if !self.repair_queued(&db).await {
                failed = true;
            }
            if failed {
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            backoff = BACKOFF_MIN;
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next_reconcile) => {}
            }
        }
    }

    /// [`Publisher::run_repair`] on an owned handle, for `tokio::spawn`.
    pub async fn run_repair_owned(
        self,
        db: DatabaseConnection,
        shutdown: impl Future<Output = ()>,
    ) {
        self.run_repair(db, shutdown).await
    }

    /// Re-publishes every queued path; false (paths queued again) when it
    /// failed.
    async fn repair_queued(&self, db: &DatabaseConnection) -> bool {
        loop {
            let paths: Vec<String> = match self.dirty.lock() {
                Ok(mut d) => std::mem::take(&mut *d).into_iter().collect(),
                Err(_) => return true,
            };
            if paths.is_empty() {
                return true;
            }
            match self.repair(db, &paths).await {
                Ok(()) => tracing::info!(paths = paths.len(), "module store repaired"),
                Err(err) => {
                    tracing::warn!(%err, paths = paths.len(), "module store repair failed");
                    if let Ok(mut d) = self.dirty.lock() {
                        d.extend(paths);
                    }
                    return false;
                }
            }
        }
    }

    async fn repair(&self, db: &DatabaseConnection, paths: &[String]) -> Result<(), SyncError> {
        let rows = find_rows(db, paths).await?;
        let mutations: Vec<Mutation> = rows.iter().map(mutation_for).collect();
        self.store.apply(&mutations).await?;
        Ok(())
    }
}

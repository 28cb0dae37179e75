//! Publishing committed changes to the module store, with repair.
//!
//! PostgreSQL has already committed when we publish, so a Redis failure must
//! not fail the request: the paths are remembered and a repair loop
//! re-publishes their current PostgreSQL state until Redis takes it.
//! (`runeflow init` repairs whatever a crashed process left behind.)

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use super::{ModuleStore, Mutation, StoreVersion};
use crate::workspace::{find_rows, mutation_for};

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

    /// Re-publishes queued paths from PostgreSQL until `shutdown` resolves,
    /// backing off from 250 ms to 30 s while Redis keeps failing.
    pub async fn run_repair(&self, db: DatabaseConnection, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(250);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
            }
            loop {
                let paths: Vec<String> = match self.dirty.lock() {
                    Ok(mut d) => std::mem::take(&mut *d).into_iter().collect(),
                    Err(_) => return,
                };
                if paths.is_empty() {
                    backoff = Duration::from_millis(250);
                    break;
                }
                match self.repair(&db, &paths).await {
                    Ok(()) => {
                        tracing::info!(paths = paths.len(), "module store repaired");
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(%err, paths = paths.len(), retry_in = ?backoff, "module store repair failed");
                        if let Ok(mut d) = self.dirty.lock() {
                            d.extend(paths);
                        }
                    }
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
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

    async fn repair(&self, db: &DatabaseConnection, paths: &[String]) -> Result<(), String> {
        let rows = find_rows(db, paths).await.map_err(|e| e.to_string())?;
        let mutations: Vec<Mutation> = rows.iter().map(mutation_for).collect();
        self.store
            .apply(&mutations)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

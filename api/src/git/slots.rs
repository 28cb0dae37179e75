//! A cap on the git syncs one API process runs at once
//! (`RUNEFLOW_GIT_MAX_SYNCS`). Each sync holds one slot from before it
//! takes its branch lock until its libgit2 thread has ended, so slow
//! remotes tie up at most that many blocking threads and dedicated
//! PostgreSQL connections (see `lock`), and never the API's pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::GitError;

/// The process's sync slots (cheap to clone; clones share them).
#[derive(Debug, Clone)]
pub struct SyncSlots {
    semaphore: Arc<Semaphore>,
    size: usize,
}

/// One held slot; shared by a sync and its blocking thread, freed when both
/// have let go.
pub type Slot = Arc<OwnedSemaphorePermit>;

impl SyncSlots {
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        SyncSlots {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Waits up to `wait` for a free slot.
    pub async fn enter(&self, wait: Duration) -> Result<Slot, GitError> {
        match tokio::time::timeout(wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Arc::new(permit)),
            Ok(Err(_closed)) => Err(GitError::Local("git sync slots closed".to_owned())),
            Err(_) => Err(GitError::Busy(format!(
                "{} git syncs are already running in this API process (RUNEFLOW_GIT_MAX_SYNCS); try again later",
                self.size
            ))),
        }
    }
}

impl Default for SyncSlots {
    fn default() -> Self {
        SyncSlots::new(runeflow_shared::config::DEFAULT_GIT_MAX_SYNCS)
    }
}

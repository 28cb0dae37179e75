//! Serving a child's module requests: resolve against the execution's index
//! snapshot, then fetch sources from the blob cache → Redis → PostgreSQL.

use std::sync::{Arc, Mutex};

use runeflow_shared::protocol::{DirEntry, FindReply, ModuleKind};
use runeflow_shared::store::{ModuleStore, StoreError};
use runeflow_shared::workspace::{SyncError, read_through};
use sea_orm::DatabaseConnection;

use crate::byte_lru::ByteLru;
use crate::index::{IndexSnapshot, Resolved};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("module store: {0}")]
    Store(#[from] StoreError),
    #[error("reading through to PostgreSQL: {0}")]
    ReadThrough(#[from] SyncError),
}

/// In-memory blob cache shared by all executions of a worker. Blobs are
/// immutable, so an entry is never stale.
pub struct Sources {
    store: ModuleStore,
    db: DatabaseConnection,
    cache: Mutex<ByteLru<String, Arc<str>>>,
}

impl Sources {
    /// A cache of at most `cache_bytes` of source (RUNEFLOW_SOURCE_CACHE_MB).
    pub fn new(store: ModuleStore, db: DatabaseConnection, cache_bytes: usize) -> Self {
        Sources {
            store,
            db,
            cache: Mutex::new(ByteLru::new(cache_bytes)),
        }
    }

    /// Source of `path` at `sha`: memory, then Redis, then PostgreSQL (which
    /// also repopulates Redis). A version no longer anywhere comes back as
    /// PostgreSQL's current content. A Redis blob that does not hash to
    /// `sha` is refused by the store (so never cached or imported) and
    /// PostgreSQL is read instead.
    pub async fn get(&self, path: &str, sha: &str) -> Result<Option<Arc<str>>, SourceError> {
        if let Some(hit) = self.cache.lock().ok().and_then(|mut c| c.get(sha)) {
            return Ok(Some(hit));
        }
        let blob = self.store.blob(sha).await?;
        let (sha, content) = match blob {
            Some(content) => (sha.to_owned(), content),
            None => match read_through(&self.store, &self.db, path).await? {
                Some(found) => (found.sha256, found.content),
                None => return Ok(None),
            },
        };
        let content: Arc<str> = Arc::from(content);
        if let Ok(mut cache) = self.cache.lock() {
            let weight = content.len() + sha.len();
            cache.put(sha, content.clone(), weight);
        }
        Ok(Some(content))
    }
}

/// Answers one execution's requests from its snapshot.
pub struct ModuleServer {
    pub snapshot: Arc<IndexSnapshot>,
    pub sources: Arc<Sources>,
}

impl ModuleServer {
    /// A dotted name as the snapshot resolves it, with its source (none
    /// for a namespace package); `None` when it is not in the workspace or
    /// its content is gone everywhere.
    pub async fn resolve(
        &self,
        name: &str,
    ) -> Result<Option<(Resolved, Option<Arc<str>>)>, SourceError> {
        let Some(resolved) = self.snapshot.resolve(name) else {
            return Ok(None);
        };
        let source = match (&resolved.kind, &resolved.sha256) {
            (ModuleKind::Namespace, _) | (_, None) => None,
            (_, Some(sha)) => match self.sources.get(&resolved.path, sha).await? {
                Some(source) => Some(source),
                None => return Ok(None),
            },
        };
        Ok(Some((resolved, source)))
    }

    pub async fn find(&self, name: &str) -> Result<FindReply, SourceError> {
        Ok(match self.resolve(name).await? {
            None => FindReply::Missing { found: false },
            Some((resolved, source)) => FindReply::Found {
                found: true,
                kind: resolved.kind,
                path: resolved.path,
                source: source.map(|s| s.to_string()),
            },
        })
    }

    pub async fn read(&self, path: &str) -> Result<Option<Arc<str>>, SourceError> {
        match self.snapshot.sha(path) {
            Some(sha) => self.sources.get(path, sha).await,
            None => Ok(None),
        }
    }

    pub fn list(&self, dir: &str) -> Vec<DirEntry> {
        self.snapshot.list(dir.trim_end_matches('/'))
    }
}

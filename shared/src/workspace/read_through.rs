//! Reading a file's source by path: Redis first, PostgreSQL when Redis lost
//! it (or holds a blob that is not what its hash names), repopulating Redis
//! on the way. A cold cache is slower, never wrong.

use sea_orm::DatabaseConnection;

use super::{SyncError, find_live, mutation_for};
use crate::store::{Lookup, ModuleStore};

/// A file's source as served to an importer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSource {
    pub path: String,
    pub sha256: String,
    pub content: String,
}

/// Returns the live file at `path`, or `None` when the workspace has none.
/// One Redis round trip when the store is warm; on a miss that Redis cannot
/// vouch for (blob evicted or refused, or index not rebuilt since data
/// loss) it reads PostgreSQL and writes the file back to Redis.
pub async fn read_through(
    store: &ModuleStore,
    db: &DatabaseConnection,
    path: &str,
) -> Result<Option<ModuleSource>, SyncError> {
    match store.lookup(path).await? {
        Lookup::Found { sha256, content } => {
            return Ok(Some(ModuleSource {
                path: path.to_owned(),
                sha256,
                content,
            }));
        }
        Lookup::Absent { complete: true } => return Ok(None),
        Lookup::BlobMissing { .. } | Lookup::Absent { complete: false } => {}
    }
    let Some(row) = find_live(db, path).await? else {
        return Ok(None);
    };
    if let Err(err) = store.apply(&[mutation_for(&row)]).await {
        tracing::warn!(%err, path, "could not repopulate the module store");
    }
    Ok(Some(ModuleSource {
        path: row.path,
        sha256: row.content_hash,
        content: row.content,
    }))
}

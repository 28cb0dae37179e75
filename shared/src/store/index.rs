//! The index (`path → sha256` of every live file), the revision applied to
//! each path, and the marker that says the index is complete.

use std::collections::HashMap;

use redis::Value;

use super::ChangeCursor;
use super::{CHANGES_MAXLEN, ModuleStore, StoreError, StoreVersion, scripts};

/// The whole index as one atomic read, with what a reader needs to follow
/// the change stream from there.
#[derive(Debug, Clone)]
pub struct IndexLoad {
    pub version: StoreVersion,
    /// path → sha256 of every live file.
    pub files: HashMap<String, String>,
    /// False when the index was not rebuilt since Redis lost data: it may
    /// be incomplete, and the caller should rebuild it from PostgreSQL.
    pub complete: bool,
    /// Where the change stream stood: changes after it are newer than
    /// `version`.
    pub cursor: ChangeCursor,
}

impl ModuleStore {
    /// The whole index, path → sha256.
    pub async fn index(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(self.keys.index())
            .query_async(&mut conn)
            .await?)
    }

    /// The index, its version, whether it is complete and the change-stream
    /// position, read atomically (one MULTI) so they agree.
    pub async fn load_index(&self) -> Result<IndexLoad, StoreError> {
        let keys = &self.keys;
        let mut conn = self.conn.clone();
        let (id, generation, files, complete, last): (
            Option<String>,
            Option<u64>,
            HashMap<String, String>,
            bool,
            Value,
        ) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(keys.store_id())
            .cmd("GET")
            .arg(keys.generation())
            .cmd("HGETALL")
            .arg(keys.index())
            .cmd("EXISTS")
            .arg(keys.epoch())
            .cmd("XREVRANGE")
            .arg(keys.changes())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(IndexLoad {
            version: StoreVersion {
                id: id.unwrap_or_default(),
                generation: generation.unwrap_or(0),
            },
            files,
            complete,
            cursor: last_stream_id(&last).map(ChangeCursor).unwrap_or_default(),
        })
    }

    /// Whether the index is known complete (a rebuild ran since data loss).
    pub async fn is_complete(&self) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("EXISTS")
            .arg(self.keys.epoch())
            .query_async(&mut conn)
            .await?)
    }

    /// Records that the index is complete, so readers may trust its misses.
    /// Only a full rebuild from PostgreSQL may say so.
    pub async fn mark_complete(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let epoch = uuid::Uuid::new_v4().to_string();
        redis::cmd("SET")
            .arg(self.keys.epoch())
            .arg(epoch)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The revision last applied to each of `paths` (deletions included);
    /// `None` where no mutation of that path ever reached this store.
    pub async fn applied_revisions(
        &self,
        paths: &[String],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.revisions())
            .arg(paths)
            .query_async(&mut conn)
            .await?;
        Ok(raw
            .iter()
            .map(|r| r.as_deref().and_then(parse_revision))
            .collect())
    }

    /// Every indexed path with the revision the store holds for it (as
    /// stored, `None` when it has none), for [`ModuleStore::drop_orphans`].
    pub async fn index_revisions(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut conn = self.conn.clone();
        let (index, mut revisions): (HashMap<String, String>, HashMap<String, String>) =
            redis::pipe()
                .cmd("HGETALL")
                .arg(self.keys.index())
                .cmd("HGETALL")
                .arg(self.keys.revisions())
                .query_async(&mut conn)
                .await?;
        Ok(index
            .into_keys()
            .map(|path| {
                let seen = revisions.remove(&path);
                (path, seen)
            })
            .collect())
    }

    /// Removes the index entries of paths that have no PostgreSQL row at
    /// all, each only if no write touched it since its revision was observed
    /// (by [`ModuleStore::index_revisions`]). Returns how many were removed.
    pub async fn drop_orphans(
        &self,
        observed: &[(String, Option<String>)],
    ) -> Result<u64, StoreError> {
        if observed.is_empty() {
            return Ok(0);
        }
        let keys = &self.keys;
        let mut inv = scripts::DROP_ORPHANS.prepare_invoke();
        inv.key(keys.index())
            .key(keys.revisions())
            .key(keys.generation())
            .key(keys.changes())
            .arg(CHANGES_MAXLEN);
        for (path, seen) in observed {
            inv.arg(path).arg(seen.as_deref().unwrap_or(""));
        }
        let mut conn = self.conn.clone();
        Ok(inv.invoke_async(&mut conn).await?)
    }
}

/// A revision as the APPLY script stored it (a Lua number: digits, or a
/// float form for very large values).
fn parse_revision(raw: &str) -> Option<i64> {
    raw.parse::<i64>()
        .ok()
        .or_else(|| raw.parse::<f64>().ok().map(|f| f as i64))
}

fn last_stream_id(reply: &Value) -> Option<String> {
    let Value::Array(entries) = reply else {
        return None;
    };
    let Value::Array(entry) = entries.first()? else {
        return None;
    };
    match entry.first()? {
        Value::BulkString(id) => String::from_utf8(id.clone()).ok(),
        Value::SimpleString(id) => Some(id.clone()),
        _ => None,
    }
}

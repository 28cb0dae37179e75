//! Rebuilding the module store from PostgreSQL (`runeflow init`, repair).
//!
//! Safe to run while writers publish and from several processes at once:
//! every change goes through the revision-ordered APPLY script, and an index
//! entry with no PostgreSQL row is only dropped if no write touched it since
//! it was observed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::read_through::ReadThroughError;
use super::{CHANGES_MAXLEN, ModuleStore, Mutation, StoreError, scripts};
use crate::entities::workspace_file;
use crate::workspace::{find_rows, mutation_for};

/// Rows read from PostgreSQL per query.
const PAGE_ROWS: u64 = 2_000;
/// Upper bound of one APPLY call, so no single script blocks Redis for long.
const BATCH_FILES: usize = 1_000;
const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Grace period of a blob no live file references any more: executions
/// pinned to an older generation may still import it.
pub const UNREFERENCED_BLOB_TTL_SECS: u64 = 24 * 3600;

/// What a rebuild did.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    /// Live files written to the store.
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Deleted rows whose removal was (re)applied.
    pub tombstones: u64,
    /// Index entries without any PostgreSQL row, removed.
    pub orphans_removed: u64,
    /// Unreferenced blobs given an expiry.
    pub blobs_expiring: u64,
    pub generation: u64,
    pub elapsed: Duration,
}

/// Makes the store equal to PostgreSQL and marks the index complete.
pub async fn rebuild(
    store: &ModuleStore,
    db: &DatabaseConnection,
) -> Result<RebuildReport, ReadThroughError> {
    let started = Instant::now();
    let mut report = RebuildReport::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut live_hashes: HashSet<String> = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = workspace_file::Entity::find()
            .order_by_asc(workspace_file::Column::Path)
            .limit(PAGE_ROWS);
        if let Some(after) = &after {
            query = query.filter(workspace_file::Column::Path.gt(after.clone()));
        }
        let rows = query.all(db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.path.clone());
        let mut batch: Vec<Mutation> = Vec::new();
        let mut batch_bytes = 0;
        for row in &rows {
            seen.insert(row.path.clone());
            if row.is_deleted {
                report.tombstones += 1;
            } else {
                report.files += 1;
                report.bytes += row.content.len() as u64;
                live_hashes.insert(row.content_hash.clone());
            }
            batch_bytes += row.content.len();
            batch.push(mutation_for(row));
            if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                report.generation = store.apply(&batch).await?.generation;
                batch.clear();
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            report.generation = store.apply(&batch).await?.generation;
        }
        if (rows.len() as u64) < PAGE_ROWS {
            break;
        }
    }
    report.orphans_removed = drop_orphans(store, db, &seen).await?;
    mark_complete(store).await?;
    report.blobs_expiring = expire_unreferenced_blobs(store, &live_hashes).await?;
    report.generation = store.generation().await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Removes index entries for paths PostgreSQL has no row for. Paths that got
/// a row meanwhile are re-applied from that row instead.
async fn drop_orphans(
    store: &ModuleStore,
    db: &DatabaseConnection,
    seen: &HashSet<String>,
) -> Result<u64, ReadThroughError> {
    let keys = store.keys();
    let mut conn = store.connection();
    let (index, revisions): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
        .cmd("HGETALL")
        .arg(keys.index())
        .cmd("HGETALL")
        .arg(keys.revisions())
        .query_async(&mut conn)
        .await
        .map_err(StoreError)?;
    let candidates: Vec<String> = index.into_keys().filter(|p| !seen.contains(p)).collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let rows = find_rows(db, &candidates).await?;
    let with_rows: HashSet<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    if !rows.is_empty() {
        let mutations: Vec<Mutation> = rows.iter().map(mutation_for).collect();
        store.apply(&mutations).await?;
    }
    let mut inv = scripts::DROP_ORPHANS.prepare_invoke();
    inv.key(keys.index())
        .key(keys.revisions())
        .key(keys.generation())
        .key(keys.changes())
        .arg(CHANGES_MAXLEN);
    let mut any = false;
    for path in candidates
        .iter()
        .filter(|p| !with_rows.contains(p.as_str()))
    {
        let seen_rev = revisions.get(path).map(String::as_str).unwrap_or("");
        inv.arg(path).arg(seen_rev);
        any = true;
    }
    if !any {
        return Ok(0);
    }
    Ok(inv.invoke_async(&mut conn).await.map_err(StoreError)?)
}

/// Records that the index is complete, so readers may trust its misses.
async fn mark_complete(store: &ModuleStore) -> Result<(), StoreError> {
    let mut conn = store.connection();
    let epoch = uuid::Uuid::new_v4().to_string();
    redis::cmd("SET")
        .arg(store.keys().epoch())
        .arg(epoch)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

/// Gives every blob no live file references an expiry (if it has none yet).
async fn expire_unreferenced_blobs(
    store: &ModuleStore,
    live: &HashSet<String>,
) -> Result<u64, StoreError> {
    let blob_prefix = store.keys().blob_prefix();
    let pattern = format!("{}*", escape_glob(&blob_prefix));
    let mut conn = store.connection();
    let mut cursor: u64 = 0;
    let mut expiring = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        let mut page = 0;
        for key in &keys {
            let hash = key.strip_prefix(&blob_prefix).unwrap_or(key);
            if !live.contains(hash) {
                pipe.cmd("EXPIRE")
                    .arg(key)
                    .arg(UNREFERENCED_BLOB_TTL_SECS)
                    .arg("NX")
                    .ignore();
                page += 1;
            }
        }
        // Only this page's commands: an empty pipeline is a client error.
        if page > 0 {
            pipe.query_async::<()>(&mut conn).await?;
            expiring += page;
        }
        if next == 0 {
            return Ok(expiring);
        }
        cursor = next;
    }
}

/// Escapes glob metacharacters of a SCAN MATCH pattern.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

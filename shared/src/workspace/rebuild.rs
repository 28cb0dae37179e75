//! Rebuilding the module store from PostgreSQL (`runeflow init`, a worker
//! that finds the index incomplete).
//!
//! Safe to run while writers publish and from several processes at once:
//! every change goes through the revision-ordered APPLY script, and an index
//! entry with no PostgreSQL row is only dropped if no write touched it since
//! it was observed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{SyncError, find_rows, mutation_for};
use crate::entities::workspace_file;
use crate::store::{ModuleStore, Mutation};

/// Rows read from PostgreSQL per query.
const PAGE_ROWS: u64 = 2_000;
/// Upper bound of one APPLY call, so no single script blocks Redis for long.
pub(super) const BATCH_FILES: usize = 1_000;
pub(super) const BATCH_BYTES: usize = 8 * 1024 * 1024;

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
) -> Result<RebuildReport, SyncError> {
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
    store.mark_complete().await?;
    report.blobs_expiring = store.expire_unreferenced_blobs(&live_hashes).await?;
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
) -> Result<u64, SyncError> {
    let candidates: Vec<(String, Option<String>)> = store
        .index_revisions()
        .await?
        .into_iter()
        .filter(|(p, _)| !seen.contains(p))
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let paths: Vec<String> = candidates.iter().map(|(p, _)| p.clone()).collect();
    let rows = find_rows(db, &paths).await?;
    let with_rows: HashSet<&str> = rows.iter().map(|r| r.path.as_str()).collect();
    if !rows.is_empty() {
        let mutations: Vec<Mutation> = rows.iter().map(mutation_for).collect();
        store.apply(&mutations).await?;
    }
    let orphans: Vec<(String, Option<String>)> = candidates
        .into_iter()
        .filter(|(p, _)| !with_rows.contains(p.as_str()))
        .collect();
    Ok(store.drop_orphans(&orphans).await?)
}

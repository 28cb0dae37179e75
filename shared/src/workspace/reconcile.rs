//! Bringing the module store in step with PostgreSQL by revision.
//!
//! Every row mutation takes a new `revision` and the store records, per
//! path, the revision last applied to it. A row whose revision the store
//! has not reached is a committed write whose publish never happened: its
//! writer failed to reach Redis and died before its repair loop could
//! retry. Comparing the two finds every such write without a log of them,
//! so the API runs it at start-up and periodically, and a worker before it
//! loads its index. Each pass reads only paths and revisions (and the rows
//! found behind), a page at a time.

use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::rebuild::{BATCH_BYTES, BATCH_FILES};
use super::{SyncError, find_rows, mutation_for};
use crate::entities::workspace_file;
use crate::store::{ModuleStore, Mutation};

/// Paths (with their revisions) compared per round trip.
const PAGE_PATHS: u64 = 5_000;

/// What a reconcile pass did.
#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    /// Rows compared (live and deleted).
    pub checked: u64,
    /// Rows the store was behind on, published again.
    pub republished: u64,
    pub elapsed: Duration,
}

/// Publishes every row whose revision the store has not applied yet. Safe
/// to run while writers publish and from several processes at once: the
/// store applies a path's mutation only when its revision is newer.
pub async fn reconcile(
    store: &ModuleStore,
    db: &DatabaseConnection,
) -> Result<ReconcileReport, SyncError> {
    let started = Instant::now();
    let mut report = ReconcileReport::default();
    let mut after: Option<String> = None;
    loop {
        let mut query = workspace_file::Entity::find()
            .select_only()
            .column(workspace_file::Column::Path)
            .column(workspace_file::Column::Revision)
            .order_by_asc(workspace_file::Column::Path)
            .limit(PAGE_PATHS);
        if let Some(after) = &after {
            query = query.filter(workspace_file::Column::Path.gt(after.clone()));
        }
        let page: Vec<(String, i64)> = query.into_tuple().all(db).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        report.checked += page.len() as u64;
        let paths: Vec<String> = page.iter().map(|(p, _)| p.clone()).collect();
        let applied = store.applied_revisions(&paths).await?;
        let behind: Vec<String> = page
            .iter()
            .zip(&applied)
            .filter(|((_, revision), applied)| applied.is_none_or(|a| a < *revision))
            .map(|((path, _), _)| path.clone())
            .collect();
        if !behind.is_empty() {
            report.republished += republish(store, db, &behind).await?;
        }
        if (page.len() as u64) < PAGE_PATHS {
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Applies the current rows of `paths`, in bounded batches.
async fn republish(
    store: &ModuleStore,
    db: &DatabaseConnection,
    paths: &[String],
) -> Result<u64, SyncError> {
    let rows = find_rows(db, paths).await?;
    let mut batch: Vec<Mutation> = Vec::new();
    let mut batch_bytes = 0;
    for row in &rows {
        batch_bytes += row.content.len();
        batch.push(mutation_for(row));
        if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
            store.apply(&batch).await?;
            batch.clear();
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        store.apply(&batch).await?;
    }
    Ok(rows.len() as u64)
}

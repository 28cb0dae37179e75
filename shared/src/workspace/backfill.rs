//! Re-detecting the settings of stored workflows (`runeflow init`).
//!
//! Rows written before `workflows.settings` existed hold `{}`, and a file
//! whose content does not change is never re-detected by the write path. So
//! `init` parses every live workflow and data-provider file again and
//! updates the `settings` of rows that differ. Only `settings` is touched,
//! and only while the file still has the revision that was parsed: a write
//! racing with the backfill always wins.

use std::time::{Duration, Instant};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use super::{SyncError, WorkspaceError, prepare_blocking};
use crate::detect::EntityType;
use crate::entities::workspace_file;

/// Files read from PostgreSQL per query.
const PAGE_FILES: u64 = 200;

/// Sets one row's settings if its file is still at the parsed revision and
/// the value differs.
const UPDATE_SETTINGS: &str = r#"
UPDATE workflows w SET settings = $3
FROM workspace_files f
WHERE w.path = $1 AND w.function_name = $2
  AND f.path = w.path AND f.revision = $4 AND NOT f.is_deleted
  AND w.settings IS DISTINCT FROM $3"#;

/// What a backfill did.
#[derive(Debug, Clone, Default)]
pub struct BackfillReport {
    /// Workflow and data-provider files parsed.
    pub files: u64,
    /// `workflows` rows whose settings changed.
    pub updated: u64,
    pub elapsed: Duration,
}

/// Brings every stored workflow's settings in step with its file's content.
pub async fn backfill_settings(db: &DatabaseConnection) -> Result<BackfillReport, SyncError> {
    let started = Instant::now();
    let mut report = BackfillReport::default();
    let kinds = [EntityType::Workflow, EntityType::DataProvider].map(EntityType::as_str);
    let mut after: Option<String> = None;
    loop {
        let mut query = workspace_file::Entity::find()
            .filter(workspace_file::Column::IsDeleted.eq(false))
            .filter(workspace_file::Column::EntityType.is_in(kinds))
            .order_by_asc(workspace_file::Column::Path)
            .limit(PAGE_FILES);
        if let Some(after) = &after {
            query = query.filter(workspace_file::Column::Path.gt(after.clone()));
        }
        let rows = query.all(db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.path.clone());
        let full_page = rows.len() as u64 == PAGE_FILES;
        for row in rows {
            report.files += 1;
            report.updated += backfill_file(db, row).await?;
        }
        if !full_page {
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Re-detects one file and updates its rows; returns how many changed.
async fn backfill_file(
    db: &DatabaseConnection,
    row: workspace_file::Model,
) -> Result<u64, SyncError> {
    let prepared = match prepare_blocking(row.path.clone(), row.content.into_bytes()).await {
        Ok(prepared) => prepared,
        // A stored path or content that no longer passes today's rules is
        // left as it is; the write path will refuse it when it is written.
        Err(WorkspaceError::Db(e)) => return Err(SyncError::Db(e)),
        Err(err) => {
            tracing::warn!(path = %row.path, error = %err, "settings backfill skipped a file");
            return Ok(0);
        }
    };
    let mut updated = 0;
    for meta in &prepared.analysis.workflows {
        let result = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                UPDATE_SETTINGS,
                [
                    row.path.clone().into(),
                    meta.function.clone().into(),
                    meta.settings.to_json().into(),
                    row.revision.into(),
                ],
            ))
            .await?;
        updated += result.rows_affected();
    }
    Ok(updated)
}

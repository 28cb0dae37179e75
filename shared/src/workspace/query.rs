//! Read-only queries on the workspace.

use chrono::{DateTime, FixedOffset};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};

use crate::entities::{workflow, workspace_file};

/// A file without its content, for listings.
#[derive(Debug, Clone, FromQueryResult)]
pub struct FileSummary {
    pub path: String,
    pub entity_type: String,
    pub content_hash: String,
    pub size: i64,
    pub updated_at: DateTime<FixedOffset>,
}

/// One page of a listing; `next_cursor` is the last path when more follow.
#[derive(Debug, Clone)]
pub struct Page {
    pub files: Vec<FileSummary>,
    pub next_cursor: Option<String>,
}

/// The live file at `path`, if any.
pub async fn find_live(
    db: &impl ConnectionTrait,
    path: &str,
) -> Result<Option<workspace_file::Model>, sea_orm::DbErr> {
    workspace_file::Entity::find_by_id(path.to_owned())
        .filter(workspace_file::Column::IsDeleted.eq(false))
        .one(db)
        .await
}

/// Every live file's path and content, in path order (a git push commits
/// exactly these; a pull compares against them).
pub async fn live_contents(
    db: &impl ConnectionTrait,
) -> Result<Vec<(String, String)>, sea_orm::DbErr> {
    workspace_file::Entity::find()
        .select_only()
        .column(workspace_file::Column::Path)
        .column(workspace_file::Column::Content)
        .filter(workspace_file::Column::IsDeleted.eq(false))
        .order_by_asc(workspace_file::Column::Path)
        .into_tuple()
        .all(db)
        .await
}

/// The rows (live or deleted) at the given paths.
pub async fn find_rows(
    db: &impl ConnectionTrait,
    paths: &[String],
) -> Result<Vec<workspace_file::Model>, sea_orm::DbErr> {
    workspace_file::Entity::find()
        .filter(workspace_file::Column::Path.is_in(paths.iter().cloned()))
        .all(db)
        .await
}

/// Live files whose path starts with `prefix`, after `cursor`, in byte order
/// (the column is `C`-collated, so `LIKE 'prefix%'` uses the index).
pub async fn list_files(
    db: &impl ConnectionTrait,
    prefix: &str,
    cursor: Option<&str>,
    limit: u64,
) -> Result<Page, sea_orm::DbErr> {
    let pattern = format!("{}%", escape_like(prefix));
    let sql = r#"
        SELECT path, entity_type, content_hash, size, updated_at FROM workspace_files
        WHERE NOT is_deleted AND path LIKE $1 AND ($2::text IS NULL OR path > $2)
        ORDER BY path LIMIT $3"#;
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut files = FileSummary::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [
            pattern.into(),
            cursor.map(str::to_owned).into(),
            fetch.into(),
        ],
    ))
    .all(db)
    .await?;
    let more = files.len() as u64 > limit;
    files.truncate(limit as usize);
    let next_cursor = if more {
        files.last().map(|f| f.path.clone())
    } else {
        None
    };
    Ok(Page { files, next_cursor })
}

/// Every workflow and data provider, by name then path.
pub async fn list_workflows(
    db: &impl ConnectionTrait,
    name: Option<&str>,
) -> Result<Vec<workflow::Model>, sea_orm::DbErr> {
    let mut q = workflow::Entity::find();
    if let Some(name) = name {
        q = q.filter(workflow::Column::Name.eq(name));
    }
    q.order_by_asc(workflow::Column::Name)
        .order_by_asc(workflow::Column::Path)
        .order_by_asc(workflow::Column::FunctionName)
        .all(db)
        .await
}

/// Escapes `LIKE` wildcards so a prefix matches literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

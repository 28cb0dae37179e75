//! PostgreSQL side of the write path. Each function runs one transaction and
//! returns the [`Mutation`]s the caller publishes to Redis after the commit.

use std::sync::Arc;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, Statement, TransactionTrait,
};

use crate::detect::{EntityType, WorkflowMeta};
use crate::entities::{workflow, workspace_file};
use crate::path::WorkspacePath;
use crate::store::Mutation;

use super::{Prepared, WorkspaceError, WriteOutcome};

const SELECT_FOR_UPDATE: &str = r#"SELECT * FROM workspace_files WHERE path = $1 FOR UPDATE"#;

const UPSERT: &str = r#"
INSERT INTO workspace_files
    (path, content, content_hash, entity_type, is_deleted, size, revision, created_at, updated_at, deleted_at)
VALUES ($1, $2, $3, $4, FALSE, $5, nextval('workspace_revision_seq'), now(), now(), NULL)
ON CONFLICT (path) DO UPDATE SET
    content = EXCLUDED.content,
    content_hash = EXCLUDED.content_hash,
    entity_type = EXCLUDED.entity_type,
    is_deleted = FALSE,
    size = EXCLUDED.size,
    revision = EXCLUDED.revision,
    created_at = CASE WHEN workspace_files.is_deleted THEN now() ELSE workspace_files.created_at END,
    updated_at = now(),
    deleted_at = NULL
RETURNING *"#;

const SOFT_DELETE: &str = r#"
UPDATE workspace_files SET
    content = '', is_deleted = TRUE, size = 0,
    revision = nextval('workspace_revision_seq'), updated_at = now(), deleted_at = now()
WHERE path = $1 AND NOT is_deleted
RETURNING *"#;

async fn locked_row(
    txn: &DatabaseTransaction,
    path: &str,
) -> Result<Option<workspace_file::Model>, sea_orm::DbErr> {
    workspace_file::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SELECT_FOR_UPDATE,
        [path.into()],
    ))
    .one(txn)
    .await
}

/// Upserts a prepared file and rebuilds its `workflows` rows. Writing the
/// content a path already has changes nothing (no new revision), but still
/// returns its mutation so publishing repairs a store that lost it.
pub(super) async fn upsert(
    db: &DatabaseConnection,
    prepared: Prepared,
) -> Result<(WriteOutcome, Mutation), WorkspaceError> {
    let txn = db.begin().await?;
    let outcome = upsert_in(&txn, prepared).await?;
    txn.commit().await?;
    let mutation = put_mutation(&outcome.file);
    Ok((outcome, mutation))
}

async fn upsert_in(
    txn: &DatabaseTransaction,
    prepared: Prepared,
) -> Result<WriteOutcome, WorkspaceError> {
    let path = prepared.path.as_str();
    let previous = locked_row(txn, path).await?;
    let was_live = previous.as_ref().is_some_and(|p| !p.is_deleted);
    // Only workflow and data-provider files have `workflows` rows; skipping
    // the DELETE for plain modules saves a round trip on most writes.
    let previous_had_workflows = previous
        .as_ref()
        .is_some_and(|p| defines_workflows(&p.entity_type));
    let entity_type = prepared.analysis.entity_type.as_str();
    if let Some(prev) = previous.filter(|p| {
        !p.is_deleted && p.content_hash == prepared.sha256 && p.entity_type == entity_type
    }) {
        return Ok(WriteOutcome {
            file: prev,
            created: false,
            unchanged: true,
            workflows: prepared.analysis.workflows,
            diagnostics: prepared.analysis.diagnostics,
            generation: None,
        });
    }
    let size = prepared.content.len() as i64;
    let file = workspace_file::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        UPSERT,
        [
            path.into(),
            prepared.content.into(),
            prepared.sha256.into(),
            entity_type.into(),
            size.into(),
        ],
    ))
    .one(txn)
    .await?
    .ok_or_else(|| sea_orm::DbErr::RecordNotInserted)?;
    if previous_had_workflows || !prepared.analysis.workflows.is_empty() {
        replace_workflows(txn, path, &prepared.analysis.workflows).await?;
    }
    Ok(WriteOutcome {
        file,
        created: !was_live,
        unchanged: false,
        workflows: prepared.analysis.workflows,
        diagnostics: prepared.analysis.diagnostics,
        generation: None,
    })
}

/// Replaces the `workflows` rows of one file. A function defined twice keeps
/// its last definition, as Python does.
async fn replace_workflows(
    txn: &DatabaseTransaction,
    path: &str,
    workflows: &[WorkflowMeta],
) -> Result<(), sea_orm::DbErr> {
    workflow::Entity::delete_many()
        .filter(workflow::Column::Path.eq(path))
        .exec(txn)
        .await?;
    let mut rows: Vec<workflow::ActiveModel> = Vec::with_capacity(workflows.len());
    for (i, w) in workflows.iter().enumerate() {
        if workflows[i + 1..]
            .iter()
            .any(|later| later.function == w.function)
        {
            continue;
        }
        rows.push(workflow::ActiveModel {
            path: Set(path.to_owned()),
            name: Set(w.name.clone()),
            function_name: Set(w.function.clone()),
            kind: Set(w.kind.as_str().to_owned()),
            description: Set(w.description.clone()),
            parameters: Set(serde_json::to_value(&w.parameters).unwrap_or_default()),
            timeout_seconds: Set(w.timeout_seconds),
            is_async: Set(w.is_async),
            line: Set(i32::try_from(w.line).unwrap_or(i32::MAX)),
            settings: Set(w.settings.to_json()),
            updated_at: Set(Utc::now().fixed_offset()),
            ..Default::default()
        });
    }
    if !rows.is_empty() {
        workflow::Entity::insert_many(rows).exec(txn).await?;
    }
    Ok(())
}

/// Soft-deletes a live file and its `workflows` rows.
pub(super) async fn soft_delete(
    db: &DatabaseConnection,
    path: &WorkspacePath,
) -> Result<Mutation, WorkspaceError> {
    let txn = db.begin().await?;
    let row = soft_delete_in(&txn, path.as_str()).await?;
    txn.commit().await?;
    Ok(delete_mutation(&row))
}

async fn soft_delete_in(
    txn: &DatabaseTransaction,
    path: &str,
) -> Result<workspace_file::Model, WorkspaceError> {
    let row = workspace_file::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SOFT_DELETE,
        [path.into()],
    ))
    .one(txn)
    .await?
    .ok_or_else(|| WorkspaceError::NotFound(path.to_owned()))?;
    if defines_workflows(&row.entity_type) {
        replace_workflows(txn, path, &[]).await?;
    }
    Ok(row)
}

/// Moves a live file: the source is soft-deleted and the destination written
/// with its content (re-detected, since the new path may change the type),
/// in one transaction. Locks are taken in path order so two crossing moves
/// cannot deadlock.
pub(super) async fn rename(
    db: &DatabaseConnection,
    from: &WorkspacePath,
    to: &str,
) -> Result<(WriteOutcome, Vec<Mutation>), WorkspaceError> {
    let to_path = WorkspacePath::parse(to)?;
    let txn = db.begin().await?;
    let (first, second) = if from.as_str() <= to_path.as_str() {
        (from.as_str(), to_path.as_str())
    } else {
        (to_path.as_str(), from.as_str())
    };
    let a = locked_row(&txn, first).await?;
    let b = if first == second {
        a.clone()
    } else {
        locked_row(&txn, second).await?
    };
    let (source, dest) = if first == from.as_str() {
        (a, b)
    } else {
        (b, a)
    };
    let source = source
        .filter(|s| !s.is_deleted)
        .ok_or_else(|| WorkspaceError::NotFound(from.to_string()))?;
    if dest.is_some_and(|d| !d.is_deleted) {
        return Err(WorkspaceError::Exists(to_path.into_string()));
    }
    let prepared =
        super::prepare_blocking(to_path.as_str().to_owned(), source.content.into_bytes()).await?;
    let removed = soft_delete_in(&txn, from.as_str()).await?;
    let outcome = upsert_in(&txn, prepared).await?;
    txn.commit().await?;
    let mutations = vec![delete_mutation(&removed), put_mutation(&outcome.file)];
    Ok((outcome, mutations))
}

fn defines_workflows(entity_type: &str) -> bool {
    matches!(
        EntityType::parse(entity_type),
        Some(EntityType::Workflow | EntityType::DataProvider)
    )
}

/// The store mutation that mirrors a row's current state.
pub fn mutation_for(row: &workspace_file::Model) -> Mutation {
    if row.is_deleted {
        delete_mutation(row)
    } else {
        put_mutation(row)
    }
}

fn put_mutation(row: &workspace_file::Model) -> Mutation {
    Mutation::Put {
        path: row.path.clone(),
        revision: row.revision,
        sha256: row.content_hash.clone(),
        content: Arc::from(row.content.as_str()),
    }
}

fn delete_mutation(row: &workspace_file::Model) -> Mutation {
    Mutation::Delete {
        path: row.path.clone(),
        revision: row.revision,
    }
}

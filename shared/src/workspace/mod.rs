//! The workspace: files in PostgreSQL and the one write path every writer
//! (REST API, `import`, git pull) goes through, so the rules, entity
//! detection, `workflows` rows and module store stay in step.
//!
//! This layer sits on top of the Redis-only [`store`](crate::store): it
//! commits to PostgreSQL, then publishes to the store ([`Publisher`]), and
//! keeps the store in step with PostgreSQL ([`read_through`], [`rebuild`],
//! [`reconcile`]). The store never calls back into it.

mod backfill;
pub mod plan;
mod prepare;
mod publisher;
mod query;
mod read_through;
mod rebuild;
mod reconcile;
mod write;

use sea_orm::DatabaseConnection;

use crate::detect::{Diagnostic, WorkflowMeta};
use crate::entities::workspace_file;
use crate::path::PathError;
use crate::store::{StoreError, StoreVersion};

pub use backfill::{BackfillReport, backfill_settings};
pub use prepare::{Prepared, prepare};
pub use publisher::{Publisher, RECONCILE_EVERY};
pub use query::{
    FileSummary, Page, find_live, find_rows, list_files, list_workflows, live_contents,
};
pub use read_through::{ModuleSource, read_through};
pub use rebuild::{RebuildReport, rebuild};
pub use reconcile::{ReconcileReport, reconcile};
pub use write::mutation_for;

/// A failure while bringing the module store in step with PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// Why a workspace operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("content is not valid UTF-8 text (byte {valid_up_to} starts an invalid sequence)")]
    NotUtf8 { valid_up_to: usize },
    #[error("content has a NUL byte at offset {at}; workspace files are text without NUL")]
    NulByte { at: usize },
    #[error("file is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("no file at '{0}'")]
    NotFound(String),
    #[error("a file already exists at '{0}'")]
    Exists(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Internal(String),
}

/// The result of a write or move, for the response body.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub file: workspace_file::Model,
    /// True when the path had no live file before (new or re-created).
    pub created: bool,
    /// True when the same content was already stored (nothing changed).
    pub unchanged: bool,
    pub workflows: Vec<WorkflowMeta>,
    pub diagnostics: Vec<Diagnostic>,
    /// Module-store version after publishing, when Redis answered.
    pub generation: Option<StoreVersion>,
}

/// Runs [`prepare`] on the blocking pool: parsing a large or badly broken
/// file can take a while and must not stall the async runtime.
pub async fn prepare_blocking(path: String, bytes: Vec<u8>) -> Result<Prepared, WorkspaceError> {
    tokio::task::spawn_blocking(move || prepare(&path, &bytes))
        .await
        .unwrap_or_else(|e| {
            Err(WorkspaceError::Internal(format!(
                "entity detection panicked: {e}"
            )))
        })
}

/// PostgreSQL plus the publisher that mirrors each commit into Redis.
#[derive(Clone)]
pub struct Workspace {
    pub db: DatabaseConnection,
    pub publisher: Publisher,
    pub max_file_bytes: usize,
}

impl Workspace {
    pub fn new(db: DatabaseConnection, publisher: Publisher, max_file_bytes: usize) -> Self {
        Workspace {
            db,
            publisher,
            max_file_bytes,
        }
    }

    /// Validates and upserts one file, then publishes it to the module store.
    pub async fn write(&self, path: &str, bytes: &[u8]) -> Result<WriteOutcome, WorkspaceError> {
        if bytes.len() > self.max_file_bytes {
            return Err(WorkspaceError::TooLarge {
                size: bytes.len(),
                limit: self.max_file_bytes,
            });
        }
        let prepared = prepare_blocking(path.to_owned(), bytes.to_vec()).await?;
        let (mut outcome, mutation) = write::upsert(&self.db, prepared).await?;
        outcome.generation = self.publisher.publish(&[mutation]).await;
        Ok(outcome)
    }

    /// Soft-deletes a live file; `NotFound` when there is none.
    pub async fn delete(&self, path: &str) -> Result<(), WorkspaceError> {
        let path = crate::path::WorkspacePath::parse(path)?;
        let mutation = write::soft_delete(&self.db, &path).await?;
        self.publisher.publish(&[mutation]).await;
        Ok(())
    }

    /// Moves a live file; the destination must not hold a live file.
    pub async fn rename(&self, from: &str, to: &str) -> Result<WriteOutcome, WorkspaceError> {
        let from = crate::path::WorkspacePath::parse(from)?;
        let (mut outcome, mutations) = write::rename(&self.db, &from, to).await?;
        outcome.generation = self.publisher.publish(&mutations).await;
        Ok(outcome)
    }
}

//! What every handler can reach.

use crate::git::GitSettings;
use crate::queue::{Enqueue, JobQueue};
use crate::waiters::Waiters;
use crate::workflow_cache::WorkflowCache;
use std::sync::Arc;

use runeflow_shared::hash::content_hash;
use runeflow_shared::secrets::SecretKey;
use runeflow_shared::store::ModuleStore;
use runeflow_shared::workspace::Workspace;
use sea_orm::DatabaseConnection;

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub workspace: Workspace,
    /// Inserts and pushes executions (holds the queue).
    pub enqueue: Enqueue,
    pub waiters: Waiters,
    /// sha256 hex of the API token, compared in constant time.
    pub token_digest: String,
    /// Git author and remote credentials (from the API's environment).
    pub git: GitSettings,
    /// Workflow lookups of executions, per store version.
    pub workflows: WorkflowCache,
    /// Seals secrets written through `/api/config` (RUNEFLOW_SECRET_KEY);
    /// without it secrets cannot be written.
    pub secret_key: Option<Arc<SecretKey>>,
}

impl AppState {
    pub fn new(workspace: Workspace, queue: JobQueue, waiters: Waiters, api_token: &str) -> Self {
        AppState {
            enqueue: Enqueue::new(workspace.db.clone(), queue),
            workspace,
            waiters,
            token_digest: content_hash(api_token.as_bytes()),
            git: GitSettings::default(),
            workflows: WorkflowCache::default(),
            secret_key: None,
        }
    }

    /// The same state with these git settings.
    pub fn with_git(mut self, git: GitSettings) -> Self {
        self.git = git;
        self
    }

    /// The same state with this secret key.
    pub fn with_secret_key(mut self, key: Option<SecretKey>) -> Self {
        self.secret_key = key.map(Arc::new);
        self
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.workspace.db
    }

    pub fn store(&self) -> &ModuleStore {
        self.workspace.publisher.store()
    }

    pub fn max_file_bytes(&self) -> usize {
        self.workspace.max_file_bytes
    }
}

//! Git sync of the workspace: `push` commits every live file on top of a
//! remote branch, `pull` applies the branch's changes through the same
//! write path as the files API. The last synced commit per (remote,
//! branch) lives in PostgreSQL (`git_sync`) and is the base of the
//! three-way comparison that finds conflicts (`plan`). Credentials come
//! from the API's environment only, never from a request.
//!
//! Order of a sync: the remote is checked (`remote`, a 400 when bad), a
//! slot is taken (`slots`), then the branch lock (`lock`, on a connection
//! outside the pool); the database is read, the network part runs on the
//! blocking pool within its limits (`transfer`), and the database is
//! written. No pooled connection is held while the remote is talked to.

pub mod lock;
pub mod plan;
pub mod remote;
mod repo;
pub mod slots;
pub mod transfer;

use std::collections::BTreeMap;

use git2::{Oid, Signature};
use runeflow_shared::workspace::{Workspace, WorkspaceError, live_contents};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use serde::Serialize;
use utoipa::ToSchema;

pub use plan::Prefer;
use plan::Step;
use remote::{Remote, RemoteError};
use repo::{Scratch, blob_id};
pub use slots::SyncSlots;
pub use transfer::{Credentials, TransferLimits};

/// Who commits, how to authenticate, which remotes are allowed and the
/// limits of a sync; from the API's configuration.
#[derive(Debug, Clone)]
pub struct GitSettings {
    pub credentials: Credentials,
    pub author_name: String,
    pub author_email: String,
    /// Development only: accept `http://`, `file://` and local paths.
    pub allow_insecure: bool,
    pub limits: TransferLimits,
    /// Shared by every clone of these settings (one cap per process).
    pub slots: SyncSlots,
}

impl Default for GitSettings {
    fn default() -> Self {
        GitSettings {
            credentials: Credentials::default(),
            author_name: "Runeflow".to_owned(),
            author_email: "runeflow@localhost".to_owned(),
            allow_insecure: false,
            limits: TransferLimits::default(),
            slots: SyncSlots::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{0}")]
    BadRequest(String),
    /// The remote named by the request is refused (checked before any
    /// network access or lock).
    #[error(transparent)]
    InvalidRemote(#[from] RemoteError),
    /// The network part ran past `RUNEFLOW_GIT_TIMEOUT_SECS`.
    #[error("{0}")]
    TimedOut(String),
    /// A fetch received more than `RUNEFLOW_GIT_MAX_FETCH_BYTES`.
    #[error("{0}")]
    TooLarge(String),
    /// Every sync slot stayed taken for the whole time limit.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("git remote: {0}")]
    Remote(String),
    #[error("git: {0}")]
    Local(String),
    /// The branch moved since the last sync (push refused).
    #[error("{0}")]
    Moved(String),
    #[error("{0}")]
    NotFound(String),
    /// A workspace file git cannot store.
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

impl GitError {
    fn local(err: git2::Error) -> Self {
        GitError::Local(err.message().to_owned())
    }

    fn remote(err: git2::Error) -> Self {
        GitError::Remote(err.message().to_owned())
    }
}

/// What a push did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushReport {
    /// The branch's commit after the push.
    pub commit: String,
    /// False when the workspace already equalled the branch (nothing pushed).
    pub pushed: bool,
    /// Files in the pushed tree.
    pub files: usize,
}

/// What a pull did, file by file.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullReport {
    /// The remote commit pulled.
    pub commit: String,
    /// Only paths that needed something, in path order.
    pub actions: Vec<FileAction>,
    pub conflicts: usize,
    /// True when the base moved to `commit` (no conflict left open).
    pub synced: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileAction {
    pub path: String,
    /// `added` | `updated` | `deleted` | `conflict` | `kept` | `refused`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Commits the live workspace on top of `branch` and pushes it. Refused
/// (`Moved`) when the branch moved since the last sync, unless `force`.
/// Waits for any other sync of the same branch (see `lock`).
pub async fn push(
    workspace: &Workspace,
    settings: &GitSettings,
    remote: &str,
    branch: &str,
    message: &str,
    force: bool,
) -> Result<PushReport, GitError> {
    let target = check_request(settings, remote, branch)?;
    let slot = settings.slots.enter(settings.limits.timeout).await?;
    lock::one_at_a_time(&workspace.db, remote, branch, async {
        let files = live_files(&workspace.db).await?;
        let base = last_sync(&workspace.db, remote, branch).await?;
        let (settings, branch_name, message) =
            (settings.clone(), branch.to_owned(), message.to_owned());
        let count = files.len();
        let (commit, pushed) = transfer::network(settings.limits, slot, move |transfer| {
            let credentials = &settings.credentials;
            let scratch = Scratch::new()?;
            let head = scratch.fetch(&target, &branch_name, credentials, transfer)?;
            let author = Signature::now(&settings.author_name, &settings.author_email)
                .map_err(GitError::local)?;
            let moved = head.is_some_and(|h| Some(h.to_string()) != base);
            match scratch.commit(&branch_name, &files, head, &author, &message)? {
                // The branch already holds exactly the workspace.
                None => Ok((head.map(|h| h.to_string()).unwrap_or_default(), false)),
                Some(_) if moved && !force => Err(GitError::Moved(format!(
                    "the branch '{branch_name}' is at {}, which this workspace has not synced \
                     (last sync: {}); pull first, or push with force to overwrite it",
                    head.map(|h| h.to_string()).unwrap_or_default(),
                    base.as_deref().unwrap_or("never")
                ))),
                Some(id) => {
                    scratch.push(&target, &branch_name, credentials, transfer)?;
                    Ok((id.to_string(), true))
                }
            }
        })
        .await?;
        if !commit.is_empty() {
            save_sync(&workspace.db, remote, branch, &commit).await?;
        }
        Ok(PushReport {
            commit,
            pushed,
            files: count,
        })
    })
    .await
}

/// Fetches `branch` and applies what changed there since the last sync.
/// Waits for any other sync of the same branch (see `lock`).
pub async fn pull(
    workspace: &Workspace,
    settings: &GitSettings,
    remote: &str,
    branch: &str,
    prefer: Option<Prefer>,
) -> Result<PullReport, GitError> {
    let target = check_request(settings, remote, branch)?;
    let slot = settings.slots.enter(settings.limits.timeout).await?;
    lock::one_at_a_time(&workspace.db, remote, branch, async {
        let base = last_sync(&workspace.db, remote, branch).await?;
        let local: BTreeMap<String, Vec<u8>> =
            live_files(&workspace.db).await?.into_iter().collect();
        let local_ids = local
            .iter()
            .map(|(path, content)| Ok((path.clone(), blob_id(content)?)))
            .collect::<Result<BTreeMap<String, Oid>, GitError>>()?;
        let (credentials, branch_name) = (settings.credentials.clone(), branch.to_owned());
        let (head, steps) = transfer::network(settings.limits, slot, move |transfer| {
            let scratch = Scratch::new()?;
            let head = scratch
                .fetch(&target, &branch_name, &credentials, transfer)?
                .ok_or_else(|| {
                    GitError::NotFound(format!("the remote has no branch '{branch_name}'"))
                })?;
            let theirs = scratch.files_at(head)?;
            let base_files = match base.as_deref().and_then(|b| Oid::from_str(b).ok()) {
                Some(b) if scratch.has_commit(b) => scratch.files_at(b)?,
                _ => BTreeMap::new(),
            };
            let mut steps = Vec::new();
            for (path, step) in plan::plan(&base_files, &theirs, &local_ids, prefer) {
                let content = match (step, theirs.get(&path)) {
                    (Step::Take, Some(id)) => Some(scratch.blob(*id)?),
                    _ => None,
                };
                steps.push((path, step, content));
            }
            Ok((head, steps))
        })
        .await?;
        let mut actions = Vec::new();
        for (path, step, content) in steps {
            actions.push(apply(workspace, &local, path, step, content).await?);
        }
        let conflicts = actions.iter().filter(|a| a.action == "conflict").count();
        let synced = conflicts == 0;
        if synced {
            save_sync(&workspace.db, remote, branch, &head.to_string()).await?;
        }
        Ok(PullReport {
            commit: head.to_string(),
            actions,
            conflicts,
            synced,
        })
    })
    .await
}

/// Carries out one step through the workspace's write path.
async fn apply(
    workspace: &Workspace,
    local: &BTreeMap<String, Vec<u8>>,
    path: String,
    step: Step,
    content: Option<Vec<u8>>,
) -> Result<FileAction, GitError> {
    let action = |action, reason| FileAction {
        path: path.clone(),
        action,
        reason,
    };
    Ok(match (step, content) {
        (Step::Conflict, _) => action(
            "conflict",
            Some("changed in the workspace and on the remote since the last sync".to_owned()),
        ),
        (Step::KeepOurs, _) => action("kept", None),
        (Step::Take, Some(bytes)) => match workspace.write(&path, &bytes).await {
            Ok(_) if local.contains_key(&path) => action("updated", None),
            Ok(_) => action("added", None),
            Err(WorkspaceError::Db(err)) => return Err(GitError::Db(err)),
            Err(err) => action("refused", Some(err.to_string())),
        },
        (Step::Take, None) => match workspace.delete(&path).await {
            Ok(()) | Err(WorkspaceError::NotFound(_)) => action("deleted", None),
            Err(WorkspaceError::Db(err)) => return Err(GitError::Db(err)),
            Err(err) => action("refused", Some(err.to_string())),
        },
    })
}

/// The request's remote (see `remote` for the rules) and branch name,
/// checked before any lock or network access.
fn check_request(settings: &GitSettings, remote: &str, branch: &str) -> Result<Remote, GitError> {
    let target = Remote::parse(remote, settings.allow_insecure)?;
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(GitError::BadRequest(format!(
            "'{branch}' is not a valid branch name"
        )));
    }
    Ok(target)
}

/// Every live file with its content as bytes, in path order.
async fn live_files(db: &DatabaseConnection) -> Result<Vec<(String, Vec<u8>)>, DbErr> {
    Ok(live_contents(db)
        .await?
        .into_iter()
        .map(|(path, content)| (path, content.into_bytes()))
        .collect())
}

async fn last_sync(
    db: &DatabaseConnection,
    remote: &str,
    branch: &str,
) -> Result<Option<String>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT commit_id FROM git_sync WHERE remote = $1 AND branch = $2",
            [remote.into(), branch.into()],
        ))
        .await?;
    row.map(|r| r.try_get::<String>("", "commit_id"))
        .transpose()
}

async fn save_sync(
    db: &DatabaseConnection,
    remote: &str,
    branch: &str,
    commit: &str,
) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO git_sync (remote, branch, commit_id) VALUES ($1, $2, $3)
         ON CONFLICT (remote, branch) DO UPDATE SET commit_id = $3, synced_at = now()",
        [remote.into(), branch.into(), commit.into()],
    ))
    .await?;
    Ok(())
}

//! One file through the write path, or (with `--dry-run`) through the same
//! checks without writing: the size limit against the listed size first (an
//! oversized file is never read), the workspace path rules, then the content
//! through `Workspace::write` or `workspace::plan::plan_write`. Turns every
//! outcome into an output [`Line`]; only a fatal failure (PostgreSQL gone,
//! an S3 read error) is an `Err`.

use anyhow::Context;
use runeflow_shared::path::WorkspacePath;
use runeflow_shared::workspace::plan::{PlannedWrite, plan_write};
use runeflow_shared::workspace::{Workspace, WorkspaceError};

use super::report::{Line, Status};
use super::source::{Content, Entry, Source};

/// Write, or only say what a write would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    DryRun,
}

/// Imports (or plans) one entry under the workspace folder `prefix`
/// (empty, or ending in `/`).
pub async fn import_one(
    workspace: &Workspace,
    source: &Source,
    prefix: &str,
    entry: Entry,
    mode: Mode,
) -> anyhow::Result<Line> {
    let mut raw = prefix.as_bytes().to_vec();
    raw.extend_from_slice(&entry.relative);
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let limit = workspace.max_file_bytes;
    // Workspace::write checks the size before anything else; so do we, on
    // the listed size, so an oversized file is not even read.
    if entry.size > u64::try_from(limit).unwrap_or(u64::MAX) {
        return refuse(workspace, shown, too_large(entry.size, limit)).await;
    }
    let path = match WorkspacePath::from_bytes(&raw) {
        Ok(path) => path.into_string(),
        Err(e) => return refuse(workspace, shown, WorkspaceError::Path(e)).await,
    };
    let bytes = match source.read(&entry, limit).await? {
        Content::Bytes(bytes) => bytes,
        Content::TooLarge { size } => {
            return refuse(workspace, shown, too_large(size, limit)).await;
        }
        Content::Unreadable(reason) => return Ok(Line::refused(shown, reason)),
    };
    let status = match mode {
        Mode::Write => workspace.write(&path, &bytes).await.map(|outcome| {
            if outcome.created {
                Status::Created
            } else if outcome.unchanged {
                Status::Unchanged
            } else {
                Status::Updated
            }
        }),
        Mode::DryRun => plan_write(workspace, &path, &bytes)
            .await
            .map(|planned| match planned {
                PlannedWrite::Create => Status::Created,
                PlannedWrite::Update => Status::Updated,
                PlannedWrite::Unchanged => Status::Unchanged,
            }),
    };
    match status {
        Ok(status) => Ok(Line::new(status, path)),
        Err(e) => refuse(workspace, path, e).await,
    }
}

fn too_large(size: u64, limit: usize) -> WorkspaceError {
    WorkspaceError::TooLarge {
        size: usize::try_from(size).unwrap_or(usize::MAX),
        limit,
    }
}

/// A refused file, unless the error means PostgreSQL itself is failing
/// (then the import stops): a database error on one file (say, content
/// PostgreSQL rejects) refuses that file only if the database still answers.
async fn refuse(workspace: &Workspace, path: String, err: WorkspaceError) -> anyhow::Result<Line> {
    if let WorkspaceError::Db(_) = &err
        && let Err(ping) = workspace.db.ping().await
    {
        return Err(anyhow::Error::new(err))
            .context(format!("PostgreSQL stopped answering ({ping})"))
            .with_context(|| format!("importing '{path}' failed"));
    }
    Ok(Line::refused(path, err.to_string()))
}

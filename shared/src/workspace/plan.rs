//! What [`Workspace::write`] would do with a file, without writing anything:
//! the same size check and the same pure [`prepare`](super::prepare), then
//! the live row compared the way the upsert compares it (same content hash
//! and same entity type means nothing changes). `runeflow import --dry-run`
//! uses it so its report matches what the real run does.

use super::{Workspace, WorkspaceError, find_live, prepare_blocking};

/// The effect a write of a file would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedWrite {
    /// No live file at the path (new, or re-created after a delete).
    Create,
    /// A live file with other content (or another entity type) is replaced.
    Update,
    /// The live file already has this content; the write changes nothing.
    Unchanged,
}

/// Classifies a write of `bytes` at `path`; refuses what
/// [`Workspace::write`] refuses (too large, invalid path, not UTF-8 or a
/// NUL byte), with the same errors.
pub async fn plan_write(
    workspace: &Workspace,
    path: &str,
    bytes: &[u8],
) -> Result<PlannedWrite, WorkspaceError> {
    if bytes.len() > workspace.max_file_bytes {
        return Err(WorkspaceError::TooLarge {
            size: bytes.len(),
            limit: workspace.max_file_bytes,
        });
    }
    let prepared = prepare_blocking(path.to_owned(), bytes.to_vec()).await?;
    let live = find_live(&workspace.db, prepared.path.as_str()).await?;
    Ok(match live {
        None => PlannedWrite::Create,
        Some(row)
            if row.content_hash == prepared.sha256
                && row.entity_type == prepared.analysis.entity_type.as_str() =>
        {
            PlannedWrite::Unchanged
        }
        Some(_) => PlannedWrite::Update,
    })
}

//! Turning raw bytes at a path into what gets stored: validated path, text,
//! hash, entity type and workflow metadata. Pure, so `import --dry-run` can
//! report exactly what a write would do without writing.

use crate::detect::{Analysis, EntityType, analyze_python};
use crate::hash::content_hash;
use crate::path::WorkspacePath;

use super::WorkspaceError;

/// A file ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub path: WorkspacePath,
    pub content: String,
    pub sha256: String,
    pub analysis: Analysis,
}

/// Validates `path` and `bytes` and analyses the content.
pub fn prepare(path: &str, bytes: &[u8]) -> Result<Prepared, WorkspaceError> {
    let path = WorkspacePath::parse(path)?;
    let content = std::str::from_utf8(bytes).map_err(|e| WorkspaceError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    // Valid UTF-8, but PostgreSQL's TEXT cannot hold U+0000.
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(WorkspaceError::NulByte { at });
    }
    let analysis = if path.is_python() {
        analyze_python(content)
    } else {
        Analysis {
            entity_type: EntityType::File,
            workflows: Vec::new(),
            diagnostics: Vec::new(),
        }
    };
    Ok(Prepared {
        sha256: content_hash(bytes),
        content: content.to_owned(),
        path,
        analysis,
    })
}

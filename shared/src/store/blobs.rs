//! Blobs: a file's source under `{p}:blob:{sha256}`. A blob is checked
//! against the hash that names it whenever it is read, so content written
//! into Redis by anyone but the store (user code that reached Redis, say) is
//! refused rather than imported.

use std::collections::HashSet;

use super::{ModuleStore, StoreError};
use crate::hash::content_hash;

/// Grace period of a blob no live file references any more: executions
/// pinned to an older generation may still import it.
pub const UNREFERENCED_BLOB_TTL_SECS: u64 = 24 * 3600;

/// Whether `content` is what `sha256` names.
pub(super) fn matches(sha256: &str, content: &str) -> bool {
    content_hash(content.as_bytes()) == sha256
}

/// Logs a refused blob (once per read; the caller then reads PostgreSQL,
/// whose write-back replaces the forged blob).
pub(super) fn warn_forged(sha256: &str) {
    tracing::warn!(
        sha256,
        "module store: a blob's content does not match its sha256; refused (reading PostgreSQL instead)"
    );
}

impl ModuleStore {
    /// The source whose sha256 is `sha256`, or `None` when Redis has no such
    /// blob or holds content that does not hash to it (refused, with a
    /// warning): either way the caller reads PostgreSQL.
    pub async fn blob(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        let blob: Option<String> = redis::cmd("GET")
            .arg(self.keys.blob(sha256))
            .query_async(&mut conn)
            .await?;
        Ok(blob.filter(|content| {
            let ok = matches(sha256, content);
            if !ok {
                warn_forged(sha256);
            }
            ok
        }))
    }

    /// Gives every blob whose hash is not in `live` an expiry (if it has none
    /// yet); returns how many were given one.
    pub async fn expire_unreferenced_blobs(
        &self,
        live: &HashSet<String>,
    ) -> Result<u64, StoreError> {
        let blob_prefix = self.keys.blob_prefix();
        let pattern = format!("{}*", escape_glob(&blob_prefix));
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut expiring = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            let mut pipe = redis::pipe();
            let mut page = 0;
            for key in &keys {
                let hash = key.strip_prefix(&blob_prefix).unwrap_or(key);
                if !live.contains(hash) {
                    pipe.cmd("EXPIRE")
                        .arg(key)
                        .arg(UNREFERENCED_BLOB_TTL_SECS)
                        .arg("NX")
                        .ignore();
                    page += 1;
                }
            }
            // Only this page's commands: an empty pipeline is a client error.
            if page > 0 {
                pipe.query_async::<()>(&mut conn).await?;
                expiring += page;
            }
            if next == 0 {
                return Ok(expiring);
            }
            cursor = next;
        }
    }
}

/// Escapes glob metacharacters of a SCAN MATCH pattern.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

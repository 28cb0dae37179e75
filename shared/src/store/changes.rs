//! The change stream: one record per applied change, in application order,
//! so a reader that holds the index at generation G can move to the latest
//! generation without reading the whole index again.

use std::collections::HashMap;

use super::{ModuleStore, StoreError, StoreVersion};

/// A position in the change stream (opaque to callers; the start by
/// default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeCursor(pub(super) String);

impl Default for ChangeCursor {
    fn default() -> Self {
        ChangeCursor("0-0".to_owned())
    }
}

/// One applied change: `path` now has `sha256`, or was deleted (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub generation: u64,
    pub path: String,
    pub sha256: Option<String>,
}

/// The changes after a version, contiguous, and where they end.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub changes: Vec<Change>,
    pub cursor: ChangeCursor,
}

/// One stream record: id and fields (`gen`, `path`, `sha256` | `deleted`).
type StreamEntry = (String, HashMap<String, String>);

impl ModuleStore {
    /// Every change after `since`, read from `cursor` on (the position that
    /// came with `since`), in order and without gaps. `None` when the stream
    /// cannot bring `since` up to date — the store was replaced (new id),
    /// records were trimmed past it, or one is unreadable — so the caller
    /// must load the whole index instead.
    pub async fn changes_since(
        &self,
        since: &StoreVersion,
        cursor: &ChangeCursor,
    ) -> Result<Option<ChangeBatch>, StoreError> {
        let mut conn = self.conn.clone();
        let (id, entries): (Option<String>, Vec<StreamEntry>) = redis::pipe()
            .cmd("GET")
            .arg(self.keys.store_id())
            .cmd("XRANGE")
            .arg(self.keys.changes())
            .arg(format!("({}", cursor.0))
            .arg("+")
            .query_async(&mut conn)
            .await?;
        if id.as_deref() != Some(since.id.as_str()) {
            return Ok(None);
        }
        let mut batch = ChangeBatch {
            changes: Vec::new(),
            cursor: cursor.clone(),
        };
        let mut expected = since.generation + 1;
        for (stream_id, mut fields) in entries {
            let generation: u64 = fields.get("gen").and_then(|g| g.parse().ok()).unwrap_or(0);
            if generation < expected {
                continue;
            }
            if generation > expected {
                return Ok(None); // a gap: records were trimmed
            }
            let Some(path) = fields.remove("path") else {
                return Ok(None);
            };
            batch.changes.push(Change {
                generation,
                path,
                sha256: fields.remove("sha256"),
            });
            batch.cursor = ChangeCursor(stream_id);
            expected += 1;
        }
        Ok(Some(batch))
    }
}

//! Workflow lookups of `POST /api/executions`, remembered per store
//! version, so a run of a known workflow costs no PostgreSQL read.
//!
//! Every write that changes the `workflows` table goes through
//! `Workspace::{write, delete, rename}`, which moves the store version
//! (`{p}:modules:gen`, and a new store id if Redis lost its data) once the
//! PostgreSQL transaction committed. An entry is used only while the
//! version is the one it was found at, so a lookup is never older than the
//! version the job is then pinned to: the worker would see no newer
//! workspace either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use runeflow_shared::entities::workflow;
use runeflow_shared::store::StoreVersion;

/// Past this many references the cache starts again (a bound, not an LRU:
/// a deployment rarely runs more distinct workflows).
const MAX_ENTRIES: usize = 4096;

/// References (`name` or `path::function`) that resolved to one workflow.
#[derive(Clone, Default)]
pub struct WorkflowCache {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Default)]
struct Entries {
    version: StoreVersion,
    found: HashMap<String, Arc<workflow::Model>>,
}

impl WorkflowCache {
    /// The workflow `reference` resolved to, with the version it was found
    /// at; the caller uses it only if the store is still at that version.
    pub fn get(&self, reference: &str) -> Option<(StoreVersion, Arc<workflow::Model>)> {
        let entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let found = entries.found.get(reference)?.clone();
        Some((entries.version.clone(), found))
    }

    /// Remembers a lookup made at `version`: found in PostgreSQL after
    /// `version` was read, so it is at least that new. A newer version
    /// drops every older entry.
    pub fn put(&self, version: &StoreVersion, reference: &str, found: Arc<workflow::Model>) {
        let mut entries = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if entries.version != *version {
            entries.version = version.clone();
            entries.found.clear();
        }
        if entries.found.len() >= MAX_ENTRIES {
            entries.found.clear();
        }
        entries.found.insert(reference.to_owned(), found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: &str, generation: u64) -> StoreVersion {
        StoreVersion {
            id: id.to_owned(),
            generation,
        }
    }

    fn flow(name: &str) -> Arc<workflow::Model> {
        Arc::new(workflow::Model {
            id: 1,
            path: format!("flows/{name}.py"),
            name: name.to_owned(),
            function_name: name.to_owned(),
            kind: "workflow".to_owned(),
            description: None,
            parameters: serde_json::json!([]),
            timeout_seconds: None,
            is_async: false,
            line: 1,
            settings: serde_json::json!({}),
            updated_at: chrono::Utc::now().fixed_offset(),
        })
    }

    #[test]
    fn entries_carry_their_version_and_a_new_version_drops_them() {
        let cache = WorkflowCache::default();
        assert!(cache.get("hello").is_none());
        cache.put(&version("a", 1), "hello", flow("hello"));
        let (at, found) = cache.get("hello").expect("cached");
        assert_eq!((at, found.name.as_str()), (version("a", 1), "hello"));

        cache.put(&version("a", 2), "other", flow("other"));
        assert!(cache.get("hello").is_none(), "found at generation 1 only");
        assert_eq!(cache.get("other").map(|(v, _)| v), Some(version("a", 2)));
        // A new store id (Redis lost its data) is a new version too.
        cache.put(&version("b", 2), "hello", flow("hello"));
        assert!(cache.get("other").is_none());
    }
}

//! The worker's in-memory mirror of the module index.
//!
//! A job carries the store version the API saw; the mirror catches up to at
//! least that version (one Redis round trip, only when behind), then hands
//! the execution an immutable [`IndexSnapshot`], so every import of one
//! execution sees one version of the workspace, and a miss on a name that is
//! not a workspace top-level name costs nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use runeflow_shared::path::is_identifier;
use runeflow_shared::protocol::{DirEntry, ModuleKind};
use runeflow_shared::store::{ChangeCursor, ModuleStore, StoreError, StoreVersion};
use runeflow_shared::workspace::{SyncError, rebuild, reconcile};
use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rebuilding the module store: {0}")]
    Rebuild(#[source] SyncError),
    #[error("the index is still incomplete after a rebuild")]
    StillIncomplete,
}

/// One version of the workspace index: path → sha256, plus its folders.
#[derive(Debug, Clone, Default)]
pub struct IndexSnapshot {
    pub version: StoreVersion,
    files: HashMap<String, String>,
    /// Folder → number of live files below it (any depth).
    dirs: HashMap<String, u32>,
    /// `top_level()`, computed once per version (every `run` sends it).
    top_level: std::sync::OnceLock<Vec<String>>,
}

/// What a dotted name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub kind: ModuleKind,
    pub path: String,
    pub sha256: Option<String>,
}

impl IndexSnapshot {
    fn from_files(version: StoreVersion, files: HashMap<String, String>) -> Self {
        let mut snapshot = IndexSnapshot {
            version,
            files: HashMap::with_capacity(files.len()),
            dirs: HashMap::new(),
            top_level: std::sync::OnceLock::new(),
        };
        for (path, sha) in files {
            snapshot.put(path, sha);
        }
        snapshot
    }

    fn put(&mut self, path: String, sha: String) {
        self.top_level.take();
        if self.files.insert(path.clone(), sha).is_none() {
            for dir in parents(&path) {
                *self.dirs.entry(dir.to_owned()).or_default() += 1;
            }
        }
    }

    fn remove(&mut self, path: &str) {
        self.top_level.take();
        if self.files.remove(path).is_some() {
            for dir in parents(path) {
                if let Some(n) = self.dirs.get_mut(dir) {
                    *n -= 1;
                    if *n == 0 {
                        self.dirs.remove(dir);
                    }
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The sha256 of a live file.
    pub fn sha(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Top-level names an import of workspace code can start with.
    pub fn top_level(&self) -> &[String] {
        self.top_level.get_or_init(|| {
            let mut names = BTreeSet::new();
            for dir in self.dirs.keys().filter(|d| !d.contains('/')) {
                names.insert(dir.clone());
            }
            for path in self.files.keys().filter(|p| !p.contains('/')) {
                if let Some(stem) = path.strip_suffix(".py") {
                    names.insert(stem.to_owned());
                }
            }
            names.into_iter().filter(|n| is_identifier(n)).collect()
        })
    }

    /// Resolves `a.b.c` as a disk finder would: package, then module, then
    /// namespace package.
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        if name.is_empty() || !name.split('.').all(is_identifier) {
            return None;
        }
        let rel = name.replace('.', "/");
        let init = format!("{rel}/__init__.py");
        if let Some(sha) = self.files.get(&init) {
            return Some(Resolved {
                kind: ModuleKind::Package,
                path: init,
                sha256: Some(sha.clone()),
            });
        }
        let module = format!("{rel}.py");
        if let Some(sha) = self.files.get(&module) {
            return Some(Resolved {
                kind: ModuleKind::Module,
                path: module,
                sha256: Some(sha.clone()),
            });
        }
        self.dirs.contains_key(&rel).then_some(Resolved {
            kind: ModuleKind::Namespace,
            path: rel,
            sha256: None,
        })
    }

    /// Entries directly inside `dir` (`""` is the root), sorted by name.
    pub fn list(&self, dir: &str) -> Vec<DirEntry> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut entries: BTreeSet<(String, bool)> = BTreeSet::new();
        for path in self.files.keys() {
            if let Some(rest) = path.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((sub, _)) => entries.insert((sub.to_owned(), true)),
                    None => entries.insert((rest.to_owned(), false)),
                };
            }
        }
        entries
            .into_iter()
            .map(|(name, is_dir)| DirEntry { name, is_dir })
            .collect()
    }
}

/// `a/b/c.py` → `a`, `a/b`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

struct MirrorState {
    snapshot: Arc<IndexSnapshot>,
    /// Where the change stream stood at the snapshot's version.
    cursor: ChangeCursor,
    loaded: bool,
    /// Whether this process reconciled the store with PostgreSQL yet.
    reconciled: bool,
}

/// Keeps an up-to-date index in memory; cheap to share.
pub struct IndexMirror {
    store: ModuleStore,
    db: DatabaseConnection,
    state: Mutex<MirrorState>,
}

impl IndexMirror {
    pub fn new(store: ModuleStore, db: DatabaseConnection) -> Self {
        IndexMirror {
            store,
            db,
            state: Mutex::new(MirrorState {
                snapshot: Arc::new(IndexSnapshot::default()),
                cursor: ChangeCursor::default(),
                loaded: false,
                reconciled: false,
            }),
        }
    }

    /// A snapshot at least as new as `wanted`. No Redis call when the mirror
    /// already is.
    pub async fn snapshot_at_least(
        &self,
        wanted: &StoreVersion,
    ) -> Result<Arc<IndexSnapshot>, IndexError> {
        let mut state = self.state.lock().await;
        let current = &state.snapshot.version;
        let same_store = current.id == wanted.id;
        if state.loaded && same_store && current.generation >= wanted.generation {
            return Ok(state.snapshot.clone());
        }
        // An empty id means "no particular version": catch up to the latest.
        if state.loaded && (same_store || wanted.id.is_empty()) && self.catch_up(&mut state).await?
        {
            return Ok(state.snapshot.clone());
        }
        self.reload(&mut state).await?;
        Ok(state.snapshot.clone())
    }

    /// Applies the changes after the snapshot's version. Returns false when
    /// the stream cannot bring it up to date (trimmed past us, or the store
    /// was replaced): the caller reloads instead.
    async fn catch_up(&self, state: &mut MirrorState) -> Result<bool, IndexError> {
        let Some(batch) = self
            .store
            .changes_since(&state.snapshot.version, &state.cursor)
            .await?
        else {
            return Ok(false);
        };
        if batch.changes.is_empty() {
            return Ok(true);
        }
        let snapshot = Arc::make_mut(&mut state.snapshot);
        for change in batch.changes {
            match change.sha256 {
                Some(sha) => snapshot.put(change.path, sha),
                None => snapshot.remove(&change.path),
            }
            snapshot.version.generation = change.generation;
        }
        state.cursor = batch.cursor;
        Ok(true)
    }

    /// Loads the whole index atomically. The first time in this process it
    /// first publishes any committed write the store is behind on (a writer
    /// that died between its commit and its publish). When Redis lost its
    /// data (no epoch), rebuilds the store from PostgreSQL first.
    async fn reload(&self, state: &mut MirrorState) -> Result<(), IndexError> {
        if !state.reconciled {
            // Best effort: a failure here is retried at the next reload.
            match reconcile(&self.store, &self.db).await {
                Ok(report) => {
                    if report.republished > 0 {
                        tracing::info!(
                            republished = report.republished,
                            "module store was behind PostgreSQL; published the missing writes"
                        );
                    }
                    state.reconciled = true;
                }
                Err(err) => {
                    tracing::warn!(%err, "could not reconcile the module store with PostgreSQL")
                }
            }
        }
        for _ in 0..2 {
            let load = self.store.load_index().await?;
            if !load.complete {
                tracing::warn!(
                    "module index incomplete (Redis lost data?); rebuilding it from PostgreSQL"
                );
                rebuild(&self.store, &self.db)
                    .await
                    .map_err(IndexError::Rebuild)?;
                continue;
            }
            state.cursor = load.cursor;
            state.snapshot = Arc::new(IndexSnapshot::from_files(load.version, load.files));
            state.loaded = true;
            return Ok(());
        }
        Err(IndexError::StillIncomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(paths: &[&str]) -> IndexSnapshot {
        IndexSnapshot::from_files(
            StoreVersion::default(),
            paths
                .iter()
                .map(|p| ((*p).to_owned(), format!("sha-{p}")))
                .collect(),
        )
    }

    #[test]
    fn resolves_like_a_disk_finder() {
        let s = snapshot(&[
            "pkg/__init__.py",
            "pkg.py",
            "mod.py",
            "ns/sub/x.py",
            "data/d.json",
            "my-mod.py",
        ]);
        assert_eq!(s.resolve("pkg").unwrap().kind, ModuleKind::Package);
        assert_eq!(s.resolve("mod").unwrap().path, "mod.py");
        assert_eq!(s.resolve("ns").unwrap().kind, ModuleKind::Namespace);
        assert_eq!(s.resolve("ns.sub").unwrap().path, "ns/sub");
        assert_eq!(s.resolve("ns.sub.x").unwrap().kind, ModuleKind::Module);
        assert!(s.resolve("missing").is_none());
        assert!(s.resolve("ns.sub.x.y").is_none());
        assert!(s.resolve("my-mod").is_none());
        assert!(s.resolve("").is_none());
        assert_eq!(s.top_level(), ["data", "mod", "ns", "pkg"]);
    }

    #[test]
    fn tracks_folders_through_puts_and_removes() {
        let mut s = snapshot(&["a/b/c.py", "a/d.py"]);
        assert!(s.resolve("a.b").is_some());
        s.remove("a/b/c.py");
        assert!(s.resolve("a.b").is_none());
        assert!(s.resolve("a").is_some());
        s.remove("a/d.py");
        assert!(s.resolve("a").is_none());
        assert!(s.is_empty());
        s.put("a/x.txt".into(), "1".into());
        assert_eq!(
            s.list("a"),
            [DirEntry {
                name: "x.txt".into(),
                is_dir: false
            }]
        );
        assert_eq!(
            s.list(""),
            [DirEntry {
                name: "a".into(),
                is_dir: true
            }]
        );
    }
}

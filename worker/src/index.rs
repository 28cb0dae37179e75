//! The worker's in-memory mirror of the module index.
//!
//! A job carries the store version the API saw; the mirror catches up to at
//! least that version (one Redis round trip, only when behind), then hands
//! the execution an immutable [`IndexSnapshot`], so every import of one
//! execution sees one version of the workspace, and a miss on a name that is
//! not a workspace top-level name costs nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use redis::Value;
use runeflow_shared::path::is_identifier;
use runeflow_shared::protocol::{DirEntry, ModuleKind};
use runeflow_shared::store::{ModuleStore, StoreError, StoreVersion, rebuild};
use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rebuilding the module store: {0}")]
    Rebuild(String),
}

impl From<redis::RedisError> for IndexError {
    fn from(e: redis::RedisError) -> Self {
        IndexError::Store(StoreError(e))
    }
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

/// One change record: stream id and its fields (`gen`, `path`, `sha256` | `deleted`).
type StreamEntry = (String, HashMap<String, String>);

struct MirrorState {
    snapshot: Arc<IndexSnapshot>,
    /// Last change-stream entry applied (`0-0` before the first).
    stream_id: String,
    loaded: bool,
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
                stream_id: "0-0".to_owned(),
                loaded: false,
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

    /// Applies change records after the last one seen. Returns false when
    /// the stream cannot bring us up to date (trimmed past us, or the store
    /// was replaced): the caller reloads instead.
    async fn catch_up(&self, state: &mut MirrorState) -> Result<bool, IndexError> {
        let keys = self.store.keys();
        let mut conn = self.store.connection();
        let (id, entries): (Option<String>, Vec<StreamEntry>) = redis::pipe()
            .cmd("GET")
            .arg(keys.store_id())
            .cmd("XRANGE")
            .arg(keys.changes())
            .arg(format!("({}", state.stream_id))
            .arg("+")
            .query_async(&mut conn)
            .await?;
        if id.as_deref() != Some(state.snapshot.version.id.as_str()) {
            return Ok(false);
        }
        let snapshot = Arc::make_mut(&mut state.snapshot);
        let mut expected = snapshot.version.generation + 1;
        for (stream_id, fields) in entries {
            let generation: u64 = fields.get("gen").and_then(|g| g.parse().ok()).unwrap_or(0);
            if generation < expected {
                continue;
            }
            if generation > expected {
                return Ok(false); // a gap: records were trimmed
            }
            let Some(path) = fields.get("path") else {
                return Ok(false);
            };
            match fields.get("sha256") {
                Some(sha) => snapshot.put(path.clone(), sha.clone()),
                None => snapshot.remove(path),
            }
            snapshot.version.generation = generation;
            state.stream_id = stream_id;
            expected += 1;
        }
        Ok(true)
    }

    /// Loads the whole index atomically. When Redis lost its data (no
    /// epoch), rebuilds the store from PostgreSQL first.
    async fn reload(&self, state: &mut MirrorState) -> Result<(), IndexError> {
        for _ in 0..2 {
            let keys = self.store.keys();
            let mut conn = self.store.connection();
            let (id, generation, files, complete, last): (
                Option<String>,
                Option<u64>,
                HashMap<String, String>,
                bool,
                Value,
            ) = redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(keys.store_id())
                .cmd("GET")
                .arg(keys.generation())
                .cmd("HGETALL")
                .arg(keys.index())
                .cmd("EXISTS")
                .arg(keys.epoch())
                .cmd("XREVRANGE")
                .arg(keys.changes())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut conn)
                .await?;
            if !complete {
                tracing::warn!(
                    "module index incomplete (Redis lost data?); rebuilding it from PostgreSQL"
                );
                rebuild(&self.store, &self.db)
                    .await
                    .map_err(|e| IndexError::Rebuild(e.to_string()))?;
                continue;
            }
            let version = StoreVersion {
                id: id.unwrap_or_default(),
                generation: generation.unwrap_or(0),
            };
            state.stream_id = last_stream_id(&last).unwrap_or_else(|| "0-0".to_owned());
            state.snapshot = Arc::new(IndexSnapshot::from_files(version, files));
            state.loaded = true;
            return Ok(());
        }
        Err(IndexError::Rebuild(
            "the index is still incomplete after a rebuild".to_owned(),
        ))
    }
}

fn last_stream_id(reply: &Value) -> Option<String> {
    let Value::Array(entries) = reply else {
        return None;
    };
    let Value::Array(entry) = entries.first()? else {
        return None;
    };
    match entry.first()? {
        Value::BulkString(id) => String::from_utf8(id.clone()).ok(),
        Value::SimpleString(id) => Some(id.clone()),
        _ => None,
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

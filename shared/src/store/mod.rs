//! The module store: workspace sources cached in Redis, addressed by content
//! hash so a cached copy is never stale (see DESIGN.md, "Module store").
//!
//! This is the Redis layer only: it knows nothing of PostgreSQL or of the
//! workspace, and its key layout is private. Callers ask it for what they
//! need (apply mutations, look a path up, the whole index, the changes
//! since a version, a verified blob); the workspace layer on top commits to
//! PostgreSQL first, then [`apply`]s [`Mutation`]s here, and falls back to
//! PostgreSQL where Redis cannot answer.
//!
//! [`apply`]: ModuleStore::apply

mod blobs;
mod changes;
mod index;
mod keys;
mod scripts;

use std::sync::Arc;

use redis::aio::ConnectionManager;

use keys::StoreKeys;

pub use blobs::UNREFERENCED_BLOB_TTL_SECS;
pub use changes::{Change, ChangeBatch, ChangeCursor};
pub use index::IndexLoad;

/// How many change records the capped stream keeps (approximately).
pub const CHANGES_MAXLEN: usize = 10_000;

/// A Redis error while talking to the module store.
#[derive(Debug, thiserror::Error)]
#[error("module store (Redis): {0}")]
pub struct StoreError(#[from] pub redis::RedisError);

/// One change to apply to the store, carrying the PostgreSQL revision that
/// orders it against other changes of the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put {
        path: String,
        revision: i64,
        sha256: String,
        content: Arc<str>,
    },
    Delete {
        path: String,
        revision: i64,
    },
}

impl Mutation {
    pub fn path(&self) -> &str {
        match self {
            Mutation::Put { path, .. } | Mutation::Delete { path, .. } => path,
        }
    }
}

/// Where the store is: generation `generation` of the sequence named `id`.
/// A job carries the version the API saw, and a worker serves it only from
/// an index at least that new (same `id`, generation ≥).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreVersion {
    /// Empty when nothing was ever written to this store.
    pub id: String,
    pub generation: u64,
}

/// What the index says about one path, read in a single round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Indexed, and its blob's content matches its sha256.
    Found { sha256: String, content: String },
    /// Indexed, but the blob is gone (evicted), or is not the content its
    /// hash names (forged): read PostgreSQL.
    BlobMissing { sha256: String },
    /// Not indexed. `complete` is false when the index was not rebuilt since
    /// Redis lost its data, so the path may still exist in PostgreSQL.
    Absent { complete: bool },
}

/// Handle on one deployment's module store (cheap to clone).
#[derive(Clone)]
pub struct ModuleStore {
    conn: ConnectionManager,
    keys: StoreKeys,
}

impl ModuleStore {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        ModuleStore {
            conn,
            keys: StoreKeys::new(prefix),
        }
    }

    /// The deployment's key prefix (`RUNEFLOW_REDIS_PREFIX`), which other
    /// Redis users of the deployment (the queue) name their keys after.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The underlying connection, for callers that share it (the job queue,
    /// readiness checks). The store's own keys are not theirs to touch.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Applies mutations atomically, in order, in one round trip; returns the
    /// store's version afterwards. Safe to repeat: an already applied
    /// revision is a no-op.
    pub async fn apply(&self, mutations: &[Mutation]) -> Result<StoreVersion, StoreError> {
        let mut inv = scripts::APPLY.prepare_invoke();
        inv.key(self.keys.index())
            .key(self.keys.revisions())
            .key(self.keys.generation())
            .key(self.keys.changes())
            .key(self.keys.store_id())
            .arg(self.keys.blob_prefix())
            .arg(CHANGES_MAXLEN);
        for m in mutations {
            match m {
                Mutation::Put {
                    path,
                    revision,
                    sha256,
                    content,
                } => inv
                    .arg("put")
                    .arg(path)
                    .arg(revision)
                    .arg(sha256)
                    .arg(content.as_bytes()),
                Mutation::Delete { path, revision } => {
                    inv.arg("del").arg(path).arg(revision).arg("").arg("")
                }
            };
        }
        let mut conn = self.conn.clone();
        let (id, generation): (String, u64) = inv.invoke_async(&mut conn).await?;
        Ok(StoreVersion { id, generation })
    }

    /// The store's current version, in one round trip.
    pub async fn version(&self) -> Result<StoreVersion, StoreError> {
        let mut conn = self.conn.clone();
        let (id, generation): (Option<String>, Option<u64>) = redis::pipe()
            .cmd("GET")
            .arg(self.keys.store_id())
            .cmd("GET")
            .arg(self.keys.generation())
            .query_async(&mut conn)
            .await?;
        Ok(StoreVersion {
            id: id.unwrap_or_default(),
            generation: generation.unwrap_or(0),
        })
    }

    /// Finds a path's hash and source in one round trip.
    pub async fn lookup(&self, path: &str) -> Result<Lookup, StoreError> {
        let mut inv = scripts::LOOKUP.prepare_invoke();
        inv.key(self.keys.index())
            .key(self.keys.epoch())
            .arg(self.keys.blob_prefix())
            .arg(path);
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> = inv.invoke_async(&mut conn).await?;
        Ok(match decode_lookup(reply).map_err(StoreError)? {
            Lookup::Found { sha256, content } if !blobs::matches(&sha256, &content) => {
                blobs::warn_forged(&sha256);
                Lookup::BlobMissing { sha256 }
            }
            found => found,
        })
    }

    /// The current generation (0 when nothing was ever applied).
    pub async fn generation(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let generation: Option<u64> = redis::cmd("GET")
            .arg(self.keys.generation())
            .query_async(&mut conn)
            .await?;
        Ok(generation.unwrap_or(0))
    }

    /// A round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

fn decode_lookup(reply: Vec<redis::Value>) -> redis::RedisResult<Lookup> {
    use redis::{FromRedisValue, Value};
    let bad = || {
        redis::RedisError::from((
            redis::ErrorKind::Parse,
            "unexpected reply from the lookup script",
        ))
    };
    let mut it = reply.into_iter();
    let status = match it.next() {
        Some(Value::Int(s)) => s,
        _ => return Err(bad()),
    };
    match status {
        0 => {
            let complete = matches!(it.next(), Some(Value::Int(1)));
            Ok(Lookup::Absent { complete })
        }
        1 => Ok(Lookup::BlobMissing {
            sha256: String::from_redis_value(it.next().ok_or_else(bad)?)?,
        }),
        2 => Ok(Lookup::Found {
            sha256: String::from_redis_value(it.next().ok_or_else(bad)?)?,
            content: String::from_redis_value(it.next().ok_or_else(bad)?)?,
        }),
        _ => Err(bad()),
    }
}

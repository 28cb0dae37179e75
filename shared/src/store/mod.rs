//! The module store: workspace sources cached in Redis, addressed by content
//! hash so a cached copy is never stale (see DESIGN.md, "Module store").
//!
//! PostgreSQL is the truth. Writers commit there first and then [`apply`]
//! [`Mutation`]s here; a reader that misses falls back to PostgreSQL through
//! [`read_through`] and repairs what Redis lost.
//!
//! [`apply`]: ModuleStore::apply

mod keys;
mod publisher;
mod read_through;
mod rebuild;
mod scripts;

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::ConnectionManager;

pub use keys::StoreKeys;
pub use publisher::Publisher;
pub use read_through::{ModuleSource, ReadThroughError, read_through};
pub use rebuild::{RebuildReport, rebuild};

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
    Found {
        sha256: String,
        content: String,
    },
    /// Indexed, but the blob is gone (evicted): read PostgreSQL.
    BlobMissing {
        sha256: String,
    },
    /// Not indexed. `complete` is false when the index was not rebuilt since
    /// Redis lost its data, so the path may still exist in PostgreSQL.
    Absent {
        complete: bool,
    },
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

    pub fn keys(&self) -> &StoreKeys {
        &self.keys
    }

    /// The underlying connection, for callers that share it (readiness checks).
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
        decode_lookup(reply).map_err(StoreError)
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

    /// The whole index, path → sha256.
    pub async fn index(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("HGETALL")
            .arg(self.keys.index())
            .query_async(&mut conn)
            .await?)
    }

    /// Whether the index is known complete (a rebuild ran since data loss).
    pub async fn is_complete(&self) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("EXISTS")
            .arg(self.keys.epoch())
            .query_async(&mut conn)
            .await?)
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

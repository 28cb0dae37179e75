//! The Redis key layout of the module store (see DESIGN.md, "Module store").

/// Key names under one deployment's prefix.
#[derive(Debug, Clone)]
pub struct StoreKeys {
    prefix: String,
}

impl StoreKeys {
    pub fn new(prefix: &str) -> Self {
        StoreKeys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}:blob:` — followed by a sha256 hex; the value is the file's source.
    pub fn blob_prefix(&self) -> String {
        format!("{}:blob:", self.prefix)
    }

    pub fn blob(&self, sha256: &str) -> String {
        format!("{}:blob:{sha256}", self.prefix)
    }

    /// HASH path → sha256 of every live file.
    pub fn index(&self) -> String {
        format!("{}:modules", self.prefix)
    }

    /// HASH path → revision of the last mutation applied (deletions included),
    /// so an older write arriving late cannot overwrite a newer one.
    pub fn revisions(&self) -> String {
        format!("{}:modules:rev", self.prefix)
    }

    /// Counter bumped once per applied change, in application order.
    pub fn generation(&self) -> String {
        format!("{}:modules:gen", self.prefix)
    }

    /// Identity of this store's generation sequence (see `scripts::APPLY`).
    pub fn store_id(&self) -> String {
        format!("{}:modules:id", self.prefix)
    }

    /// Capped STREAM of `{gen, path, sha256 | deleted}`.
    pub fn changes(&self) -> String {
        format!("{}:modules:changes", self.prefix)
    }

    /// Set by a full rebuild. Absent means the index may be incomplete (Redis
    /// was flushed or lost its data), so a miss must be checked in PostgreSQL.
    pub fn epoch(&self) -> String {
        format!("{}:modules:epoch", self.prefix)
    }
}

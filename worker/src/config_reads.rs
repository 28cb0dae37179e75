//! Serving a child's `config` and `secret` requests: read the entry from
//! PostgreSQL when asked (noting its name on the execution), open a secret
//! with RUNEFLOW_SECRET_KEY, and keep the plaintexts handed out for this
//! execution only, so [`crate::redact`] can mask them in what it leaves.
//! Nothing is cached across executions.

use std::sync::Arc;

use runeflow_shared::config_entries::{self, Stored, check_key};
use runeflow_shared::secrets::{SecretKey, open};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::redact::Redactor;

/// Reads config for every execution of a worker.
pub struct ConfigReader {
    db: DatabaseConnection,
    key: Option<Arc<SecretKey>>,
}

/// What one execution read that must not outlive it: the secret values
/// (wiped on drop), for redaction.
#[derive(Default)]
pub struct Reads {
    pub secrets: Vec<Zeroizing<String>>,
}

impl Reads {
    /// Masks every form of the secrets read so far.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.iter().map(|s| s.as_str()))
    }
}

impl ConfigReader {
    pub fn new(db: DatabaseConnection, key: Option<SecretKey>) -> Self {
        ConfigReader {
            db,
            key: key.map(Arc::new),
        }
    }

    /// The reply to `{"op":"config","key":…}`: `{"found":true,"value":…}`,
    /// `{"found":false}` (with `"secret":true` when the key is a secret),
    /// or `{"error":…}`.
    pub async fn config(&self, execution: &str, key: &str) -> Value {
        match self.read(execution, key, false).await {
            Ok(Some(Stored::Plain(value))) => json!({"found": true, "value": value}),
            Ok(Some(Stored::Secret(_))) => json!({"found": false, "secret": true}),
            Ok(None) => json!({"found": false}),
            Err(message) => json!({"error": message}),
        }
    }

    /// The reply to `{"op":"secret","key":…}`: the opened value (also kept
    /// in `reads`), `{"found":false}` (with `"secret":false` when the key
    /// is plain config), or `{"error":…}`.
    pub async fn secret(&self, execution: &str, key: &str, reads: &mut Reads) -> Value {
        let sealed = match self.read(execution, key, true).await {
            Ok(Some(Stored::Secret(sealed))) => sealed,
            Ok(Some(Stored::Plain(_))) => return json!({"found": false, "secret": false}),
            Ok(None) => return json!({"found": false}),
            Err(message) => return json!({"error": message}),
        };
        let Some(secret_key) = &self.key else {
            return json!({"error": format!(
                "secret '{key}' cannot be read: this worker has no RUNEFLOW_SECRET_KEY"
            )});
        };
        match open(secret_key, key, &sealed) {
            Ok(plaintext) => {
                let reply = json!({"found": true, "value": plaintext.as_str()});
                reads.secrets.push(plaintext);
                reply
            }
            Err(err) => {
                tracing::error!(execution, %err, "a secret did not open");
                json!({"error": err.to_string()})
            }
        }
    }

    async fn read(
        &self,
        execution: &str,
        key: &str,
        secret: bool,
    ) -> Result<Option<Stored>, String> {
        if check_key(key).is_err() {
            return Ok(None);
        }
        let execution: Uuid = execution
            .parse()
            .map_err(|_| format!("execution id '{execution}' is not a UUID"))?;
        config_entries::read_for_execution(&self.db, execution, key, secret)
            .await
            .map_err(|err| {
                tracing::warn!(%execution, key, %err, "reading config failed");
                format!("reading config '{key}' failed: the database is unavailable")
            })
    }
}

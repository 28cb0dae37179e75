//! `Idempotency-Key`: which execution a key created, per scope
//! (`executions` or `endpoint:<name>`), for 24 h. The key row is inserted
//! in the transaction that inserts the execution, so two racing requests
//! with one key create one execution: the second insert waits on the
//! primary key until the first commits, then finds the row taken.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a key names its execution; an older row is ignored, replaced
/// by a new claim and purged.
pub const WINDOW_HOURS: i64 = 24;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// Scope of `POST /api/executions`.
pub const EXECUTIONS_SCOPE: &str = "executions";

/// Scope of one HTTP endpoint's keys.
pub fn endpoint_scope(workflow: &str) -> String {
    format!("endpoint:{workflow}")
}

/// Why a presented key is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidKey {
    #[error("Idempotency-Key is empty")]
    Empty,
    #[error("Idempotency-Key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    #[error("Idempotency-Key must be printable ASCII (0x20-0x7E)")]
    NotPrintable,
}

/// Checks a key: 1..=255 printable ASCII characters.
pub fn check_key(key: &str) -> Result<(), InvalidKey> {
    if key.is_empty() {
        Err(InvalidKey::Empty)
    } else if key.len() > MAX_KEY_LEN {
        Err(InvalidKey::TooLong)
    } else if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        Err(InvalidKey::NotPrintable)
    } else {
        Ok(())
    }
}

/// sha256 hex of the canonical request (`workflow` and `parameters`,
/// object keys sorted, `null` parameters as `{}`), so the same request
/// written with its keys in another order hashes the same.
pub fn request_hash(workflow: &str, parameters: &serde_json::Value) -> String {
    let parameters = match parameters {
        serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
        other => canonical(other),
    };
    let body = serde_json::json!([workflow, parameters]);
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// `value` with every object's keys inserted in sorted order.
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

/// A live key's row.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Recorded {
    pub execution_id: Uuid,
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
}

/// The execution `key` created in `scope` within the window, if any.
pub async fn find(
    db: &impl ConnectionTrait,
    scope: &str,
    key: &str,
) -> Result<Option<Recorded>, DbErr> {
    Recorded::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT execution_id, request_hash, created_at FROM idempotency_keys
             WHERE scope = $1 AND key = $2
               AND created_at > now() - interval '{WINDOW_HOURS} hours'"
        ),
        [scope.into(), key.into()],
    ))
    .one(db)
    .await
}

/// Claims `key` in `scope` for `execution_id` (inserted earlier in the
/// same transaction): true when this call took it, false when a live row
/// holds it (the caller rolls back and reads that row). A row past the
/// window is taken over. While another transaction's uncommitted insert
/// holds the key, PostgreSQL makes this wait for its outcome.
pub async fn claim(
    db: &impl ConnectionTrait,
    scope: &str,
    key: &str,
    request_hash: &str,
    execution_id: Uuid,
) -> Result<bool, DbErr> {
    let sql = format!(
        "INSERT INTO idempotency_keys (key, scope, request_hash, execution_id, created_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (scope, key) DO UPDATE
             SET request_hash = EXCLUDED.request_hash, execution_id = EXCLUDED.execution_id,
                 created_at = EXCLUDED.created_at
             WHERE idempotency_keys.created_at <= now() - interval '{WINDOW_HOURS} hours'"
    );
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                key.into(),
                scope.into(),
                request_hash.into(),
                execution_id.into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes keys past the window; returns how many.
pub async fn purge_expired(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let done = db
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "DELETE FROM idempotency_keys
                 WHERE created_at <= now() - interval '{WINDOW_HOURS} hours'"
            ),
        ))
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_printable_ascii_up_to_255() {
        assert_eq!(check_key("order-42 retry"), Ok(()));
        assert_eq!(check_key(&"k".repeat(255)), Ok(()));
        assert_eq!(check_key(&"k".repeat(256)), Err(InvalidKey::TooLong));
        assert_eq!(check_key(""), Err(InvalidKey::Empty));
        assert_eq!(check_key("tab\there"), Err(InvalidKey::NotPrintable));
        assert_eq!(check_key("café"), Err(InvalidKey::NotPrintable));
    }

    #[test]
    fn the_hash_ignores_key_order_but_not_values() {
        let a = serde_json::json!({"a": 1, "b": {"y": [1, {"q": 2, "p": 3}], "x": null}});
        let b = serde_json::json!({"b": {"x": null, "y": [1, {"p": 3, "q": 2}]}, "a": 1});
        assert_eq!(request_hash("wf", &a), request_hash("wf", &b));
        assert_ne!(request_hash("wf", &a), request_hash("other", &a));
        let c = serde_json::json!({"a": 2, "b": {"x": null, "y": [1, {"p": 3, "q": 2}]}});
        assert_ne!(request_hash("wf", &a), request_hash("wf", &c));
        assert_eq!(
            request_hash("wf", &serde_json::Value::Null),
            request_hash("wf", &serde_json::json!({}))
        );
    }
}

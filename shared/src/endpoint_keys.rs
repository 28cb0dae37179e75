//! Per-workflow endpoint keys: webhook senders cannot set a bearer token,
//! so `POST /api/endpoints/{name}` also accepts `X-Runeflow-Key` with a
//! live key of that workflow. A key is shown once at creation; only its
//! sha256 is stored, and a lookup is by that hash (so no comparison of
//! secrets happens in Rust). Every statement on `endpoint_keys` is here.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use serde::Serialize;
use uuid::Uuid;

use crate::hash::content_hash;

/// What every key starts with, so a leaked one is recognisable.
pub const PREFIX: &str = "rfk_";

/// A new random key: [`PREFIX`] and 32 random bytes in hex.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// The stored form of `key`.
pub fn key_hash(key: &str) -> String {
    content_hash(key.as_bytes())
}

/// A key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, FromQueryResult, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: Uuid,
    pub workflow: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, workflow_name AS workflow, name, created_at, last_used_at, revoked_at";

/// Stores a key for `workflow` (its hash only) and returns its row.
pub async fn insert(
    db: &impl ConnectionTrait,
    workflow: &str,
    name: &str,
    key: &str,
) -> Result<KeyInfo, DbErr> {
    let row = KeyInfo::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "INSERT INTO endpoint_keys (id, workflow_name, name, key_hash, created_at)
             VALUES ($1, $2, $3, $4, now()) RETURNING {COLUMNS}"
        ),
        [
            Uuid::now_v7().into(),
            workflow.into(),
            name.into(),
            key_hash(key).into(),
        ],
    ))
    .one(db)
    .await?;
    row.ok_or_else(|| DbErr::Custom("INSERT … RETURNING returned no row".to_owned()))
}

/// `workflow`'s keys, oldest first, revoked ones included.
pub async fn list(db: &impl ConnectionTrait, workflow: &str) -> Result<Vec<KeyInfo>, DbErr> {
    KeyInfo::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT {COLUMNS} FROM endpoint_keys WHERE workflow_name = $1 ORDER BY created_at, id"
        ),
        [workflow.into()],
    ))
    .all(db)
    .await
}

/// Revokes key `id` of `workflow` (a second revoke keeps the first time):
/// false when `workflow` has no such key.
pub async fn revoke(db: &impl ConnectionTrait, workflow: &str, id: Uuid) -> Result<bool, DbErr> {
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE endpoint_keys SET revoked_at = COALESCE(revoked_at, now())
             WHERE id = $1 AND workflow_name = $2",
            [id.into(), workflow.into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The name of `key` when it is a live (unrevoked) key of `workflow` (for
/// the audit log); notes its use.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    workflow: &str,
    key: &str,
) -> Result<Option<String>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE endpoint_keys SET last_used_at = now()
             WHERE key_hash = $1 AND workflow_name = $2 AND revoked_at IS NULL
             RETURNING name",
            [key_hash(key).into(), workflow.into()],
        ))
        .await?;
    row.map(|row| row.try_get::<String>("", "name")).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_hex_and_hashed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert_eq!(key_hash(&a).len(), 64);
        assert_ne!(key_hash(&a), a);
    }
}

//! Config entries and secrets for workflows (`config_entries`). A plain
//! entry keeps its JSON value; a secret only its sealed form
//! ([`crate::secrets`]). Reads for an execution also record the entry's
//! name on the execution (`config_read`). Every statement on the table is
//! here.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement,
    TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::audit;
use crate::secrets::{OpenError, SealError, Sealed, SecretKey, open, seal};

/// Longest key, in characters (the table's CHECK says the same).
pub const MAX_KEY_CHARS: usize = 128;

/// A key that the table would refuse.
#[derive(Debug, thiserror::Error)]
#[error(
    "config key '{0}' is invalid: use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or '_'"
)]
pub struct InvalidKey(pub String);

/// Checks `key` against the table's rule (`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`).
pub fn check_key(key: &str) -> Result<(), InvalidKey> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && key.len() <= MAX_KEY_CHARS {
        Ok(())
    } else {
        // Shown back to the client: cut, so an error stays short.
        Err(InvalidKey(key.chars().take(MAX_KEY_CHARS).collect()))
    }
}

/// An entry as listed: never a value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntryInfo {
    pub key: String,
    pub secret: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an entry holds.
#[derive(Debug, Clone)]
pub enum Stored {
    Plain(serde_json::Value),
    Secret(Sealed),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

#[derive(FromQueryResult)]
struct InfoRow {
    key: String,
    secret: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<InfoRow> for EntryInfo {
    fn from(row: InfoRow) -> Self {
        EntryInfo {
            key: row.key,
            secret: row.secret,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(FromQueryResult)]
struct ValueRow {
    key: String,
    secret: bool,
    value: Option<serde_json::Value>,
    ciphertext: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    key_id: Option<String>,
}

impl ValueRow {
    fn stored(self) -> Stored {
        match (self.secret, self.ciphertext, self.nonce, self.key_id) {
            (true, Some(ciphertext), Some(nonce), Some(key_id)) => Stored::Secret(Sealed {
                ciphertext,
                nonce,
                key_id,
            }),
            // The table's CHECK keeps a secret's three columns together.
            (true, ..) => Stored::Secret(Sealed {
                ciphertext: Vec::new(),
                nonce: Vec::new(),
                key_id: String::new(),
            }),
            (false, ..) => Stored::Plain(self.value.unwrap_or(serde_json::Value::Null)),
        }
    }
}

const INFO: &str = "key, secret, created_at, updated_at";
const VALUE: &str = "key, secret, value, ciphertext, nonce, key_id";

/// Why a value was not stored.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// A plain value may not replace a secret (it would show the new value
    /// where a secret's never was): delete the secret first.
    #[error("'{0}' is a secret: delete it first to store a plain value under that key")]
    IsSecret(String),
    /// Other secrets are sealed with another key: this process's key is not
    /// the deployment's any more (`rotate-key` ran since it started).
    #[error(
        "stored secrets are sealed with key {stored}, but this process has key {given}: restart it with the current RUNEFLOW_SECRET_KEY"
    )]
    OtherKey { given: String, stored: String },
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Sets `key` to a plain value; refused over a secret.
pub async fn put_plain(
    db: &impl ConnectionTrait,
    key: &str,
    value: &serde_json::Value,
) -> Result<EntryInfo, PutError> {
    upsert(
        db,
        key,
        None,
        [
            value.clone().into(),
            None::<Vec<u8>>.into(),
            None::<Vec<u8>>.into(),
            None::<String>.into(),
        ],
    )
    .await
}

/// Seals `plaintext` under `secret_key` and stores it as secret `key`;
/// refused while other secrets are sealed with another key.
pub async fn put_secret(
    db: &impl ConnectionTrait,
    secret_key: &SecretKey,
    key: &str,
    plaintext: &str,
) -> Result<EntryInfo, PutError> {
    let sealed = seal(secret_key, key, plaintext)?;
    upsert(
        db,
        key,
        Some(&sealed.key_id),
        [
            None::<serde_json::Value>.into(),
            sealed.ciphertext.into(),
            sealed.nonce.into(),
            sealed.key_id.clone().into(),
        ],
    )
    .await
}

/// One statement, so a rotation (which locks the table) is either wholly
/// before it or wholly after it.
async fn upsert(
    db: &impl ConnectionTrait,
    key: &str,
    sealed_with: Option<&str>,
    columns: [sea_orm::Value; 4],
) -> Result<EntryInfo, PutError> {
    let [value, ciphertext, nonce, key_id] = columns;
    let secret = sealed_with.is_some();
    let row = InfoRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "INSERT INTO config_entries (key, secret, value, ciphertext, nonce, key_id)
             SELECT $1, $2, $3, $4, $5, $6
             WHERE NOT EXISTS (SELECT 1 FROM config_entries
                               WHERE $2 AND secret AND key_id <> $6)
               AND NOT EXISTS (SELECT 1 FROM config_entries
                               WHERE NOT $2 AND key = $1 AND secret)
             ON CONFLICT (key) DO UPDATE SET secret = EXCLUDED.secret, value = EXCLUDED.value,
                 ciphertext = EXCLUDED.ciphertext, nonce = EXCLUDED.nonce,
                 key_id = EXCLUDED.key_id, updated_at = now()
             RETURNING {INFO}"
        ),
        [key.into(), secret.into(), value, ciphertext, nonce, key_id],
    ))
    .one(db)
    .await?;
    if let Some(row) = row {
        return Ok(row.into());
    }
    match sealed_with {
        None => Err(PutError::IsSecret(key.to_owned())),
        Some(given) => {
            let stored = secret_key_ids(db)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| id != given)
                .collect::<Vec<_>>()
                .join(", ");
            Err(PutError::OtherKey {
                given: given.to_owned(),
                stored,
            })
        }
    }
}

/// Every entry, by key.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<EntryInfo>, DbErr> {
    let rows = InfoRow::find_by_statement(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT {INFO} FROM config_entries ORDER BY key"),
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(EntryInfo::from).collect())
}

/// Entry `key`, with its value when it is plain (a secret's stays sealed).
pub async fn get(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<(EntryInfo, Stored)>, DbErr> {
    // One row, read as both of its views.
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT {INFO}, value, ciphertext, nonce, key_id FROM config_entries WHERE key = $1"
            ),
            [key.into()],
        ))
        .await?;
    row.map(|row| {
        let info = InfoRow::from_query_result(&row, "")?.into();
        let stored = ValueRow::from_query_result(&row, "")?.stored();
        Ok((info, stored))
    })
    .transpose()
}

/// Deletes entry `key`; whether it existed.
pub async fn delete(db: &impl ConnectionTrait, key: &str) -> Result<bool, DbErr> {
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM config_entries WHERE key = $1",
            [key.into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Entry `key` for execution `execution`. When it is of the kind asked
/// for (`secret` or plain), its name is noted in the execution's
/// `config_read` (once), in the same statement.
pub async fn read_for_execution(
    db: &impl ConnectionTrait,
    execution: Uuid,
    key: &str,
    secret: bool,
) -> Result<Option<Stored>, DbErr> {
    let row = ValueRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "WITH entry AS (SELECT {VALUE} FROM config_entries WHERE key = $2),
                  noted AS (
                      UPDATE executions SET config_read = config_read || jsonb_build_array($2::text)
                      WHERE id = $1 AND EXISTS (SELECT 1 FROM entry WHERE secret = $3)
                        AND NOT config_read @> jsonb_build_array($2::text))
             SELECT {VALUE} FROM entry"
        ),
        [execution.into(), key.into(), secret.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map(ValueRow::stored))
}

/// How many secrets each key id sealed (to check a key before starting).
pub async fn secret_key_ids(db: &impl ConnectionTrait) -> Result<Vec<(String, i64)>, DbErr> {
    #[derive(FromQueryResult)]
    struct Count {
        key_id: String,
        n: i64,
    }
    let rows = Count::find_by_statement(Statement::from_string(
        DbBackend::Postgres,
        "SELECT key_id, count(*) AS n FROM config_entries WHERE secret GROUP BY key_id ORDER BY key_id",
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|c| (c.key_id, c.n)).collect())
}

/// Why the key a process was given does not fit the stored secrets.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "{count} secret(s) are stored but RUNEFLOW_SECRET_KEY is not set: set it to the key they were sealed with (key id {ids})"
    )]
    Missing { count: i64, ids: String },
    #[error(
        "RUNEFLOW_SECRET_KEY is key {given}, but {count} secret(s) are sealed with key {ids}: give the key they were sealed with (or finish `runeflow secrets rotate-key`)"
    )]
    Mismatch {
        given: String,
        count: i64,
        ids: String,
    },
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// Checks that `key` opens every stored secret (by key id): no secrets,
/// or all sealed with `key`. Run by `init`, the API and the worker at
/// start-up, so a missing or wrong key stops a deployment before any
/// workflow fails on it.
pub async fn check_secret_key(
    db: &impl ConnectionTrait,
    key: Option<&SecretKey>,
) -> Result<(), KeyCheckError> {
    let ids = secret_key_ids(db).await?;
    let given = key.map(SecretKey::id);
    let others: Vec<&(String, i64)> = ids
        .iter()
        .filter(|(id, _)| Some(id) != given.as_ref())
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let count = others.iter().map(|(_, n)| n).sum();
    let ids = others
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Err(match given {
        None => KeyCheckError::Missing { count, ids },
        Some(given) => KeyCheckError::Mismatch { given, count, ids },
    })
}

/// The audit action of a key rotation.
pub const ROTATE_ACTION: &str = "secrets.rotate_key";

/// Re-seals every secret under `new`, in one transaction (all or none)
/// that also records the rotation in the audit log (actor `cli`). Every secret
/// must open with `old`, so a wrong current key changes nothing. The table
/// is locked against writes meanwhile, so a secret written by a process
/// still on `old` lands wholly before (and is re-sealed) or after (and is
/// refused, see [`PutError::OtherKey`]). Returns how many were re-sealed.
pub async fn rotate(
    db: &DatabaseConnection,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<usize, ConfigError> {
    let txn = db.begin().await?;
    txn.execute_unprepared("LOCK TABLE config_entries IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let rows = ValueRow::find_by_statement(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT {VALUE} FROM config_entries WHERE secret ORDER BY key FOR UPDATE"),
    ))
    .all(&txn)
    .await?;
    let mut resealed = 0;
    for row in rows {
        let key = row.key.clone();
        let Stored::Secret(sealed) = row.stored() else {
            continue;
        };
        let plaintext = open(old, &key, &sealed)?;
        let again = seal(new, &key, &plaintext)?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE config_entries SET ciphertext = $2, nonce = $3, key_id = $4 WHERE key = $1",
            [
                key.into(),
                again.ciphertext.into(),
                again.nonce.into(),
                again.key_id.into(),
            ],
        ))
        .await?;
        resealed += 1;
    }
    let entry = audit::Entry::cli(
        ROTATE_ACTION,
        format!("key {} -> {} ({resealed} secrets)", old.id(), new.id()),
        audit::Outcome::Ok,
    );
    audit::record(&txn, &entry).await?;
    txn.commit().await?;
    Ok(resealed)
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_follow_the_table_rule() {
        for good in ["API_KEY", "_x", "stripe.api-key", "a1", &"k".repeat(128)] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "-a",
            "a b",
            "a/b",
            "ключ",
            &"k".repeat(129),
            "a\0",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}

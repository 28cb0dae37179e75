//! Scoped API tokens. `RUNEFLOW_API_TOKEN` is the bootstrap token and has
//! every scope; the others are created through the API with the scopes
//! they need, shown once, and stored as their sha256 only (a lookup is by
//! that hash). A revoked token is refused from its next request on: every
//! request looks it up. Every statement on `api_tokens` is here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::hash::content_hash;

/// What every token starts with, so a leaked one is recognisable.
pub const PREFIX: &str = "rft_";

/// What a token may do. `admin` includes every other scope; the others are
/// independent (a `run` token cannot read).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET routes.
    Read,
    /// Executions, cancel, data providers.
    Run,
    /// Files, git, schedules, endpoint keys.
    Write,
    /// Tokens, config and secrets, the audit log.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Run, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Run => "run",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not one of [`Scope::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown scope '{0}': scopes are read, run, write and admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

/// Who made a request: its token's name and scopes.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `bootstrap` for `RUNEFLOW_API_TOKEN`, else the token's name.
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// The bootstrap token: every scope.
    pub fn bootstrap() -> Self {
        Principal {
            name: "bootstrap".to_owned(),
            scopes: vec![Scope::Admin],
        }
    }

    /// Whether this principal may act with `scope` (`admin` may do all).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// A new random token: [`PREFIX`] and 32 random bytes in hex.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    name: String,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<Row> for TokenInfo {
    fn from(row: Row) -> Self {
        TokenInfo {
            id: row.id,
            name: row.name,
            // Only valid names are ever stored; anything else is dropped.
            scopes: row.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

const COLUMNS: &str = "id, name, scopes, created_at, last_used_at, revoked_at";

/// Stores `token` (its hash) under `name` with `scopes`; returns its row.
pub async fn insert(
    db: &impl ConnectionTrait,
    name: &str,
    scopes: &[Scope],
    token: &str,
) -> Result<TokenInfo, DbErr> {
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let row = Row::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "INSERT INTO api_tokens (id, name, scopes, token_hash, created_at)
             VALUES ($1, $2, $3, $4, now()) RETURNING {COLUMNS}"
        ),
        [
            Uuid::now_v7().into(),
            name.into(),
            scopes.into(),
            content_hash(token.as_bytes()).into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or_else(|| DbErr::RecordNotInserted)?;
    Ok(row.into())
}

/// Every token, newest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<TokenInfo>, DbErr> {
    let rows = Row::find_by_statement(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT {COLUMNS} FROM api_tokens ORDER BY id DESC"),
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(TokenInfo::from).collect())
}

/// Revokes token `id` (a repeat keeps the first time): its row, or `None`.
pub async fn revoke(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<TokenInfo>, DbErr> {
    let row = Row::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now())
             WHERE id = $1 RETURNING {COLUMNS}"
        ),
        [id.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map(TokenInfo::from))
}

/// The live (not revoked) token `presented`, as a principal; marks it
/// used at most once a minute, so a busy token does not write a row
/// version on every request.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &str,
) -> Result<Option<Principal>, DbErr> {
    let Some(row) = Row::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"),
        [content_hash(presented.as_bytes()).into()],
    ))
    .one(db)
    .await?
    else {
        return Ok(None);
    };
    let stale = row
        .last_used_at
        .is_none_or(|at| Utc::now() - at > chrono::Duration::seconds(60));
    if stale {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
            [row.id.into()],
        ))
        .await?;
    }
    let info = TokenInfo::from(row);
    Ok(Some(Principal {
        name: info.name,
        scopes: info.scopes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_admin_allows_everything() {
        assert_eq!("run".parse::<Scope>().unwrap(), Scope::Run);
        assert!("root".parse::<Scope>().is_err());
        let run = Principal {
            name: "ci".into(),
            scopes: vec![Scope::Run],
        };
        assert!(run.allows(Scope::Run) && !run.allows(Scope::Read));
        assert!(Scope::ALL.iter().all(|s| Principal::bootstrap().allows(*s)));
        assert!(generate().starts_with(PREFIX) && generate() != generate());
    }
}

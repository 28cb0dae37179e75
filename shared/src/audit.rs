//! The audit log: who did what to which target, when, and how it ended.
//! `audit_log` is append-only (PostgreSQL refuses UPDATE, DELETE and
//! TRUNCATE on it), so this module only inserts and reads. A target names
//! a thing (a path, a name, an id), never a value a caller sent: callers
//! build it from identifiers only. Every statement on `audit_log` is here.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use serde::Serialize;

/// Longest target stored, in characters (a longer one is cut, marked `…`).
pub const MAX_TARGET_CHARS: usize = 1024;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was done (HTTP 2xx).
    Ok,
    /// A known caller was refused (HTTP 401/403).
    Denied,
    /// Anything else: bad request, not found, conflict, server error.
    Failed,
}

impl Outcome {
    /// The outcome of an HTTP answer with `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Outcome::Ok,
            401 | 403 => Outcome::Denied,
            _ => Outcome::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry {
    /// A token's name, `bootstrap`, or `endpoint-key:<key name>`.
    pub actor: String,
    /// e.g. `file.write`, `execution.run`, `secrets.rotate_key`.
    pub action: String,
    /// The path, name or id acted on (identifiers only, never a value).
    pub target: Option<String>,
    pub outcome: Outcome,
    /// The HTTP status; `None` for an action outside the API (a CLI command).
    pub status: Option<u16>,
    /// When the action was asked for (a request's arrival); `None`: now.
    pub at: Option<DateTime<Utc>>,
}

impl Entry {
    /// An action the CLI took on PostgreSQL directly: actor `cli`, no HTTP
    /// status, recorded now.
    pub fn cli(action: &str, target: String, outcome: Outcome) -> Self {
        Entry {
            actor: "cli".to_owned(),
            action: action.to_owned(),
            target: Some(target),
            outcome,
            status: None,
            at: None,
        }
    }
}

/// A recorded row, as listed.
#[derive(Debug, Clone, Serialize, FromQueryResult, utoipa::ToSchema)]
pub struct Record {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// The HTTP status, or null for an action outside the API.
    pub status: Option<i16>,
}

/// Which rows to list: all conditions given must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// At most this many rows (the newest).
    pub limit: u64,
}

/// Appends `entry`. Text PostgreSQL cannot hold (U+0000) is replaced, and
/// a long target cut, so a strange path cannot make recording fail.
pub async fn record(db: &impl ConnectionTrait, entry: &Entry) -> Result<(), DbErr> {
    let status = entry.status.map(|s| i16::try_from(s).unwrap_or(i16::MAX));
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO audit_log (actor, action, target, outcome, status, at)
         VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()))",
        [
            storable(&entry.actor, MAX_TARGET_CHARS).into(),
            storable(&entry.action, MAX_TARGET_CHARS).into(),
            entry
                .target
                .as_deref()
                .map(|t| storable(t, MAX_TARGET_CHARS))
                .into(),
            entry.outcome.as_str().into(),
            status.into(),
            entry.at.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The rows `filter` selects, newest first.
pub async fn list(db: &impl ConnectionTrait, filter: &Filter) -> Result<Vec<Record>, DbErr> {
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut condition = |sql: &str, value: Value| {
        values.push(value);
        conditions.push(format!("{sql} ${}", values.len()));
    };
    if let Some(since) = filter.since {
        condition("at >=", since.into());
    }
    if let Some(actor) = &filter.actor {
        condition("actor =", actor.clone().into());
    }
    if let Some(action) = &filter.action {
        condition("action =", action.clone().into());
    }
    let wherever = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    values.push(i64::try_from(filter.limit).unwrap_or(i64::MAX).into());
    Record::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "SELECT id, at, actor, action, target, outcome, status FROM audit_log
             {wherever} ORDER BY at DESC, id DESC LIMIT ${}",
            values.len()
        ),
        values,
    ))
    .all(db)
    .await
}

/// `text` without U+0000 and at most `max` characters.
fn storable(text: &str, max: usize) -> String {
    let clean = text.replace('\0', "\u{FFFD}");
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_status() {
        assert_eq!(Outcome::of_status(201), Outcome::Ok);
        assert_eq!(Outcome::of_status(204), Outcome::Ok);
        assert_eq!(Outcome::of_status(403), Outcome::Denied);
        assert_eq!(Outcome::of_status(401), Outcome::Denied);
        assert_eq!(Outcome::of_status(404), Outcome::Failed);
        assert_eq!(Outcome::of_status(500), Outcome::Failed);
    }

    #[test]
    fn targets_are_made_storable() {
        assert_eq!(storable("a\0b", 10), "a\u{FFFD}b");
        let long = storable(&"x".repeat(50), 10);
        assert_eq!(long.chars().count(), 10);
        assert!(long.ends_with('…'));
        assert_eq!(storable("short", 10), "short");
    }
}

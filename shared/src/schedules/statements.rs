//! Every statement on `schedules`.
//!
//! Decorator schedules are derived, never written by hand: [`sync_decorator`]
//! makes the `source = 'decorator'` rows equal to the workflows whose
//! `settings` have a `schedule` (keyed by path and function, so an edit
//! updates the row in place and keeps its `last_tick`, a move or delete
//! drops it and a move creates a fresh one). The scheduler runs it on every
//! pass and the listing before it reads, so no write path needs to know
//! about schedules.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement,
    TransactionTrait, Value,
};
use uuid::Uuid;

/// Where a schedule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `@workflow(schedule=...)`: follows the file.
    Decorator,
    /// `POST /api/schedules`: deleted over the API.
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Decorator => "decorator",
            Source::Api => "api",
        }
    }
}

/// One `schedules` row.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct ScheduleRow {
    pub id: Uuid,
    /// The workflow's name (API: as the client named it, maybe `path::function`).
    pub workflow_name: String,
    /// Decorator schedules: the decorated function (with `source_path`).
    pub function_name: Option<String>,
    pub cron: String,
    pub timezone: String,
    pub parameters: serde_json::Value,
    pub catch_up: bool,
    /// `decorator` | `api`.
    pub source: String,
    pub source_path: Option<String>,
    pub enabled: bool,
    pub last_tick: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ScheduleRow {
    pub fn is_decorator(&self) -> bool {
        self.source == Source::Decorator.as_str()
    }

    /// How the scheduler names the workflow to run: exactly the decorated
    /// row (`path::function`) or what the API client gave.
    pub fn workflow_reference(&self) -> String {
        match (&self.source_path, &self.function_name) {
            (Some(path), Some(function)) if self.is_decorator() => format!("{path}::{function}"),
            _ => self.workflow_name.clone(),
        }
    }

    /// Where tick computation starts: the last tick handled, or creation.
    pub fn ticks_after(&self) -> DateTime<Utc> {
        self.last_tick.unwrap_or(self.created_at)
    }
}

/// Makes the decorator rows match `workflows.settings` (see the module
/// doc). Safe to run from every API process at once: the upsert is keyed by
/// a unique index and takes rows in one order.
pub async fn sync_decorator(db: &DatabaseConnection) -> Result<(), DbErr> {
    const UPSERT: &str = "
        INSERT INTO schedules (id, workflow_name, function_name, cron, timezone, catch_up,
                               source, source_path)
        SELECT DISTINCT ON (w.path, w.function_name)
               gen_random_uuid(), w.name, w.function_name,
               w.settings->'schedule'->>'cron',
               COALESCE(w.settings->'schedule'->>'timezone', 'UTC'),
               COALESCE((w.settings->'schedule'->>'catch_up')::boolean, true),
               'decorator', w.path
        FROM workflows w
        WHERE w.settings ? 'schedule' AND w.kind = 'workflow'
          AND w.settings->'schedule'->>'cron' IS NOT NULL
          -- Rows already in step are left out, so a pass with nothing to
          -- change locks nothing (the upsert would lock every conflicting
          -- row, and another process's pass would then skip it).
          AND NOT EXISTS (
              SELECT 1 FROM schedules s
              WHERE s.source = 'decorator' AND s.source_path = w.path
                AND s.function_name = w.function_name AND s.workflow_name = w.name
                AND s.cron = w.settings->'schedule'->>'cron'
                AND s.timezone = COALESCE(w.settings->'schedule'->>'timezone', 'UTC')
                AND s.catch_up = COALESCE((w.settings->'schedule'->>'catch_up')::boolean, true))
        ORDER BY w.path, w.function_name, w.id DESC
        ON CONFLICT (source_path, function_name) WHERE source = 'decorator'
        DO UPDATE SET workflow_name = EXCLUDED.workflow_name, cron = EXCLUDED.cron,
                      timezone = EXCLUDED.timezone, catch_up = EXCLUDED.catch_up
        WHERE (schedules.workflow_name, schedules.cron, schedules.timezone, schedules.catch_up)
              IS DISTINCT FROM
              (EXCLUDED.workflow_name, EXCLUDED.cron, EXCLUDED.timezone, EXCLUDED.catch_up)";
    const DROP: &str = "
        DELETE FROM schedules s
        WHERE s.source = 'decorator' AND NOT EXISTS (
            SELECT 1 FROM workflows w
            WHERE w.path = s.source_path AND w.function_name = s.function_name
              AND w.kind = 'workflow' AND w.settings ? 'schedule')";
    let txn = db.begin().await?;
    txn.execute_unprepared(UPSERT).await?;
    txn.execute_unprepared(DROP).await?;
    txn.commit().await
}

/// Every schedule, oldest first.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<ScheduleRow>, DbErr> {
    ScheduleRow::find_by_statement(Statement::from_string(
        DbBackend::Postgres,
        "SELECT * FROM schedules ORDER BY created_at, id",
    ))
    .all(db)
    .await
}

/// One schedule.
pub async fn get(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<ScheduleRow>, DbErr> {
    ScheduleRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM schedules WHERE id = $1",
        [id.into()],
    ))
    .one(db)
    .await
}

/// Pauses (`enabled` false) or resumes a schedule, API or decorator (a
/// decorator's sync leaves `enabled` alone, so a pause survives edits of
/// its file). Resuming moves `last_tick` to now: ticks missed while
/// paused are skipped, not caught up. `None` when there is no such
/// schedule.
pub async fn set_enabled(
    db: &impl ConnectionTrait,
    id: Uuid,
    enabled: bool,
) -> Result<Option<ScheduleRow>, DbErr> {
    ScheduleRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE schedules SET enabled = $2,
                last_tick = CASE WHEN $2 AND NOT enabled THEN now() ELSE last_tick END
         WHERE id = $1 RETURNING *",
        [id.into(), enabled.into()],
    ))
    .one(db)
    .await
}

/// What an API schedule is made of (already validated).
#[derive(Debug, Clone)]
pub struct NewApiSchedule {
    pub workflow_name: String,
    pub cron: String,
    pub timezone: String,
    pub parameters: serde_json::Value,
    pub catch_up: bool,
}

/// Inserts an API schedule; its ticks start after now.
pub async fn insert_api(
    db: &impl ConnectionTrait,
    new: &NewApiSchedule,
) -> Result<ScheduleRow, DbErr> {
    ScheduleRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO schedules (id, workflow_name, cron, timezone, parameters, catch_up, source)
         VALUES ($1, $2, $3, $4, $5, $6, 'api') RETURNING *",
        [
            Uuid::now_v7().into(),
            new.workflow_name.clone().into(),
            new.cron.clone().into(),
            new.timezone.clone().into(),
            new.parameters.clone().into(),
            new.catch_up.into(),
        ],
    ))
    .one(db)
    .await?
    .ok_or_else(|| DbErr::Custom("INSERT … RETURNING returned no row".to_owned()))
}

/// The outcome of [`delete_api`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// A decorator schedule: the file owns it.
    FromDecorator,
    Missing,
}

/// Deletes an API schedule; a decorator one is left alone.
pub async fn delete_api(db: &impl ConnectionTrait, id: Uuid) -> Result<Deleted, DbErr> {
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM schedules WHERE id = $1 AND source = 'api'",
            [id.into()],
        ))
        .await?;
    if done.rows_affected() == 1 {
        return Ok(Deleted::Deleted);
    }
    Ok(match get(db, id).await? {
        Some(_) => Deleted::FromDecorator,
        None => Deleted::Missing,
    })
}

/// Locks up to `limit` enabled schedules for this transaction, skipping
/// those another scheduler holds (it is handling them right now).
pub async fn lock_enabled(
    txn: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<ScheduleRow>, DbErr> {
    ScheduleRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT * FROM schedules WHERE enabled ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        [Value::from(i64::try_from(limit).unwrap_or(i64::MAX))],
    ))
    .all(txn)
    .await
}

/// Records that every tick up to `tick` was handled.
pub async fn advance(
    txn: &impl ConnectionTrait,
    id: Uuid,
    tick: DateTime<Utc>,
) -> Result<(), DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE schedules SET last_tick = $2 WHERE id = $1 AND (last_tick IS NULL OR last_tick < $2)",
        [id.into(), tick.fixed_offset().into()],
    ))
    .await?;
    Ok(())
}

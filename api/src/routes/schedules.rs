//! `/api/schedules`: cron schedules of workflows. Decorator schedules
//! (`@workflow(schedule=...)`) are listed here but belong to their file;
//! API schedules are created and deleted here. The scheduler
//! (`crate::scheduler`) enqueues their ticks.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use runeflow_shared::schedule::{DEFAULT_TIMEZONE, Schedule};
use runeflow_shared::schedules::ScheduleRow;
use runeflow_shared::schedules::statements::{self, Deleted, NewApiSchedule};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::AuditNote;
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// How many upcoming run times a schedule shows.
const SHOWN_RUNS: usize = 3;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/schedules", get(list).post(create))
        .route("/api/schedules/{id}", get(show).delete(remove))
        .route("/api/schedules/{id}/pause", post(pause))
        .route("/api/schedules/{id}/resume", post(resume))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// A workflow name, or `<path>::<function>` when names collide.
    pub workflow: String,
    /// Cron expression: 5 fields, 6 with seconds first, or `@daily` etc.
    pub cron: String,
    /// IANA zone the expression is read in (default `UTC`).
    pub timezone: Option<String>,
    /// Parameters of every run, checked like `POST /api/executions`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// After an outage, run the missed ticks once (default true) or skip them.
    pub catch_up: Option<bool>,
}

/// A schedule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: Uuid,
    /// The workflow as the schedule names it.
    pub workflow: String,
    pub cron: String,
    pub timezone: String,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub catch_up: bool,
    /// `decorator` (edit the file to change it) or `api`.
    pub source: String,
    /// Decorator schedules: the file that declares it.
    pub source_path: Option<String>,
    pub enabled: bool,
    /// The newest tick handled (run or skipped).
    pub last_tick: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The next run times (UTC).
    pub next_runs: Vec<DateTime<Utc>>,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(row: ScheduleRow) -> Self {
        let now = Utc::now();
        let next_runs = Schedule::parse(&row.cron, &row.timezone)
            .map(|s| s.next_runs(now, SHOWN_RUNS))
            .unwrap_or_default();
        ScheduleView {
            id: row.id,
            workflow: row.workflow_name,
            cron: row.cron,
            timezone: row.timezone,
            parameters: row.parameters,
            catch_up: row.catch_up,
            source: row.source,
            source_path: row.source_path,
            enabled: row.enabled,
            last_tick: row.last_tick,
            created_at: row.created_at,
            next_runs,
        }
    }
}

/// Schedule a workflow.
#[utoipa::path(post, path = "/api/schedules", tag = "schedules",
    request_body = CreateSchedule,
    responses(
        (status = 201, description = "Created; ticks start after now", body = ScheduleView),
        (status = 400, description = "Malformed body, bad cron expression or unknown time zone", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Ambiguous name; `candidates` lists them", body = ErrorBody),
        (status = 422, description = "Missing, unknown or malformed parameters", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    body: std::result::Result<Json<CreateSchedule>, JsonRejection>,
) -> Result<(StatusCode, AuditNote, Json<ScheduleView>)> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    super::text_value("invalid_body", "workflow", Some(&req.workflow))?;
    super::text_value("invalid_body", "cron", Some(&req.cron))?;
    super::text_value("invalid_body", "timezone", req.timezone.as_deref())?;
    let timezone = req.timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE);
    let schedule = Schedule::parse(&req.cron, timezone)
        .map_err(|e| AppError::bad_request("invalid_schedule", e.to_string()))?;
    let target = super::executions::resolve_workflow(&state, &req.workflow).await?;
    let parameters = super::executions::check_parameters(&target, req.parameters)?;
    let row = statements::insert_api(
        state.db(),
        &NewApiSchedule {
            workflow_name: req.workflow,
            cron: schedule.expression().to_owned(),
            timezone: schedule.timezone().to_owned(),
            parameters,
            catch_up: req.catch_up.unwrap_or(true),
        },
    )
    .await?;
    let view = ScheduleView::from(row);
    let note = AuditNote::target(format!("{} {}", view.workflow, view.id));
    Ok((StatusCode::CREATED, note, Json(view)))
}

/// Every schedule, decorator and API ones, each with its next run times.
#[utoipa::path(get, path = "/api/schedules", tag = "schedules",
    responses((status = 200, description = "Oldest first", body = Vec<ScheduleView>)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<ScheduleView>>> {
    // Read-your-writes: a file just written shows its schedule at once,
    // not only after the scheduler's next pass.
    statements::sync_decorator(state.db()).await?;
    let rows = statements::list(state.db()).await?;
    Ok(Json(rows.into_iter().map(ScheduleView::from).collect()))
}

/// One schedule.
#[utoipa::path(get, path = "/api/schedules/{id}", tag = "schedules",
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>> {
    let id = schedule_id(&id)?;
    statements::sync_decorator(state.db()).await?;
    statements::get(state.db(), id)
        .await?
        .map(|row| Json(row.into()))
        .ok_or_else(|| AppError::NotFound(format!("no schedule {id}")))
}

/// Delete an API schedule. A decorator schedule belongs to its file.
#[utoipa::path(delete, path = "/api/schedules/{id}", tag = "schedules",
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 204, description = "Deleted; no further ticks"),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 409, description = "A decorator schedule: edit or delete its file instead", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    let id = schedule_id(&id)?;
    match statements::delete_api(state.db(), id).await? {
        Deleted::Deleted => Ok(StatusCode::NO_CONTENT),
        Deleted::Missing => Err(AppError::NotFound(format!("no schedule {id}"))),
        Deleted::FromDecorator => Err(AppError::Conflict {
            code: "decorator_schedule",
            message: format!(
                "schedule {id} comes from a @workflow(schedule=...) decorator; \
                 edit or delete its file instead"
            ),
            candidates: None,
        }),
    }
}

/// Pause a schedule (API or decorator): no ticks until it is resumed.
#[utoipa::path(post, path = "/api/schedules/{id}/pause", tag = "schedules",
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "Paused (also when it already was)", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>> {
    set_enabled(&state, &id, false).await
}

/// Resume a paused schedule from now on: ticks missed while it was paused
/// are skipped (whatever `catch_up` says).
#[utoipa::path(post, path = "/api/schedules/{id}/resume", tag = "schedules",
    params(("id" = Uuid, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "Running (also when it already was)", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>> {
    set_enabled(&state, &id, true).await
}

async fn set_enabled(state: &AppState, id: &str, enabled: bool) -> Result<Json<ScheduleView>> {
    let id = schedule_id(id)?;
    statements::sync_decorator(state.db()).await?;
    statements::set_enabled(state.db(), id, enabled)
        .await?
        .map(|row| Json(row.into()))
        .ok_or_else(|| AppError::NotFound(format!("no schedule {id}")))
}

/// A malformed id names no schedule: 404, as for executions.
fn schedule_id(id: &str) -> Result<Uuid> {
    id.parse()
        .map_err(|_| AppError::NotFound(format!("no schedule {id}")))
}

//! `/api/workflows`: workflows and data providers found in the workspace.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, FixedOffset, Utc};
use runeflow_shared::detect::{Parameter, Settings};
use runeflow_shared::entities::workflow;
use runeflow_shared::path::module_name;
use runeflow_shared::workspace::list_workflows;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/workflows", get(list))
        .route("/api/workflows/{name}", get(show))
}

/// A workflow or data provider with its extracted metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowInfo {
    pub name: String,
    pub function: String,
    pub path: String,
    /// Module the function lives in, when importable.
    pub module: Option<String>,
    /// `workflow` or `data_provider`.
    pub kind: String,
    pub description: Option<String>,
    pub parameters: Vec<Parameter>,
    pub timeout_seconds: Option<f64>,
    pub is_async: bool,
    pub line: i32,
    /// What the decorator sets besides the timeout.
    pub settings: SettingsInfo,
}

/// How many upcoming run times a schedule shows.
const SHOWN_RUNS: usize = 3;

/// A workflow's decorator settings. Nothing unset is guessed: `null` means
/// the decorator does not say (no retries, no limit).
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsInfo {
    /// `schedule=`, with `timezone=` and `catch_up=`.
    pub schedule: Option<ScheduleInfo>,
    /// `retries=`: re-runs after a failed attempt.
    pub retries: Option<u32>,
    /// `retry_backoff=`: base delay before the first retry, in seconds.
    pub retry_backoff_seconds: Option<f64>,
    /// `retry_on=`: exception class names that are retried (`null`: any).
    pub retry_on: Option<Vec<String>>,
    /// `endpoint=` (or `endpoint_enabled=`): exposed as an HTTP endpoint.
    pub endpoint: bool,
    /// `max_concurrency=`: most executions running at once (`null`: no limit).
    pub max_concurrency: Option<u32>,
    /// Data providers: how long their options stay cached (default 300; 0: not cached).
    pub cache_ttl_seconds: Option<f64>,
}

/// A cron schedule and its next run times.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleInfo {
    /// Cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// Whether ticks missed during an outage are made up (once).
    pub catch_up: bool,
    /// The next 3 run times, with the zone's UTC offset at each.
    pub next_runs: Vec<DateTime<FixedOffset>>,
}

impl SettingsInfo {
    /// The stored settings as shown, with run times after `now`.
    fn new(settings: Settings, now: DateTime<Utc>) -> Self {
        SettingsInfo {
            schedule: settings.schedule.map(|setting| {
                let next_runs = setting.parse().map_or_else(Vec::new, |schedule| {
                    schedule
                        .next_runs(now, SHOWN_RUNS)
                        .into_iter()
                        .map(|at| schedule.local(at))
                        .collect()
                });
                ScheduleInfo {
                    cron: setting.cron,
                    timezone: setting.timezone,
                    catch_up: setting.catch_up,
                    next_runs,
                }
            }),
            retries: settings.retries,
            retry_backoff_seconds: settings.retry_backoff_seconds,
            retry_on: settings.retry_on,
            endpoint: settings.endpoint.unwrap_or(false),
            max_concurrency: settings.max_concurrency,
            cache_ttl_seconds: settings.cache_ttl_seconds,
        }
    }
}

impl From<workflow::Model> for WorkflowInfo {
    fn from(w: workflow::Model) -> Self {
        WorkflowInfo {
            settings: SettingsInfo::new(Settings::from_json(&w.settings), Utc::now()),
            module: module_name(&w.path),
            parameters: serde_json::from_value(w.parameters).unwrap_or_default(),
            name: w.name,
            function: w.function_name,
            path: w.path,
            kind: w.kind,
            description: w.description,
            timeout_seconds: w.timeout_seconds,
            is_async: w.is_async,
            line: w.line,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowInfo>,
}

/// Every workflow and data provider, by name.
#[utoipa::path(get, path = "/api/workflows", tag = "workflows",
    responses((status = 200, description = "All of them", body = WorkflowList)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WorkflowList>> {
    let rows = list_workflows(state.db(), None).await?;
    Ok(Json(WorkflowList {
        workflows: rows.into_iter().map(WorkflowInfo::from).collect(),
    }))
}

/// One workflow by name.
#[utoipa::path(get, path = "/api/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "Decorator `name=` or function name")),
    responses(
        (status = 200, description = "Found", body = WorkflowInfo),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Several files define this name; `candidates` lists them", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WorkflowInfo>> {
    Ok(Json(find_unique(&state, &name).await?.into()))
}

/// The one workflow called `name`: 404 when none, 409 listing the
/// candidates (as `<path>::<function>` refs) when several files define it.
pub(crate) async fn find_unique(state: &AppState, name: &str) -> Result<workflow::Model> {
    let mut rows = list_workflows(state.db(), Some(name)).await?;
    match rows.len() {
        0 => Err(AppError::NotFound(format!("no workflow named '{name}'"))),
        1 => Ok(rows.remove(0)),
        n => {
            let candidates: Vec<serde_json::Value> = rows
                .iter()
                .map(|w| {
                    serde_json::json!({
                        "path": w.path,
                        "function": w.function_name,
                        "ref": format!("{}::{}", w.path, w.function_name),
                    })
                })
                .collect();
            Err(AppError::Conflict {
                code: "ambiguous_workflow",
                message: format!(
                    "{n} definitions are named '{name}'; refer to one as <path>::<function>"
                ),
                candidates: Some(serde_json::Value::Array(candidates)),
            })
        }
    }
}

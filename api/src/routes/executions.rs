//! `/api/executions`: enqueue a workflow run, read executions back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use runeflow_shared::detect::{Parameter, Settings};
use runeflow_shared::entities::{execution, workflow};
use runeflow_shared::executions::idempotency;
use runeflow_shared::executions::statements::{self, ListFilter, NewExecution};
use runeflow_shared::executions::{RetryPolicy, Status, UnknownStatus};
use runeflow_shared::store::StoreVersion;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::AuditNote;
use crate::error::{AppError, ErrorBody, Result};
use crate::queue::{Cancelled, IdempotencyClaim, Submitted};
use crate::state::AppState;
use crate::waiters::Wakeup;

/// Longest `wait` honoured, in seconds.
pub(crate) const MAX_WAIT_SECS: f64 = 300.0;
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/executions", get(list).post(create))
        .route("/api/executions/{id}", get(show))
        .route("/api/executions/{id}/cancel", post(cancel))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateExecution {
    /// A workflow name, or `<path>::<function>` when names collide.
    pub workflow: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Hold the request up to this many seconds for the outcome.
    pub wait: Option<f64>,
    /// Run not before this time (RFC 3339); the execution is `scheduled`
    /// until then and can be cancelled meanwhile. Not with `delay`.
    pub run_at: Option<DateTime<Utc>>,
    /// Run in this many seconds (at most a year); like `run_at`.
    pub delay: Option<f64>,
}

/// Longest `delay` (and furthest `run_at`) accepted.
const MAX_DELAY_SECS: f64 = 366.0 * 24.0 * 3600.0;

impl CreateExecution {
    /// When the execution may start; `None`: at once.
    fn not_before(&self) -> Result<Option<DateTime<Utc>>> {
        let at = match (self.run_at, self.delay) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_request(
                    "invalid_body",
                    "give `run_at` or `delay`, not both".to_owned(),
                ));
            }
            (Some(at), None) => at,
            (None, Some(delay)) => {
                if !(delay.is_finite() && (0.0..=MAX_DELAY_SECS).contains(&delay)) {
                    return Err(AppError::bad_request(
                        "invalid_body",
                        format!("`delay` must be a number of seconds from 0 to {MAX_DELAY_SECS}"),
                    ));
                }
                Utc::now() + chrono::Duration::milliseconds((delay * 1000.0) as i64)
            }
            (None, None) => return Ok(None),
        };
        if (at - Utc::now()).num_seconds() as f64 > MAX_DELAY_SECS {
            return Err(AppError::bad_request(
                "invalid_body",
                "`run_at` is more than a year ahead".to_owned(),
            ));
        }
        Ok(Some(at))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionError {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub message: Option<String>,
    pub traceback: Option<String>,
}

/// An execution as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionView {
    pub id: Uuid,
    pub workflow: String,
    pub path: String,
    pub function: String,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub status: Status,
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<ExecutionError>,
    pub logs: String,
    pub logs_truncated: bool,
    pub attempt: i32,
    pub worker: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// A `scheduled` execution starts at this time (delayed run, retry).
    pub run_at: Option<DateTime<Utc>>,
    /// Retries of user failures used so far.
    pub retry: i32,
    /// Earlier attempts that failed and were retried, oldest first: each
    /// with `attempt`, `status`, `error {type, message, traceback}`, `logs`
    /// (the last 64 KiB), `worker`, `started_at`, `finished_at`,
    /// `duration_ms`.
    #[schema(value_type = Vec<Object>)]
    pub attempts: serde_json::Value,
    /// Names of the config entries and secrets the execution read, in the
    /// order first read (never their values).
    pub config_read: Vec<String>,
}

impl From<execution::Model> for ExecutionView {
    fn from(e: execution::Model) -> Self {
        let error = if e.error_type.is_some() || e.error_message.is_some() {
            Some(ExecutionError {
                kind: e.error_type,
                message: e.error_message,
                traceback: e.error_traceback,
            })
        } else {
            None
        };
        ExecutionView {
            id: e.id,
            workflow: e.workflow_name,
            path: e.workflow_path,
            function: e.function_name,
            parameters: e.parameters,
            status: e.status,
            result: e.result,
            error,
            logs: e.logs,
            logs_truncated: e.logs_truncated,
            attempt: e.attempt,
            worker: e.worker,
            queued_at: e.queued_at.with_timezone(&Utc),
            started_at: e.started_at.map(|t| t.with_timezone(&Utc)),
            finished_at: e.finished_at.map(|t| t.with_timezone(&Utc)),
            duration_ms: e.duration_ms,
            run_at: e.run_at.map(|t| t.with_timezone(&Utc)),
            retry: e.retry,
            attempts: e.attempts,
            config_read: serde_json::from_value(e.config_read).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enqueued {
    pub id: Uuid,
    pub status: Status,
}

/// Run a workflow.
#[utoipa::path(post, path = "/api/executions", tag = "executions",
    request_body = CreateExecution,
    responses(
        (status = 202, description = "Queued (or still running after `wait`)", body = Enqueued),
        (status = 200, description = "Finished within `wait`, or the execution an earlier request with this `Idempotency-Key` created", body = ExecutionView),
        (status = 400, description = "Malformed body or `Idempotency-Key`", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Ambiguous name; `candidates` lists them", body = ErrorBody),
        (status = 422, description = "Missing, unknown or malformed parameters, or an `Idempotency-Key` reused for a different request", body = ErrorBody),
    ),
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters: a repeat within 24 h answers 200 with the execution the first request created")),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Json<CreateExecution>, JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    super::text_value("invalid_body", "workflow", Some(&req.workflow))?;
    // Refused before an execution exists: the audit row names the workflow.
    let refused = AuditNote::target(req.workflow.clone());
    let started = async {
        let run_at = req.not_before()?;
        let key = idempotency_key(&headers)?;
        start(
            &state,
            Start {
                reference: &req.workflow,
                parameters: req.parameters,
                wait: req.wait,
                run_at,
                idempotency: key
                    .as_deref()
                    .map(|k| (idempotency::EXECUTIONS_SCOPE.to_owned(), k)),
                endpoint_only: false,
            },
        )
        .await
    };
    Ok(refused.or_on(started.await))
}

/// One request to start an execution, from `POST /api/executions` or an
/// HTTP endpoint.
pub(crate) struct Start<'a> {
    /// A workflow name or `<path>::<function>`.
    pub reference: &'a str,
    pub parameters: serde_json::Value,
    /// Seconds to hold the request for the outcome.
    pub wait: Option<f64>,
    /// Not before this time (a delayed run); `None`: at once.
    pub run_at: Option<DateTime<Utc>>,
    /// Scope and `Idempotency-Key`, when one was sent.
    pub idempotency: Option<(String, &'a str)>,
    /// Refuse (404) a workflow whose decorator does not say `endpoint=True`.
    pub endpoint_only: bool,
}

/// Validates and enqueues `req` (at most once per idempotency key):
/// 202 `Enqueued`, or the `ExecutionView` after `wait` (200 when final),
/// or 200 with the execution an earlier request with the key created.
pub(crate) async fn start(state: &AppState, req: Start<'_>) -> Result<Response> {
    let (target, version) = lookup(state, req.reference).await?;
    let settings = Settings::from_json(&target.settings);
    if req.endpoint_only && !settings.endpoint.unwrap_or(false) {
        return Err(AppError::NotFound(format!(
            "workflow '{}' is not an HTTP endpoint: its decorator does not say endpoint=True",
            target.name
        )));
    }
    let claim = req.idempotency.as_ref().map(|(scope, key)| {
        (
            scope.as_str(),
            *key,
            idempotency::request_hash(req.reference, &req.parameters),
        )
    });
    if let Some((scope, key, hash)) = &claim
        && let Some(found) = idempotency::find(state.db(), scope, key).await?
    {
        return replay(state, key, hash, found, req.wait).await;
    }
    let parameters = check_parameters(&target, req.parameters)?;
    let id = Uuid::now_v7();
    let (retry_policy, max_concurrency) = policies(&target);
    let new = NewExecution {
        id,
        workflow_name: target.name.clone(),
        workflow_path: target.path.clone(),
        function_name: target.function_name.clone(),
        parameters,
        workspace_gen: version.generation,
        timeout_seconds: target.timeout_seconds,
        run_at: req.run_at,
        retry_policy,
        max_concurrency,
        schedule_tick: None,
    };
    // Subscribed before the push, so no "finished" notice can slip past.
    let finished = state.waiters.subscribe();
    let wait = async {
        match req.wait {
            Some(wait) if wait > 0.0 => {
                let wait = Duration::from_secs_f64(wait.min(MAX_WAIT_SECS));
                wait_for(state, finished, id, wait).await.map(Some)
            }
            _ => Ok(None),
        }
    };
    let (status, waited) = match &claim {
        None => state.enqueue.submit(&new, version, wait).await,
        Some((scope, key, hash)) => {
            let claim = IdempotencyClaim {
                scope,
                key,
                request_hash: hash,
            };
            match state.enqueue.submit_once(&new, version, claim, wait).await {
                Ok(Submitted::New(waited)) => Ok(waited),
                Ok(Submitted::Existing(found)) => {
                    return replay(state, key, hash, found, req.wait).await;
                }
                Err(e) => Err(e),
            }
        }
    }?;
    let note = started_note(&target.name, id);
    match waited? {
        Some(row) => {
            let code = if row.status.is_final() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok((code, note, Json(ExecutionView::from(row))).into_response())
        }
        None => Ok((StatusCode::ACCEPTED, note, Json(Enqueued { id, status })).into_response()),
    }
}

/// The audit target of execution `id` of `workflow` (a run or a cancel).
fn started_note(workflow: &str, id: Uuid) -> AuditNote {
    AuditNote::target(format!("{workflow} {id}"))
}

/// The retry policy and concurrency limit an execution of `target` is
/// queued with (copied, so an edit does not change runs in flight).
pub(crate) fn policies(target: &workflow::Model) -> (Option<serde_json::Value>, Option<i32>) {
    let settings = Settings::from_json(&target.settings);
    (
        RetryPolicy::from_settings(&settings).map(|p| p.to_json()),
        settings
            .max_concurrency
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
    )
}

/// The answer to a repeated `Idempotency-Key`: 200 with the execution it
/// created (after `wait`, like a first request), or 422 when this request
/// is not the one the key was first used for.
async fn replay(
    state: &AppState,
    key: &str,
    hash: &str,
    found: idempotency::Recorded,
    wait: Option<f64>,
) -> Result<Response> {
    if found.request_hash != hash {
        return Err(AppError::Unprocessable(format!(
            "Idempotency-Key '{key}' was used at {} for a different request (workflow and parameters) \
             that created execution {}; send a new key for a new request",
            found.created_at.to_rfc3339(),
            found.execution_id
        )));
    }
    let finished = state.waiters.subscribe();
    let row = load(state, found.execution_id).await?;
    let row = match wait {
        Some(wait) if wait > 0.0 && !row.status.is_final() => {
            let wait = Duration::from_secs_f64(wait.min(MAX_WAIT_SECS));
            wait_for(state, finished, found.execution_id, wait).await?
        }
        _ => row,
    };
    let note = started_note(&row.workflow_name, row.id);
    Ok((StatusCode::OK, note, Json(ExecutionView::from(row))).into_response())
}

/// The `Idempotency-Key` header, checked (400 when malformed).
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        AppError::bad_request(
            "invalid_idempotency_key",
            idempotency::InvalidKey::NotPrintable.to_string(),
        )
    })?;
    idempotency::check_key(key)
        .map_err(|e| AppError::bad_request("invalid_idempotency_key", e.to_string()))?;
    Ok(Some(key.to_owned()))
}

/// Header name of idempotency keys.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `name` or `path::function` → the one workflow row it means.
/// The workflow `reference` names and the store version the job is pinned
/// to. A lookup cached at that very version costs no PostgreSQL read.
/// Otherwise PostgreSQL is read after the version, never alongside it: the
/// row found is then at least as new as the version it is cached under (a
/// read that overtook a write published in between would be cached as
/// current until the next write).
pub(crate) async fn lookup(
    state: &AppState,
    reference: &str,
) -> Result<(Arc<workflow::Model>, StoreVersion)> {
    let version = state
        .store()
        .version()
        .await
        .map_err(|e| AppError::Unavailable(format!("Redis unreachable: {e}")))?;
    if let Some((at, found)) = state.workflows.get(reference)
        && at == version
    {
        return Ok((found, version));
    }
    let target = Arc::new(resolve_workflow(state, reference).await?);
    state.workflows.put(&version, reference, target.clone());
    Ok((target, version))
}

pub(crate) async fn resolve_workflow(state: &AppState, reference: &str) -> Result<workflow::Model> {
    if let Some((path, function)) = reference.rsplit_once("::") {
        return workflow::Entity::find()
            .filter(workflow::Column::Path.eq(path))
            .filter(workflow::Column::FunctionName.eq(function))
            .one(state.db())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no workflow '{function}' in '{path}'")));
    }
    super::workflows::find_unique(state, reference).await
}

/// Parameters must be an object naming every required parameter and no
/// unknown one (checked against the metadata extracted from the source),
/// with no NUL character, which PostgreSQL cannot store.
pub(crate) fn check_parameters(
    target: &workflow::Model,
    given: serde_json::Value,
) -> Result<serde_json::Value> {
    let given = match given {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map,
        _ => {
            return Err(AppError::Unprocessable(
                "parameters must be a JSON object".to_owned(),
            ));
        }
    };
    let declared: Vec<Parameter> =
        serde_json::from_value(target.parameters.clone()).unwrap_or_default();
    let known: BTreeSet<&str> = declared.iter().map(|p| p.name.as_str()).collect();
    let missing: Vec<&str> = declared
        .iter()
        .filter(|p| p.required && !given.contains_key(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    let unknown: Vec<&str> = given
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "missing required parameters: {}",
            missing.join(", ")
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "unknown parameters: {} (accepted: {})",
            unknown.join(", "),
            known.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    if problems.is_empty() {
        let parameters = serde_json::Value::Object(given);
        if super::json_has_nul(&parameters) {
            return Err(AppError::Unprocessable(
                "parameters contain a NUL character (U+0000), which PostgreSQL cannot store"
                    .to_owned(),
            ));
        }
        Ok(parameters)
    } else {
        Err(AppError::Unprocessable(format!(
            "{}: {}",
            target.name,
            problems.join("; ")
        )))
    }
}

/// Waits until `id` is final or `wait` passes, woken by the workers'
/// "finished" notifications; returns the row as it then is. `finished`
/// must have been subscribed before the job was pushed, so no notification
/// can slip past: the row is read only when one says it may have changed.
pub(crate) async fn wait_for(
    state: &AppState,
    mut finished: Receiver<Wakeup>,
    id: Uuid,
    wait: Duration,
) -> Result<execution::Model> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::select! {
            msg = finished.recv() => {
                let notice = match msg {
                    Ok(Some(done)) if done.id != id => continue,
                    Ok(notice) => notice,
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return load(state, id).await,
                };
                // The worker sent the row it recorded: no need to read it
                // back. Without it (or when messages may have been missed),
                // look.
                let sent = notice.and_then(|n| n.execution.clone());
                let row = match sent.filter(|row| row.status.is_final()) {
                    Some(row) => row,
                    None => load(state, id).await?,
                };
                if row.status.is_final() {
                    return Ok(row);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return load(state, id).await,
        }
    }
}

async fn load(state: &AppState, id: Uuid) -> Result<execution::Model> {
    statements::get(state.db(), id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no execution {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowParams {
    /// Hold the request up to this many seconds until the execution is final.
    pub wait: Option<f64>,
}

/// One execution (with `wait`, once it is final or the wait is over).
#[utoipa::path(get, path = "/api/executions/{id}", tag = "executions",
    params(("id" = Uuid, Path, description = "Execution id"), ShowParams),
    responses(
        (status = 200, description = "Found", body = ExecutionView),
        (status = 400, description = "Bad query (e.g. `wait`)", body = ErrorBody),
        (status = 404, description = "No such execution", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: std::result::Result<Query<ShowParams>, QueryRejection>,
) -> Result<Json<ExecutionView>> {
    let Query(params) =
        params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let id: Uuid = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("no execution {id}")))?;
    // Subscribed before the first read, so a finish in between is not missed.
    let finished = state.waiters.subscribe();
    let row = load(&state, id).await?;
    let row = match params.wait {
        Some(wait) if wait > 0.0 && !row.status.is_final() => {
            let wait = Duration::from_secs_f64(wait.min(MAX_WAIT_SECS));
            wait_for(&state, finished, id, wait).await?
        }
        _ => row,
    };
    Ok(Json(row.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// One status; another value is a 400 naming the accepted ones.
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    pub workflow: Option<String>,
    /// 1..=500, default 50.
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// An execution in a listing: no parameters, result, logs or traceback
/// (each may be large), so a page's size is bounded by its row count.
/// `GET /api/executions/{id}` has the whole row.
#[derive(Debug, Serialize, ToSchema, sea_orm::FromQueryResult)]
pub struct ExecutionSummary {
    pub id: Uuid,
    pub workflow: String,
    pub path: String,
    pub function: String,
    pub status: Status,
    pub error_type: Option<String>,
    /// The first 200 characters of the error message.
    pub error_message: Option<String>,
    pub logs_truncated: bool,
    pub attempt: i32,
    pub worker: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    pub executions: Vec<ExecutionSummary>,
    pub next_cursor: Option<Uuid>,
}

/// Executions, newest first, as summaries (no logs, result, parameters or
/// traceback: read one execution for those).
#[utoipa::path(get, path = "/api/executions", tag = "executions", params(ListParams),
    responses(
        (status = 200, description = "One page of summaries", body = ExecutionList),
        (status = 400, description = "Bad query", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: std::result::Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ExecutionList>> {
    let Query(params) =
        params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let limit = super::page_limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    super::text_query("status", params.status.as_deref())?;
    super::text_query("workflow", params.workflow.as_deref())?;
    let status = params
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e: UnknownStatus| AppError::bad_request("invalid_query", e.to_string()))?;
    let filter = ListFilter {
        status,
        workflow: params.workflow,
        cursor: params.cursor,
        limit: limit + 1,
    };
    let mut rows: Vec<ExecutionSummary> = statements::list(state.db(), &filter).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(ExecutionList {
        executions: rows,
        next_cursor,
    }))
}

/// Cancel an execution. A `scheduled` or `pending` one never starts; a
/// running one is killed with everything it started (the row is final at
/// once, and the worker adds what the child logged). Repeating a cancel is
/// harmless.
#[utoipa::path(post, path = "/api/executions/{id}/cancel", tag = "executions",
    params(("id" = Uuid, Path, description = "Execution id")),
    responses(
        (status = 200, description = "Cancelled (now, or by an earlier cancel)", body = ExecutionView),
        (status = 404, description = "No such execution", body = ErrorBody),
        (status = 409, description = "Already finished otherwise (`success`, `failed` or `timeout`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(AuditNote, Json<ExecutionView>)> {
    let id: Uuid = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("no execution {id}")))?;
    let cancelled =
        |row: execution::Model| (started_note(&row.workflow_name, row.id), Json(row.into()));
    match state.enqueue.cancel(id).await? {
        Cancelled::Now(row) => Ok(cancelled(*row)),
        Cancelled::AlreadyFinal(row) if row.status == Status::Cancelled => Ok(cancelled(*row)),
        Cancelled::AlreadyFinal(row) => Err(AppError::Conflict {
            code: "already_final",
            message: format!(
                "execution {id} already finished as '{}'; only a scheduled, pending or running execution can be cancelled",
                row.status
            ),
            candidates: None,
        }),
        Cancelled::NotFound => Err(AppError::NotFound(format!("no execution {id}"))),
    }
}

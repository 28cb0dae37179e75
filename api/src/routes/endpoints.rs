//! HTTP endpoints: `POST /api/endpoints/{name}` runs a workflow whose
//! decorator says `endpoint=True`, with the JSON body as its parameters.
//! Webhook senders cannot set a bearer token, so besides it the route
//! accepts `X-Runeflow-Key` with a live key of that workflow; keys are
//! managed (behind the bearer token) under `/api/workflows/{name}/keys`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use runeflow_shared::endpoint_keys::{self, KeyInfo};
use runeflow_shared::executions::idempotency;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::executions::{Start, idempotency_key, start};
use crate::audit::{Actor, AuditNote};
use crate::auth::principal;
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;
use runeflow_shared::tokens::{Principal, Scope};

/// Header carrying an endpoint key.
pub const KEY_HEADER: &str = "x-runeflow-key";

/// The endpoint calls: outside the bearer-only layer (they check either).
pub fn router() -> Router<AppState> {
    Router::new().route("/api/endpoints/{name}", post(call))
}

/// Key management: behind the bearer token.
pub fn keys_router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/workflows/{name}/keys",
            post(create_key).get(list_keys),
        )
        .route("/api/workflows/{name}/keys/{id}", delete(revoke_key))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallParams {
    /// Hold the request up to this many seconds for the outcome.
    pub wait: Option<f64>,
}

/// Run an endpoint workflow; the JSON body (an object, or empty) is its
/// parameters.
#[utoipa::path(post, path = "/api/endpoints/{name}", tag = "endpoints",
    params(
        ("name" = String, Path, description = "Workflow name"),
        CallParams,
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters: a repeat within 24 h answers 200 with the execution the first call created"),
        ("X-Runeflow-Key" = Option<String>, Header, description = "An endpoint key of this workflow (instead of the bearer token)"),
    ),
    request_body(content = Object, description = "The parameters", content_type = "application/json"),
    responses(
        (status = 202, description = "Queued (or still running after `wait`)", body = super::executions::Enqueued),
        (status = 200, description = "Finished within `wait`, or the execution an earlier call with this `Idempotency-Key` created", body = super::executions::ExecutionView),
        (status = 400, description = "Body not JSON, bad `wait` or malformed `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Neither the bearer token nor a live key of this workflow", body = ErrorBody),
        (status = 404, description = "No such workflow, or it is not an endpoint (`endpoint=True`)", body = ErrorBody),
        (status = 409, description = "Several files define this name", body = ErrorBody),
        (status = 422, description = "Missing, unknown or malformed parameters, or an `Idempotency-Key` reused for a different request", body = ErrorBody),
    ),
    security(("bearer" = []), ("endpoint_key" = [])))]
pub async fn call(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: std::result::Result<Query<CallParams>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    super::text_value("invalid_path", "name", Some(&name))?;
    let caller = caller(&state, &headers, &name).await?;
    let actor = caller.actor();
    let response = if caller.may_run() {
        run_endpoint(&state, &name, params, &headers, &body)
            .await
            .into_response()
    } else {
        AppError::Forbidden(Scope::Run).into_response()
    };
    Ok((actor, response).into_response())
}

/// Runs endpoint workflow `name` for an authorised caller.
async fn run_endpoint(
    state: &AppState,
    name: &str,
    params: std::result::Result<Query<CallParams>, QueryRejection>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response> {
    let Query(params) =
        params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let parameters = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            AppError::bad_request("invalid_body", format!("the body is not JSON: {e}"))
        })?
    };
    let key = idempotency_key(headers)?;
    start(
        state,
        Start {
            reference: name,
            parameters,
            wait: params.wait,
            run_at: None,
            idempotency: key
                .as_deref()
                .map(|k| (idempotency::endpoint_scope(name), k)),
            endpoint_only: true,
        },
    )
    .await
}

/// Who calls an endpoint.
enum Caller {
    /// A bearer token (it needs the `run` scope).
    Token(Principal),
    /// A live key of the workflow, by its name.
    Key(String),
}

impl Caller {
    fn may_run(&self) -> bool {
        match self {
            Caller::Token(principal) => principal.allows(Scope::Run),
            Caller::Key(_) => true,
        }
    }

    fn actor(&self) -> Actor {
        match self {
            Caller::Token(principal) => Actor(principal.name.clone()),
            Caller::Key(key_name) => Actor::endpoint_key(key_name),
        }
    }
}

/// The bearer token's principal, or the live key of workflow `name` (its
/// use noted); 401 for neither.
async fn caller(state: &AppState, headers: &HeaderMap, name: &str) -> Result<Caller> {
    if let Some(principal) = principal(state, headers).await? {
        return Ok(Caller::Token(principal));
    }
    let Some(key) = headers.get(KEY_HEADER) else {
        return Err(AppError::Unauthorized);
    };
    let live = match key.to_str() {
        Ok(key) => endpoint_keys::authenticate(state.db(), name, key.trim()).await?,
        Err(_) => None,
    };
    live.map(Caller::Key).ok_or_else(|| {
        AppError::UnauthorizedKey(format!(
            "X-Runeflow-Key is not a live key of workflow '{name}' (unknown, revoked or another workflow's)"
        ))
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateKey {
    /// What the key is for (e.g. the sender), 1-200 characters.
    pub name: String,
}

/// A new key: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// Create an endpoint key for a workflow (shown once, stored hashed).
#[utoipa::path(post, path = "/api/workflows/{name}/keys", tag = "endpoints",
    params(("name" = String, Path, description = "Workflow name")),
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `key` is never shown again", body = CreatedKey),
        (status = 400, description = "Malformed body or name", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Several files define this name", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: std::result::Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    let label = req.name.trim();
    if label.is_empty() || label.chars().count() > 200 || label.contains('\0') {
        return Err(AppError::bad_request(
            "invalid_body",
            "name must be 1-200 characters without NUL",
        ));
    }
    let workflow = workflow_named(&state, &name).await?;
    let key = endpoint_keys::generate();
    let info = endpoint_keys::insert(state.db(), &workflow, label, &key).await?;
    let note = AuditNote::target(format!("{workflow} {}", info.id));
    Ok((StatusCode::CREATED, note, Json(CreatedKey { key, info })).into_response())
}

/// A workflow's endpoint keys (never the keys themselves).
#[utoipa::path(get, path = "/api/workflows/{name}/keys", tag = "endpoints",
    params(("name" = String, Path, description = "Workflow name")),
    responses(
        (status = 200, description = "Its keys, revoked ones included", body = KeyList),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 404, description = "No such workflow", body = ErrorBody),
        (status = 409, description = "Several files define this name", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<KeyList>> {
    let workflow = workflow_named(&state, &name).await?;
    Ok(Json(KeyList {
        keys: endpoint_keys::list(state.db(), &workflow).await?,
    }))
}

/// Revoke an endpoint key: calls with it are 401 from now on.
#[utoipa::path(delete, path = "/api/workflows/{name}/keys/{id}", tag = "endpoints",
    params(
        ("name" = String, Path, description = "Workflow name"),
        ("id" = Uuid, Path, description = "Key id"),
    ),
    responses(
        (status = 204, description = "Revoked (now or before)"),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 404, description = "No such workflow or key", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    super::text_value("invalid_path", "name", Some(&name))?;
    let no_key = || AppError::NotFound(format!("workflow '{name}' has no key {id}"));
    let parsed: Uuid = id.parse().map_err(|_| no_key())?;
    if endpoint_keys::revoke(state.db(), &name, parsed).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_key())
    }
}

/// The name keys are filed under: the workflow's unique name.
async fn workflow_named(state: &AppState, name: &str) -> Result<String> {
    super::text_value("invalid_path", "name", Some(name))?;
    Ok(super::workflows::find_unique(state, name).await?.name)
}

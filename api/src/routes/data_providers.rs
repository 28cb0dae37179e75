//! `POST /api/data-providers/{name}`: runs a `@data_provider` with
//! parameters, as an execution like any workflow's, and returns its
//! options. A result is cached in Redis per (provider, parameters,
//! workspace version) for the provider's `cache_ttl` (default 300 s; 0: not
//! cached): any edit of the workspace, so of any module it imported, makes
//! the next call run it again.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::post;
use axum::{Json, Router};
use runeflow_shared::detect::Settings;
use runeflow_shared::executions::Status;
use runeflow_shared::executions::statements::NewExecution;
use runeflow_shared::hash::content_hash;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::executions::{MAX_WAIT_SECS, check_parameters, lookup, wait_for};
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// A provider's `cache_ttl` when it gives none.
pub const DEFAULT_CACHE_TTL_SECS: f64 = 300.0;
/// How long a call waits for the provider when `wait` is not given.
const DEFAULT_WAIT_SECS: f64 = 60.0;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/data-providers/{name}", post(run))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Seconds to wait for the provider (default 60, at most 300).
    pub wait: Option<f64>,
}

/// A data provider's options.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProviderOptions {
    /// What the provider returned.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// True when served from the cache (no execution ran for this call).
    pub cached: bool,
    /// The execution that produced the options.
    pub execution_id: Uuid,
}

/// Run a data provider and return its options (cached per parameters and
/// workspace version for its `cache_ttl`).
#[utoipa::path(post, path = "/api/data-providers/{name}", tag = "data-providers",
    params(("name" = String, Path, description = "Data provider name, or `<path>::<function>`"), RunParams),
    request_body(content = Object, description = "The provider's parameters"),
    responses(
        (status = 200, description = "The provider's options", body = ProviderOptions),
        (status = 400, description = "Malformed body or query", body = ErrorBody),
        (status = 404, description = "No such data provider", body = ErrorBody),
        (status = 409, description = "Ambiguous name; `candidates` lists them", body = ErrorBody),
        (status = 422, description = "Missing, unknown or malformed parameters", body = ErrorBody),
        (status = 502, description = "The provider failed (its error is in the message)", body = ErrorBody),
        (status = 504, description = "The provider did not finish within `wait`", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: std::result::Result<Query<RunParams>, QueryRejection>,
    body: std::result::Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ProviderOptions>> {
    let Query(query) = query.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let Json(given) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    super::text_value("invalid_query", "name", Some(&name))?;
    let wait = match query.wait {
        None => DEFAULT_WAIT_SECS,
        Some(w) if w.is_finite() && w > 0.0 => w.min(MAX_WAIT_SECS),
        Some(_) => {
            return Err(AppError::bad_request(
                "invalid_query",
                "`wait` must be a positive number of seconds".to_owned(),
            ));
        }
    };
    let (target, version) = lookup(&state, &name).await?;
    if target.kind != "data_provider" {
        return Err(AppError::NotFound(format!(
            "'{name}' is a {}, not a data provider",
            target.kind
        )));
    }
    let parameters = check_parameters(&target, given)?;
    let settings = Settings::from_json(&target.settings);
    let ttl = settings
        .cache_ttl_seconds
        .unwrap_or(DEFAULT_CACHE_TTL_SECS)
        .max(0.0);
    // serde_json's maps are sorted: the same parameters, the same key.
    let identity = serde_json::json!([
        target.path,
        target.function_name,
        parameters,
        version.generation
    ]);
    let key = format!(
        "{}:dp:{}",
        state.store().prefix(),
        content_hash(identity.to_string().as_bytes())
    );
    let mut conn = state.store().connection();
    if ttl > 0.0 {
        let hit: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| AppError::Unavailable(format!("Redis unreachable: {e}")))?;
        if let Some(found) =
            hit.and_then(|text| serde_json::from_str::<ProviderOptions>(&text).ok())
        {
            return Ok(Json(ProviderOptions {
                cached: true,
                ..found
            }));
        }
    }

    let id = Uuid::now_v7();
    let new = NewExecution {
        id,
        workflow_name: target.name.clone(),
        workflow_path: target.path.clone(),
        function_name: target.function_name.clone(),
        parameters,
        workspace_gen: version.generation,
        timeout_seconds: target.timeout_seconds,
        run_at: None,
        retry_policy: None,
        max_concurrency: None,
        schedule_tick: None,
    };
    let finished = state.waiters.subscribe();
    let waited = wait_for(&state, finished, id, Duration::from_secs_f64(wait));
    let (_, row) = state.enqueue.submit(&new, version, waited).await?;
    let row = row?;
    match row.status {
        Status::Success => {}
        status if status.is_final() => {
            return Err(AppError::BadGateway(format!(
                "data provider '{name}' ended {status} (execution {id}): {}: {}",
                row.error_type.as_deref().unwrap_or("error"),
                row.error_message.as_deref().unwrap_or("")
            )));
        }
        _ => {
            return Err(AppError::GatewayTimeout(format!(
                "data provider '{name}' did not finish within {wait} s (execution {id} goes on)"
            )));
        }
    }
    let options = ProviderOptions {
        options: row.result.unwrap_or(serde_json::Value::Null),
        cached: false,
        execution_id: id,
    };
    if ttl > 0.0 {
        let text = serde_json::to_string(&options).unwrap_or_default();
        let kept: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&key)
            .arg(text)
            .arg("PX")
            .arg((ttl * 1000.0).ceil().max(1.0) as u64)
            .query_async(&mut conn)
            .await;
        if let Err(err) = kept {
            tracing::warn!(%err, provider = %name, "could not cache a data provider's options");
        }
    }
    Ok(Json(options))
}

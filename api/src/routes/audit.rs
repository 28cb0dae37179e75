//! `GET /api/audit`: the audit log, newest first (admin scope). Rows are
//! written by the audit middleware (`crate::audit`), never here.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use runeflow_shared::audit::{self, Filter, Record};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// Default and largest page size.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit", get(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only rows at or after this time (RFC 3339, e.g. `2026-12-06T09:00:00Z`).
    pub since: Option<String>,
    /// Only this actor: a token's name, `bootstrap` or `endpoint-key:<key name>`.
    pub actor: Option<String>,
    /// Only this action, e.g. `file.write`, `execution.run`, `token.revoke`.
    pub action: Option<String>,
    /// At most this many rows, 1..=1000 (default 100).
    pub limit: Option<u64>,
}

/// The audit log, newest first: who did what to which target, when, and
/// how it ended.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditParams),
    responses(
        (status = 200, description = "The rows, newest first", body = Vec<Record>),
        (status = 400, description = "Bad `since` (not RFC 3339), `limit` or other query value", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: std::result::Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<Record>>> {
    let Query(params) =
        params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let limit = super::page_limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    super::text_query("actor", params.actor.as_deref())?;
    super::text_query("action", params.action.as_deref())?;
    let since = params
        .since
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|e| {
                    AppError::bad_request(
                        "invalid_query",
                        format!("since must be an RFC 3339 time like 2026-12-06T09:00:00Z ({e})"),
                    )
                })
        })
        .transpose()?;
    let filter = Filter {
        since,
        actor: params.actor,
        action: params.action,
        limit,
    };
    Ok(Json(audit::list(state.db(), &filter).await?))
}

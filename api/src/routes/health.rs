//! `/healthz` and `/readyz`, open (no token) for orchestrators.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// How long a dependency may take to answer a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Up", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".to_owned(),
    })
}

/// PostgreSQL and Redis both answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "A dependency is unreachable; the message names it", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>> {
    let db = tokio::time::timeout(PROBE_TIMEOUT, state.db().execute_unprepared("SELECT 1"));
    match db.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(AppError::Unavailable(format!(
                "PostgreSQL unreachable: {e}"
            )));
        }
        Err(_) => {
            return Err(AppError::Unavailable(
                "PostgreSQL did not answer within 2 s".into(),
            ));
        }
    }
    match tokio::time::timeout(PROBE_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(AppError::Unavailable(format!("Redis unreachable: {e}"))),
        Err(_) => {
            return Err(AppError::Unavailable(
                "Redis did not answer within 2 s".into(),
            ));
        }
    }
    Ok(Json(Status {
        status: "ready".to_owned(),
    }))
}

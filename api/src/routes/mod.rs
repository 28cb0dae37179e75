//! One module per HTTP resource, each exporting `router()`, merged here.

pub mod executions;
pub mod files;
pub mod git;
pub mod health;
pub mod openapi;
pub mod workflows;

use axum::Router;
use axum::middleware::from_fn_with_state;

use crate::auth::require_token;
use crate::state::AppState;

/// The whole HTTP surface: open health probes, everything under `/api`
/// behind the bearer token.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(files::router())
        .merge(workflows::router())
        .merge(executions::router())
        .merge(git::router())
        .merge(openapi::router())
        .route_layer(from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(health::router())
        .merge(api)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> crate::error::AppError {
    crate::error::AppError::NotFound(format!("no route for {}", uri.path()))
}

/// Validates a listing's `limit` (1..=`max`, `default` when absent).
pub(crate) fn page_limit(
    limit: Option<u64>,
    default: u64,
    max: u64,
) -> Result<u64, crate::error::AppError> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(crate::error::AppError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {max}"),
        ))
    }
}

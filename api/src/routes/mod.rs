//! One module per HTTP resource, each exporting `router()`, merged here.

pub mod audit;
pub mod config;
pub mod data_providers;
pub mod endpoints;
pub mod executions;
pub mod files;
pub mod git;
pub mod health;
pub mod openapi;
pub mod schedules;
pub mod tokens;
pub mod workflows;

use axum::Router;
use axum::middleware::from_fn_with_state;

use crate::auth::require_token;
use crate::state::AppState;

/// The whole HTTP surface: open health probes, HTTP endpoints (bearer
/// token or endpoint key, checked by the handler), everything else under
/// `/api` behind the bearer token. Every `/api` request but reads passes
/// the audit middleware, outside the token check so a 403 is recorded too.
pub fn router(state: AppState) -> Router {
    let recorded = || from_fn_with_state(state.clone(), crate::audit::record);
    let api = Router::new()
        .merge(files::router())
        .merge(workflows::router())
        .merge(executions::router())
        .merge(data_providers::router())
        .merge(schedules::router())
        .merge(endpoints::keys_router())
        .merge(tokens::router())
        .merge(config::router())
        .merge(git::router())
        .merge(audit::router())
        .merge(openapi::router())
        .route_layer(from_fn_with_state(state.clone(), require_token))
        .route_layer(recorded());
    Router::new()
        .merge(health::router())
        .merge(endpoints::router().route_layer(recorded()))
        .merge(api)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> crate::error::AppError {
    crate::error::AppError::NotFound(format!("no route for {}", uri.path()))
}

/// Refuses a query value PostgreSQL `text` cannot hold (U+0000): the
/// client's mistake, a 400, rather than a database error and a 500.
pub(crate) fn text_query(name: &str, value: Option<&str>) -> Result<(), crate::error::AppError> {
    text_value("invalid_query", name, value)
}

/// [`text_query`] for a field of a request body (`code` names where).
pub(crate) fn text_value(
    code: &'static str,
    name: &str,
    value: Option<&str>,
) -> Result<(), crate::error::AppError> {
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(crate::error::AppError::bad_request(
            code,
            format!("{name} contains a NUL character"),
        ));
    }
    Ok(())
}

/// True when a string or key anywhere in `value` holds U+0000, which
/// PostgreSQL `jsonb` refuses.
pub(crate) fn json_has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_has_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v))
        }
        _ => false,
    }
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

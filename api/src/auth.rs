//! Bearer-token check for every `/api` route (HTTP endpoints check it
//! themselves, as an alternative to an endpoint key).

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use runeflow_shared::hash::content_hash;
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::state::AppState;

/// Rejects requests without `Authorization: Bearer <token>`. Both sides are
/// hashed first so the comparison takes the same time whatever the length
/// or content of the guess.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if has_token(&state, request.headers()) {
        Ok(next.run(request).await)
    } else {
        Err(AppError::Unauthorized)
    }
}

/// True when `headers` carry the API's bearer token. HTTP endpoints, which
/// also accept an endpoint key, call this themselves.
pub fn has_token(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(presented) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    let digest = content_hash(presented.as_bytes());
    bool::from(digest.as_bytes().ct_eq(state.token_digest.as_bytes()))
}

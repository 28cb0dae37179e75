//! Bearer-token check for every `/api` route.

use axum::extract::{Request, State};
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
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(AppError::Unauthorized)?;
    let digest = content_hash(presented.as_bytes());
    if bool::from(digest.as_bytes().ct_eq(state.token_digest.as_bytes())) {
        Ok(next.run(request).await)
    } else {
        Err(AppError::Unauthorized)
    }
}

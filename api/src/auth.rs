//! Who is calling, and may they: every `/api` route needs a bearer token
//! with the scope its route group needs (HTTP endpoints check it
//! themselves, as an alternative to an endpoint key).
//!
//! `RUNEFLOW_API_TOKEN` is the bootstrap token (every scope), compared in
//! constant time; any other token is looked up by its sha256 on every
//! request, so a revoked one is refused at once.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runeflow_shared::hash::content_hash;
use runeflow_shared::tokens::{self, Principal, Scope};
use subtle::ConstantTimeEq;

use crate::audit::Actor;
use crate::error::AppError;
use crate::state::AppState;

/// Rejects a request without a live token (401) or whose token lacks the
/// scope of its route (403 naming it); passes the [`Principal`] on in the
/// request's extensions, and names it as the [`Actor`] of the response
/// (a 403 included) for the audit log.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let principal = match principal(&state, request.headers()).await {
        Ok(Some(principal)) => principal,
        Ok(None) => return AppError::Unauthorized.into_response(),
        Err(err) => return err.into_response(),
    };
    let actor = Actor(principal.name.clone());
    let needed = required_scope(request.method(), request.uri().path());
    let mut response = if principal.allows(needed) {
        request.extensions_mut().insert(principal);
        next.run(request).await
    } else {
        AppError::Forbidden(needed).into_response()
    };
    response.extensions_mut().insert(actor);
    response
}

/// The principal of the bearer token in `headers`: the bootstrap token, a
/// live API token, or `None`.
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    let Some(presented) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Ok(None);
    };
    // Hashed first, so the comparison takes the same time whatever the
    // length or content of the guess.
    let digest = content_hash(presented.as_bytes());
    if bool::from(digest.as_bytes().ct_eq(state.token_digest.as_bytes())) {
        return Ok(Some(Principal::bootstrap()));
    }
    if !presented.starts_with(tokens::PREFIX) {
        return Ok(None);
    }
    Ok(tokens::authenticate(state.db(), presented).await?)
}

/// The scope a route needs: `admin` for tokens, config/secrets and the
/// audit log, `read` for any other GET,
/// `run` to start or cancel executions and run data providers, `write` for
/// everything else (files, git, schedules, endpoint keys).
pub fn required_scope(method: &Method, path: &str) -> Scope {
    let admin = ["/api/tokens", "/api/config", "/api/audit"];
    if admin
        .iter()
        .any(|group| path == *group || path.strip_prefix(group).is_some_and(|r| r.starts_with('/')))
    {
        return Scope::Admin;
    }
    if method == Method::GET || method == Method::HEAD {
        return Scope::Read;
    }
    let run = path == "/api/executions"
        || (path.starts_with("/api/executions/") && path.ends_with("/cancel"))
        || path.starts_with("/api/data-providers/")
        || path.starts_with("/api/endpoints/");
    if method == Method::POST && run {
        Scope::Run
    } else {
        Scope::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_groups_map_to_their_scope() {
        let cases = [
            (Method::GET, "/api/files", Scope::Read),
            (Method::GET, "/api/executions/x", Scope::Read),
            (Method::POST, "/api/executions", Scope::Run),
            (Method::POST, "/api/executions/x/cancel", Scope::Run),
            (Method::POST, "/api/data-providers/p", Scope::Run),
            (Method::PUT, "/api/files/a.py", Scope::Write),
            (Method::POST, "/api/files/move", Scope::Write),
            (Method::POST, "/api/git/pull", Scope::Write),
            (Method::POST, "/api/schedules", Scope::Write),
            (Method::DELETE, "/api/schedules/x", Scope::Write),
            (Method::POST, "/api/workflows/w/keys", Scope::Write),
            (Method::GET, "/api/tokens", Scope::Admin),
            (Method::DELETE, "/api/tokens/x", Scope::Admin),
            (Method::GET, "/api/config", Scope::Admin),
            (Method::PUT, "/api/config/API_KEY", Scope::Admin),
            (Method::DELETE, "/api/config/API_KEY", Scope::Admin),
            (Method::GET, "/api/audit", Scope::Admin),
            (Method::GET, "/api/configuration", Scope::Read),
        ];
        for (method, path, scope) in cases {
            assert_eq!(required_scope(&method, path), scope, "{method} {path}");
        }
    }
}

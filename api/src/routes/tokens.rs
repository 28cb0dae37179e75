//! `/api/tokens`: scoped API tokens (admin scope). A token is shown once,
//! at creation; only its sha256 is stored.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use runeflow_shared::tokens::{self, Scope, TokenInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::AuditNote;
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// Longest token name, in characters.
const MAX_NAME_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}", delete(revoke))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateToken {
    /// Who or what uses it (e.g. `ci`); shown in listings (and the audit log).
    pub name: String,
    /// Any of `read`, `run`, `write`, `admin`.
    pub scopes: Vec<Scope>,
}

/// A new token: `token` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// Create a token with the given scopes (shown once).
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` is shown only here", body = CreatedToken),
        (status = 400, description = "Malformed body, empty, overlong or reserved name (`bootstrap`, `cli`, `endpoint-key:…`), no scopes or an unknown one", body = ErrorBody),
        (status = 409, description = "`name_taken`: a live token has this name", body = ErrorBody),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    body: std::result::Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, AuditNote, Json<CreatedToken>)> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(AppError::bad_request(
            "invalid_body",
            format!("`name` must be 1 to {MAX_NAME_CHARS} characters, without NUL"),
        ));
    }
    // Names the audit log gives actors that are not tokens.
    if name == "bootstrap" || name == "cli" || name.starts_with("endpoint-key:") {
        return Err(AppError::bad_request(
            "invalid_body",
            format!("`name` '{name}' is reserved (the audit log names other actors so)"),
        ));
    }
    if req.scopes.is_empty() {
        return Err(AppError::bad_request(
            "invalid_body",
            "`scopes` must name at least one of read, run, write, admin".to_owned(),
        ));
    }
    let mut scopes = req.scopes;
    scopes.sort();
    scopes.dedup();
    let token = tokens::generate();
    let info = match tokens::insert(state.db(), name, &scopes, &token).await {
        Err(err) if is_unique_violation(&err) => {
            return Err(AppError::Conflict {
                code: "name_taken",
                message: format!(
                    "a live token is already named '{name}': revoke it or pick another name"
                ),
                candidates: None,
            });
        }
        other => other?,
    };
    let note = token_note(&info);
    Ok((
        StatusCode::CREATED,
        note,
        Json(CreatedToken { token, info }),
    ))
}

/// The audit target of a token: its name and id (never the token).
fn token_note(info: &TokenInfo) -> AuditNote {
    AuditNote::target(format!("{} {}", info.name, info.id))
}

fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Every token (never the token itself), newest first.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The tokens", body = Vec<TokenInfo>),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<TokenInfo>>> {
    Ok(Json(tokens::list(state.db()).await?))
}

/// Revoke a token: refused from its next request on. Repeating is harmless.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No live token", body = ErrorBody),
        (status = 403, description = "The token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(AuditNote, StatusCode)> {
    let id: Uuid = id
        .parse()
        .map_err(|_| AppError::NotFound(format!("no token {id}")))?;
    match tokens::revoke(state.db(), id).await? {
        Some(info) => Ok((token_note(&info), StatusCode::NO_CONTENT)),
        None => Err(AppError::NotFound(format!("no token {id}"))),
    }
}

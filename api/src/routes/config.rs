//! `/api/config`: config entries and secrets that workflows read with
//! `context.config["key"]` / `context.secret("key")` (admin scope).
//!
//! A secret's value goes in once, is sealed with RUNEFLOW_SECRET_KEY before
//! it is stored, and never comes out of the API again: responses carry a
//! secret's name and times only, and a malformed body is answered without
//! echoing any of it (serde's messages quote the offending value).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use runeflow_shared::config_entries::{self, EntryInfo, PutError, Stored, check_key};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// Largest value, as JSON text (a secret: its UTF-8 bytes).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/config", get(list))
        .route("/api/config/{key}", get(show).put(put).delete(remove))
}

/// The body of `PUT /api/config/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEntry {
    /// Any JSON value; for a secret, a non-empty string.
    #[schema(value_type = Object, example = json!("https://api.example.com"))]
    pub value: serde_json::Value,
    /// Seal the value and never show it again.
    #[serde(default)]
    pub secret: bool,
}

/// One entry: its value only when it is not a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryView {
    #[serde(flatten)]
    pub info: EntryInfo,
    /// Absent for a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub value: Option<serde_json::Value>,
}

/// Set a config entry or a secret (replacing any entry of that key).
#[utoipa::path(put, path = "/api/config/{key}", tag = "config",
    params(("key" = String, Path, description = "Letters, digits, `_`, `.`, `-`; at most 128")),
    request_body(content = PutEntry, example = json!({"value": "https://api.example.com", "secret": false})),
    responses(
        (status = 200, description = "Stored; a secret's value is never returned", body = EntryInfo),
        (status = 400, description = "Bad key or body; a secret's value must be a non-empty string", body = ErrorBody),
        (status = 409, description = "`is_secret`: a plain value over a secret (delete the secret first)", body = ErrorBody),
        (status = 413, description = "Value over 64 KiB", body = ErrorBody),
        (status = 503, description = "A secret, but the API has no RUNEFLOW_SECRET_KEY, or the stored secrets are sealed with another key (rotated since it started)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn put(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Response> {
    check_key(&key).map_err(|e| AppError::bad_request("invalid_key", e.to_string()))?;
    // Not `Json<PutEntry>`: its rejection would quote the body back.
    let entry: PutEntry = serde_json::from_slice(&body).map_err(|_| {
        AppError::bad_request(
            "invalid_body",
            "the body must be a JSON object {\"value\": <JSON>, \"secret\": <bool>} and nothing else",
        )
    })?;
    // The audit row says which kind was set (the target is the key).
    let note = if entry.secret {
        AuditNote::action("secret.set")
    } else {
        AuditNote::default()
    };
    Ok(note.or_on(store(&state, &key, &entry).await.map(Json)))
}

/// Stores a parsed `PUT` body under `key`.
async fn store(state: &AppState, key: &str, entry: &PutEntry) -> Result<EntryInfo> {
    if !entry.secret {
        let text_len = serde_json::to_string(&entry.value)
            .map(|t| t.len())
            .unwrap_or(usize::MAX);
        if text_len > MAX_VALUE_BYTES {
            return Err(too_large());
        }
        if super::json_has_nul(&entry.value) {
            return Err(AppError::bad_request(
                "invalid_body",
                "`value` contains a NUL character",
            ));
        }
        return config_entries::put_plain(state.db(), key, &entry.value)
            .await
            .map_err(put_error);
    }
    let plaintext = match &entry.value {
        serde_json::Value::String(text) if !text.is_empty() => text,
        _ => {
            return Err(AppError::bad_request(
                "invalid_body",
                "a secret's `value` must be a non-empty string",
            ));
        }
    };
    if plaintext.len() > MAX_VALUE_BYTES {
        return Err(too_large());
    }
    let Some(secret_key) = &state.secret_key else {
        return Err(AppError::SecretsUnavailable);
    };
    config_entries::put_secret(state.db(), secret_key, key, plaintext)
        .await
        .map_err(put_error)
}

fn put_error(err: PutError) -> AppError {
    match err {
        PutError::Db(err) => err.into(),
        e @ PutError::IsSecret(_) => AppError::Conflict {
            code: "is_secret",
            message: e.to_string(),
            candidates: None,
        },
        e @ PutError::OtherKey { .. } => AppError::Unavailable(e.to_string()),
        e @ PutError::Seal(_) => AppError::Internal(e.to_string()),
    }
}

fn too_large() -> AppError {
    AppError::PayloadTooLarge(format!("`value` is over {MAX_VALUE_BYTES} bytes"))
}

/// Every entry: key, whether it is a secret, times (never a value).
#[utoipa::path(get, path = "/api/config", tag = "config",
    responses((status = 200, description = "The entries, by key", body = Vec<EntryInfo>)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<EntryInfo>>> {
    Ok(Json(config_entries::list(state.db()).await?))
}

/// One entry, with its value unless it is a secret.
#[utoipa::path(get, path = "/api/config/{key}", tag = "config",
    params(("key" = String, Path, description = "Entry key")),
    responses(
        (status = 200, description = "The entry (`value` absent for a secret)", body = EntryView),
        (status = 404, description = "No such entry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<EntryView>> {
    if check_key(&key).is_err() {
        return Err(not_found(&key));
    }
    let Some((info, stored)) = config_entries::get(state.db(), &key).await? else {
        return Err(not_found(&key));
    };
    let value = match stored {
        Stored::Plain(value) => Some(value),
        Stored::Secret(_) => None,
    };
    Ok(Json(EntryView { info, value }))
}

/// Delete an entry or a secret.
#[utoipa::path(delete, path = "/api/config/{key}", tag = "config",
    params(("key" = String, Path, description = "Entry key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such entry", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn remove(State(state): State<AppState>, Path(key): Path<String>) -> Result<StatusCode> {
    if check_key(&key).is_ok() && config_entries::delete(state.db(), &key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&key))
    }
}

fn not_found(key: &str) -> AppError {
    let shown: String = key.chars().take(config_entries::MAX_KEY_CHARS).collect();
    AppError::NotFound(format!("no config entry '{shown}'"))
}

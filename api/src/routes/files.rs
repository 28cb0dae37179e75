//! `/api/files`: write, read, delete, move and list workspace files.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, extract::rejection::QueryRejection};
use chrono::{DateTime, Utc};
use runeflow_shared::detect::{Diagnostic, WorkflowMeta};
use runeflow_shared::path::module_name;
use runeflow_shared::workspace::{FileSummary, WriteOutcome, find_live, list_files};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::AuditNote;
use crate::error::{AppError, ErrorBody, Result};
use crate::file_path::FilePath;
use crate::state::AppState;

/// Default and largest page size of a listing.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/files", get(list))
        // A file may be called `move`: the static route serves it too.
        .route(
            "/api/files/move",
            post(move_file).get(read).put(write).delete(remove),
        )
        .route("/api/files/", get(read).put(write).delete(remove))
        .route("/api/files/{*path}", get(read).put(write).delete(remove))
}

/// A stored file as returned by writes and moves.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileResponse {
    pub path: String,
    #[schema(example = "module")]
    pub entity_type: String,
    /// Dotted import name, or null when the file cannot be imported.
    pub module: Option<String>,
    pub content_hash: String,
    pub size: i64,
    pub updated_at: DateTime<Utc>,
    pub workflows: Vec<WorkflowMeta>,
    pub diagnostics: Vec<Diagnostic>,
}

impl From<WriteOutcome> for FileResponse {
    fn from(o: WriteOutcome) -> Self {
        FileResponse {
            module: module_name(&o.file.path),
            path: o.file.path,
            entity_type: o.file.entity_type,
            content_hash: o.file.content_hash,
            size: o.file.size,
            updated_at: o.file.updated_at.with_timezone(&Utc),
            workflows: o.workflows,
            diagnostics: o.diagnostics,
        }
    }
}

/// One entry of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntry {
    pub path: String,
    pub entity_type: String,
    pub module: Option<String>,
    pub content_hash: String,
    pub size: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<FileSummary> for FileEntry {
    fn from(f: FileSummary) -> Self {
        FileEntry {
            module: module_name(&f.path),
            path: f.path,
            entity_type: f.entity_type,
            content_hash: f.content_hash,
            size: f.size,
            updated_at: f.updated_at.with_timezone(&Utc),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileEntry>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only paths starting with this text.
    pub prefix: Option<String>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MoveRequest {
    pub from: String,
    pub to: String,
}

/// Create or replace a file; the body is the raw content.
#[utoipa::path(put, path = "/api/files/{path}", tag = "files",
    params(("path" = String, Path, description = "Workspace path, e.g. shared/halo.py")),
    request_body(content = String, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Created (or re-created after a delete)", body = FileResponse),
        (status = 200, description = "Updated", body = FileResponse),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 413, description = "Body over RUNEFLOW_MAX_FILE_BYTES", body = ErrorBody),
        (status = 415, description = "Content is not UTF-8", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn write(
    State(state): State<AppState>,
    FilePath(path): FilePath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let limit = state.max_file_bytes();
    let too_large =
        || AppError::PayloadTooLarge(format!("body is over the limit of {limit} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let outcome = state.workspace.write(path.as_str(), &bytes).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(FileResponse::from(outcome))).into_response())
}

/// Read a file's raw content. `ETag` is the quoted content hash.
#[utoipa::path(get, path = "/api/files/{path}", tag = "files",
    params(("path" = String, Path, description = "Workspace path")),
    responses(
        (status = 200, description = "Raw content", body = String, content_type = "text/plain"),
        (status = 304, description = "Matches If-None-Match"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No live file there", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    FilePath(path): FilePath,
    headers: HeaderMap,
) -> Result<Response> {
    let file = find_live(state.db(), path.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no file at '{path}'")))?;
    let etag = format!("\"{}\"", file.content_hash);
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok())
        && etag_matches(inm, &file.content_hash)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    let content_type = if path.is_python() {
        "text/x-python; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok((
        StatusCode::OK,
        [(ETAG, etag), (CONTENT_TYPE, content_type.to_owned())],
        file.content,
    )
        .into_response())
}

/// `If-None-Match` holds a list of (possibly weak) tags, or `*`.
fn etag_matches(header: &str, hash: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == hash)
}

/// Delete a file (soft delete: it can be written again later).
#[utoipa::path(delete, path = "/api/files/{path}", tag = "files",
    params(("path" = String, Path, description = "Workspace path")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No live file there", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn remove(State(state): State<AppState>, FilePath(path): FilePath) -> Result<StatusCode> {
    state.workspace.delete(path.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Move a file to a free path.
#[utoipa::path(post, path = "/api/files/move", tag = "files",
    request_body = MoveRequest,
    responses(
        (status = 200, description = "Moved; the file at its new path", body = FileResponse),
        (status = 400, description = "Invalid path", body = ErrorBody),
        (status = 404, description = "No live file at `from`", body = ErrorBody),
        (status = 409, description = "A live file exists at `to`", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn move_file(
    State(state): State<AppState>,
    body: std::result::Result<Json<MoveRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    // Paths, not values: the audit row names both, whatever the outcome.
    let note = AuditNote::target(format!("{} -> {}", req.from, req.to));
    let moved = state
        .workspace
        .rename(&req.from, &req.to)
        .await
        .map_err(AppError::from);
    Ok(note.or_on(moved.map(|outcome| Json(FileResponse::from(outcome)))))
}

/// List live files in path order, a page at a time.
#[utoipa::path(get, path = "/api/files", tag = "files", params(ListParams),
    responses(
        (status = 200, description = "One page", body = FileList),
        (status = 400, description = "Bad query", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: std::result::Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<FileList>> {
    let Query(params) =
        params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let limit = super::page_limit(params.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    super::text_query("prefix", params.prefix.as_deref())?;
    super::text_query("cursor", params.cursor.as_deref())?;
    let page = list_files(
        state.db(),
        params.prefix.as_deref().unwrap_or(""),
        params.cursor.as_deref(),
        limit,
    )
    .await?;
    Ok(Json(FileList {
        files: page.files.into_iter().map(FileEntry::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

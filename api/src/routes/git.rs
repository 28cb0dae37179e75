//! `/api/git/push` and `/api/git/pull`: sync the workspace with a git
//! remote (see `crate::git`). The request names the remote and branch;
//! credentials are the API's own (environment), never part of a request.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::error::{AppError, ErrorBody, Result};
use crate::git::remote::Remote;
use crate::git::{self, GitError, Prefer, PullReport, PushReport};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/git/push", post(push))
        .route("/api/git/pull", post(pull))
}

fn default_branch() -> String {
    "main".to_owned()
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PushRequest {
    /// Remote URL: `https://host/path`. `http://`, `file://` and absolute
    /// paths on the API's host only when the API runs with
    /// `RUNEFLOW_GIT_ALLOW_INSECURE=true` (development). Never with
    /// credentials in it.
    pub remote: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    #[serde(default)]
    pub message: Option<String>,
    /// Push even when the branch moved since the last sync.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PullRequest {
    /// Same rules as [`PushRequest::remote`].
    pub remote: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// `ours` or `theirs`: how to resolve files changed on both sides.
    #[serde(default)]
    pub prefer: Option<String>,
}

/// Commit every live workspace file on top of the branch and push it.
#[utoipa::path(post, path = "/api/git/push", tag = "git", request_body = PushRequest,
    responses(
        (status = 200, description = "Pushed (or already equal)", body = PushReport),
        (status = 400, description = "Bad remote (`invalid_remote`) or branch", body = ErrorBody),
        (status = 409, description = "The branch moved since the last sync", body = ErrorBody),
        (status = 502, description = "The remote failed or sent too much", body = ErrorBody),
        (status = 503, description = "Every git sync slot is taken (`busy`)", body = ErrorBody),
        (status = 504, description = "The remote did not finish within the time limit", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn push(
    State(state): State<AppState>,
    body: std::result::Result<Json<PushRequest>, JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    let note = sync_note(&state, &req.remote, &req.branch);
    let message = req
        .message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| "Update from Runeflow".to_owned());
    let report = git::push(
        &state.workspace,
        &state.git,
        &req.remote,
        &req.branch,
        &message,
        req.force,
    )
    .await
    .map_err(into_app_error);
    Ok(note.or_on(report.map(Json)))
}

/// Fetch the branch and apply its adds, changes and deletes to the workspace.
#[utoipa::path(post, path = "/api/git/pull", tag = "git", request_body = PullRequest,
    responses(
        (status = 200, description = "Per-file actions (conflicts are listed, not applied)", body = PullReport),
        (status = 400, description = "Bad remote (`invalid_remote`), branch or prefer", body = ErrorBody),
        (status = 404, description = "No such branch", body = ErrorBody),
        (status = 502, description = "The remote failed or sent too much", body = ErrorBody),
        (status = 503, description = "Every git sync slot is taken (`busy`)", body = ErrorBody),
        (status = 504, description = "The remote did not finish within the time limit", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn pull(
    State(state): State<AppState>,
    body: std::result::Result<Json<PullRequest>, JsonRejection>,
) -> Result<Response> {
    let Json(req) = body.map_err(|e| AppError::bad_request("invalid_body", e.body_text()))?;
    let note = sync_note(&state, &req.remote, &req.branch);
    let prefer = match req.prefer.as_deref() {
        None => None,
        Some("ours") => Some(Prefer::Ours),
        Some("theirs") => Some(Prefer::Theirs),
        Some(other) => {
            return Ok(note.or_on(AppError::bad_request(
                "invalid_body",
                format!("prefer must be \"ours\" or \"theirs\", not {other:?}"),
            )));
        }
    };
    let report = git::pull(
        &state.workspace,
        &state.git,
        &req.remote,
        &req.branch,
        prefer,
    )
    .await
    .map_err(into_app_error);
    Ok(note.or_on(report.map(Json)))
}

/// The audit target of a sync: the remote (only once it passed the rules,
/// so never with credentials, and without its query) and the branch.
fn sync_note(state: &AppState, remote: &str, branch: &str) -> AuditNote {
    match Remote::parse(remote, state.git.allow_insecure) {
        Ok(remote) => {
            let url = remote.url();
            let url = url.split_once('?').map_or(url, |(before, _)| before);
            AuditNote::target(format!("{url} {branch}"))
        }
        Err(_) => AuditNote::default(),
    }
}

fn into_app_error(err: GitError) -> AppError {
    match err {
        GitError::BadRequest(message) => AppError::bad_request("invalid_git_request", message),
        GitError::InvalidRemote(err) => AppError::bad_request("invalid_remote", err.to_string()),
        GitError::TimedOut(message) => AppError::GatewayTimeout(message),
        GitError::TooLarge(message) => AppError::BadGateway(message),
        GitError::Busy(message) => AppError::Busy(message),
        GitError::Lock(err) => AppError::Internal(err.to_string()),
        GitError::NotFound(message) => AppError::NotFound(message),
        GitError::Moved(message) => AppError::Conflict {
            code: "branch_moved",
            message,
            candidates: None,
        },
        GitError::Refused(message) => AppError::Unprocessable(message),
        GitError::Remote(message) => AppError::BadGateway(format!("git remote: {message}")),
        GitError::Db(err) => AppError::Internal(format!("database: {err}")),
        GitError::Local(message) => AppError::Internal(format!("git: {message}")),
        GitError::Workspace(err) => AppError::Internal(err.to_string()),
    }
}

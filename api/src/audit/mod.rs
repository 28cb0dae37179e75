//! The audit middleware: every request under `/api` that is not a read is
//! recorded in `audit_log` after its handler ran, with the actor the
//! response names ([`Actor`]), the route's action (or the handler's
//! [`AuditNote`]), a target from the path parameters (or the note) and the
//! outcome of the status. Nothing comes from a request body.
//!
//! A request without a known actor (no credentials, an unknown or revoked
//! token, an unknown endpoint key) is not recorded, so anonymous traffic
//! cannot fill the table. Scheduler ticks are not API actions and are not
//! recorded either.

mod actions;
mod note;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use runeflow_shared::audit::{self, Entry, Outcome};

pub use actions::action_for;
pub use note::{Actor, AuditNote};

use crate::file_path::FILES_PREFIX;
use crate::state::AppState;

/// Runs the request, then records it. Handler and recording run in a task
/// of their own: a client that goes away mid-request neither cuts the
/// action short nor leaves it unrecorded. A failed recording is logged and
/// never changes the answer.
pub async fn record(
    State(state): State<AppState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if !actions::is_recorded(&method) {
        return next.run(request).await;
    }
    let arrived = chrono::Utc::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let path_target = path_target(&method, &route, request.uri(), params.ok().as_ref());
    let task = tokio::spawn(async move {
        let response = next.run(request).await;
        let Some(Actor(actor)) = response.extensions().get::<Actor>().cloned() else {
            return response;
        };
        let note = response
            .extensions()
            .get::<AuditNote>()
            .cloned()
            .unwrap_or_default();
        let action = note
            .action
            .or_else(|| action_for(&method, &route))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{method} {route}"));
        let status = response.status().as_u16();
        let entry = Entry {
            actor,
            action,
            target: note.target.or(path_target),
            outcome: Outcome::of_status(status),
            status: Some(status),
            at: Some(arrived),
        };
        if let Err(err) = audit::record(state.db(), &entry).await {
            tracing::error!(
                error = %err,
                actor = %entry.actor,
                action = %entry.action,
                target = ?entry.target,
                status,
                "could not record an audit log entry (the request itself stands)"
            );
        }
        response
    });
    match task.await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "a request's task failed");
            crate::error::AppError::Internal(format!("request task: {err}")).into_response()
        }
    }
}

/// The target a route's path names: the file path of a file write or
/// delete (`/api/files/move` is also the file `move`), else the path
/// parameters joined by spaces (`<workflow> <key id>`).
fn path_target(
    method: &Method,
    route: &str,
    uri: &Uri,
    params: Option<&RawPathParams>,
) -> Option<String> {
    if route.starts_with(FILES_PREFIX) && matches!(*method, Method::PUT | Method::DELETE) {
        let raw = uri.path().strip_prefix(FILES_PREFIX).unwrap_or_default();
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        return Some(String::from_utf8_lossy(&bytes).into_owned());
    }
    let joined = params?
        .iter()
        .map(|(_, value)| value)
        .collect::<Vec<_>>()
        .join(" ");
    (!joined.is_empty()).then_some(joined)
}

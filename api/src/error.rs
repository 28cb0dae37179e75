//! The one error type of the API: client errors become 4xx with a JSON body
//! naming the problem; server errors are logged and answered with a generic
//! 5xx so internals are never echoed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use runeflow_shared::path::PathError;
use runeflow_shared::workspace::WorkspaceError;
use serde::Serialize;
use utoipa::ToSchema;

/// `Result` with [`AppError`] as the default error.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The error body every non-2xx answer carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_path`, `not_found`.
    pub code: String,
    /// One sentence for a person.
    pub message: String,
    /// For `invalid_path`: which rule the path broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For `ambiguous_workflow`: the definitions that share the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub candidates: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    InvalidPath(PathError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The token is live but lacks the scope its route needs.
    #[error("this token lacks the '{0}' scope, which this route needs")]
    Forbidden(runeflow_shared::tokens::Scope),
    /// An HTTP endpoint's key was refused (the message says why, never the key).
    #[error("{0}")]
    UnauthorizedKey(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        candidates: Option<serde_json::Value>,
    },
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// A secret was sent, but this API process has no key to seal it with.
    #[error("secrets cannot be written: this API has no RUNEFLOW_SECRET_KEY")]
    SecretsUnavailable,
    /// An upstream the API talks to for the request (a git remote) failed.
    #[error("{0}")]
    BadGateway(String),
    /// That upstream did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// A bounded resource (git sync slots) stayed taken; try again later.
    #[error("{0}")]
    Busy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            AppError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            AppError::Unauthorized | AppError::UnauthorizedKey(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_parameters"),
            AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            AppError::SecretsUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "secrets_unavailable")
            }
            AppError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            AppError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            AppError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<WorkspaceError> for AppError {
    fn from(err: WorkspaceError) -> Self {
        match err {
            WorkspaceError::Path(e) => AppError::InvalidPath(e),
            e @ (WorkspaceError::NotUtf8 { .. } | WorkspaceError::NulByte { .. }) => {
                AppError::UnsupportedMediaType(e.to_string())
            }
            e @ WorkspaceError::TooLarge { .. } => AppError::PayloadTooLarge(e.to_string()),
            e @ WorkspaceError::NotFound(_) => AppError::NotFound(e.to_string()),
            e @ WorkspaceError::Exists(_) => AppError::Conflict {
                code: "already_exists",
                message: e.to_string(),
                candidates: None,
            },
            WorkspaceError::Db(e) => AppError::Internal(format!("database: {e}")),
            WorkspaceError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// A failed insert is a database error (500); a failed WAL flush means
/// PostgreSQL cannot promise the execution is durable yet (503).
impl From<crate::queue::EnqueueError> for AppError {
    fn from(err: crate::queue::EnqueueError) -> Self {
        match err {
            crate::queue::EnqueueError::Insert(e) => AppError::from(e),
            flush @ crate::queue::EnqueueError::Flush(_) => {
                AppError::Unavailable(flush.to_string())
            }
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        AppError::Internal(format!("database: {err}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            AppError::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                "internal server error".to_owned()
            }
            other => other.to_string(),
        };
        let (rule, candidates) = match self {
            AppError::InvalidPath(e) => (Some(e.rule.code().to_owned()), None),
            AppError::Conflict { candidates, .. } => (None, candidates),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
                rule,
                candidates,
            },
        };
        (status, Json(body)).into_response()
    }
}

//! Extracting a workspace path from `/api/files/{path}`.
//!
//! The path is taken from the raw URI and percent-decoded here, not by axum's
//! `Path` extractor, so that invalid UTF-8, an empty path and every other
//! refusal come back as our JSON 400 naming the rule.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use percent_encoding::percent_decode_str;
use runeflow_shared::path::WorkspacePath;

use crate::error::AppError;

/// Where file routes live; everything after it is the workspace path.
pub const FILES_PREFIX: &str = "/api/files/";

/// A validated workspace path taken from the request URI.
#[derive(Debug, Clone)]
pub struct FilePath(pub WorkspacePath);

impl<S: Send + Sync> FromRequestParts<S> for FilePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts
            .uri
            .path()
            .strip_prefix(FILES_PREFIX)
            .unwrap_or_default();
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        WorkspacePath::from_bytes(&bytes)
            .map(FilePath)
            .map_err(AppError::InvalidPath)
    }
}

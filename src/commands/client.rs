//! The HTTP client behind the client verbs (`push`, `run`, `ls`, ...): the
//! REST API with its bearer token, errors turned into messages that name
//! the API's own error code and text.

use std::fmt;

use anyhow::Context;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::ClientArgs;

/// Characters escaped in one path segment (everything but unreserved ones).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// An error answer of the API (`{"error": {"code", "message"}}`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// A client of one Runeflow API.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// One workspace file as `GET /api/files` lists it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RemoteFile {
    pub path: String,
    pub content_hash: String,
    pub entity_type: String,
    pub size: i64,
}

impl ApiClient {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let token = args
            .api_token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .context("RUNEFLOW_API_TOKEN is not set (set it or pass --api-token)")?;
        Ok(ApiClient {
            http: reqwest::Client::new(),
            base: args.url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// `/api/files/<path>` with each segment percent-encoded.
    pub fn file_url(&self, path: &str) -> String {
        let encoded: Vec<String> = path
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        format!("{}/api/files/{}", self.base, encoded.join("/"))
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        builder
            .send()
            .await
            .with_context(|| format!("the Runeflow API at {} is unreachable", self.base))
    }

    /// A JSON answer, or the API's error.
    pub async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.json_with(method, path_and_query, body, &[]).await
    }

    /// [`ApiClient::json`] with extra headers (e.g. `Idempotency-Key`).
    pub async fn json_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut builder = self.request(method, &format!("{}{path_and_query}", self.base));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = body {
            builder = builder.json(body);
        }
        let response = self.send(builder).await?;
        let status = response.status();
        let text = response.text().await.context("reading the API's answer")?;
        if !status.is_success() {
            return Err(api_error(status, &text).into());
        }
        if text.trim().is_empty() {
            // 204 No Content (e.g. a revoke).
            return Ok((status, Value::Null));
        }
        let value = serde_json::from_str(&text).with_context(|| {
            format!("the API answered {status} with something that is not JSON")
        })?;
        Ok((status, value))
    }

    pub async fn get_json(&self, path_and_query: &str) -> anyhow::Result<Value> {
        Ok(self.json(Method::GET, path_and_query, None).await?.1)
    }

    /// Every live file under `prefix`, following the cursor.
    pub async fn list_files(&self, prefix: &str) -> anyhow::Result<Vec<RemoteFile>> {
        let mut files = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = format!(
                "/api/files?limit=1000&prefix={}",
                utf8_percent_encode(prefix, SEGMENT)
            );
            if let Some(c) = &cursor {
                query.push_str(&format!("&cursor={}", utf8_percent_encode(c, SEGMENT)));
            }
            let page = self.get_json(&query).await?;
            let batch: Vec<RemoteFile> = serde_json::from_value(page["files"].clone())
                .context("the API's file list has an unexpected shape")?;
            files.extend(batch);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(files),
            }
        }
    }

    /// Raw content of a workspace file.
    pub async fn read_file(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .send(self.request(Method::GET, &self.file_url(path)))
            .await?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading a file's content")?;
        if !status.is_success() {
            return Err(api_error(status, &String::from_utf8_lossy(&bytes)).into());
        }
        Ok(bytes.to_vec())
    }

    /// Upserts a file (201 created, 200 updated); `Err(ApiError)` when the
    /// API refuses it.
    pub async fn write_file(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<StatusCode> {
        let response = self
            .send(self.request(Method::PUT, &self.file_url(path)).body(bytes))
            .await?;
        let status = response.status();
        let text = response.text().await.context("reading the API's answer")?;
        if !status.is_success() {
            return Err(api_error(status, &text).into());
        }
        Ok(status)
    }

    pub async fn delete_file(&self, path: &str) -> anyhow::Result<()> {
        self.delete_url(&self.file_url(path)).await
    }

    /// `DELETE` of an API path (answered with no body), or the API's error.
    pub async fn delete(&self, path_and_query: &str) -> anyhow::Result<()> {
        self.delete_url(&format!("{}{path_and_query}", self.base))
            .await
    }

    async fn delete_url(&self, url: &str) -> anyhow::Result<()> {
        let response = self.send(self.request(Method::DELETE, url)).await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(api_error(status, &text).into());
        }
        Ok(())
    }
}

/// The API's `{"error": {"code", "message"}}`, or the raw text.
fn api_error(status: StatusCode, text: &str) -> ApiError {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][name].as_str())
            .map(str::to_owned)
    };
    ApiError {
        status,
        code: field("code").unwrap_or_else(|| "http_error".to_owned()),
        message: field("message").unwrap_or_else(|| text.trim().to_owned()),
    }
}

/// The API error inside an anyhow error, if that is what it is.
pub fn as_api_error(err: &anyhow::Error) -> Option<&ApiError> {
    err.downcast_ref::<ApiError>()
}

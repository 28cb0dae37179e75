//! Runtime configuration: one clap struct, every field also read from the
//! environment (flags win). Each subcommand flattens [`Config`] so `runeflow
//! api --help` documents exactly what the process reads.

use std::net::SocketAddr;

use clap::Args;

/// Default cap on one workspace file (8 MiB).
pub const DEFAULT_MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// Settings shared by every Runeflow process.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL URL, e.g. `postgres://postgres@127.0.0.1:5432/runeflow`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Redis URL; the `/N` database number in it is honoured everywhere.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Bearer token every `/api` request must carry.
    #[arg(long, env = "RUNEFLOW_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Address the API listens on.
    #[arg(long, env = "RUNEFLOW_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Prefix of every Redis key, so deployments and test runs can share a Redis.
    #[arg(long, env = "RUNEFLOW_REDIS_PREFIX", default_value = "runeflow")]
    pub redis_prefix: String,

    /// Largest workspace file accepted, in bytes.
    #[arg(long, env = "RUNEFLOW_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: usize,

    /// User name for https git remotes (`/api/git/*`).
    #[arg(long, env = "RUNEFLOW_GIT_USERNAME")]
    pub git_username: Option<String>,

    /// Token (or password) for https git remotes; never taken from a request.
    #[arg(long, env = "RUNEFLOW_GIT_TOKEN", hide_env_values = true)]
    pub git_token: Option<String>,

    /// Author of the commits `git push` makes, as `Name <email>`.
    #[arg(
        long,
        env = "RUNEFLOW_GIT_AUTHOR",
        default_value = "Runeflow <runeflow@localhost>"
    )]
    pub git_author: String,
}

/// A required setting is absent.
#[derive(Debug, thiserror::Error)]
#[error("{env} is not set (set the {env} environment variable or pass --{flag})")]
pub struct MissingSetting {
    pub env: &'static str,
    pub flag: &'static str,
}

impl Config {
    /// A config for tests and embedding: URLs given, everything else default.
    pub fn new(database_url: impl Into<String>, redis_url: impl Into<String>) -> Self {
        Config {
            database_url: Some(database_url.into()),
            redis_url: Some(redis_url.into()),
            api_token: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            redis_prefix: "runeflow".to_owned(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            git_username: None,
            git_token: None,
            git_author: "Runeflow <runeflow@localhost>".to_owned(),
        }
    }

    pub fn database_url(&self) -> Result<&str, MissingSetting> {
        non_empty(&self.database_url, "DATABASE_URL", "database-url")
    }

    pub fn redis_url(&self) -> Result<&str, MissingSetting> {
        non_empty(&self.redis_url, "REDIS_URL", "redis-url")
    }

    pub fn api_token(&self) -> Result<&str, MissingSetting> {
        non_empty(&self.api_token, "RUNEFLOW_API_TOKEN", "api-token")
    }
}

fn non_empty<'a>(
    value: &'a Option<String>,
    env: &'static str,
    flag: &'static str,
) -> Result<&'a str, MissingSetting> {
    match value.as_deref() {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(MissingSetting { env, flag }),
    }
}

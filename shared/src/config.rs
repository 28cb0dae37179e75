//! Runtime configuration: one clap struct, every field also read from the
//! environment (flags win). Each subcommand flattens [`Config`] so `runeflow
//! api --help` documents exactly what the process reads.

use std::net::SocketAddr;

use clap::Args;

/// Default cap on one workspace file (8 MiB).
pub const DEFAULT_MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Default time limit of a git sync's network part (2 minutes).
pub const DEFAULT_GIT_TIMEOUT_SECS: u64 = 120;
/// Default cap on what one git fetch receives (256 MiB).
pub const DEFAULT_GIT_MAX_FETCH_BYTES: u64 = 256 * 1024 * 1024;
/// Default number of git syncs one API process runs at once.
pub const DEFAULT_GIT_MAX_SYNCS: usize = 4;
/// Default age, in days, after which executions are deleted.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

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

    /// Development only: also accept `http://`, `file://` and local-path git
    /// remotes. Off, only `https://` remotes are accepted (a 400
    /// `invalid_remote` names the problem), and credentials are never sent
    /// over anything but https in any case.
    #[arg(long, env = "RUNEFLOW_GIT_ALLOW_INSECURE", default_value_t = false, action = clap::ArgAction::Set)]
    pub git_allow_insecure: bool,

    /// Time limit of one git push's or pull's network part, in seconds.
    #[arg(long, env = "RUNEFLOW_GIT_TIMEOUT_SECS", default_value_t = DEFAULT_GIT_TIMEOUT_SECS)]
    pub git_timeout_secs: u64,

    /// Most bytes one git fetch may receive from a remote.
    #[arg(long, env = "RUNEFLOW_GIT_MAX_FETCH_BYTES", default_value_t = DEFAULT_GIT_MAX_FETCH_BYTES)]
    pub git_max_fetch_bytes: u64,

    /// Git syncs one API process runs at once; more wait (up to the time
    /// limit) for a slot, so slow remotes cannot tie up the API.
    #[arg(long, env = "RUNEFLOW_GIT_MAX_SYNCS", default_value_t = DEFAULT_GIT_MAX_SYNCS)]
    pub git_max_syncs: usize,

    /// Executions older than this many days are deleted by the API's
    /// retention janitor (0 keeps them forever).
    #[arg(long, env = "RUNEFLOW_RETENTION_DAYS", default_value_t = DEFAULT_RETENTION_DAYS)]
    pub retention_days: u32,
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
            git_allow_insecure: false,
            git_timeout_secs: DEFAULT_GIT_TIMEOUT_SECS,
            git_max_fetch_bytes: DEFAULT_GIT_MAX_FETCH_BYTES,
            git_max_syncs: DEFAULT_GIT_MAX_SYNCS,
            retention_days: DEFAULT_RETENTION_DAYS,
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

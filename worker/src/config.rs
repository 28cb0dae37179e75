//! Worker settings (flags or environment; flags win).

use std::time::Duration;

use clap::Args;

use crate::child_users::ChildUsersMode;

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Executions run at once by this worker process.
    #[arg(long, env = "RUNEFLOW_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Name of this worker; default host-pid-random, unique per process
    /// (apalis refuses a name still registered by a dead process).
    #[arg(long, env = "RUNEFLOW_WORKER_NAME")]
    pub worker_name: Option<String>,

    /// Python interpreter; point it into a venv to provide packages.
    #[arg(long, env = "RUNEFLOW_PYTHON", default_value = "python3")]
    pub python: String,

    /// Modules the zygote imports once, before forking (comma-separated).
    #[arg(
        long,
        env = "RUNEFLOW_PRELOAD",
        value_delimiter = ',',
        default_value = "json,asyncio,logging,traceback"
    )]
    pub preload: Vec<String>,

    /// Extra environment variables passed to user code (comma-separated
    /// names); everything else is scrubbed.
    #[arg(long, env = "RUNEFLOW_CHILD_ENV", value_delimiter = ',')]
    pub child_env: Vec<String>,

    /// Timeout of a workflow that sets none, in seconds.
    #[arg(long, env = "RUNEFLOW_DEFAULT_TIMEOUT", default_value_t = 300.0)]
    pub default_timeout: f64,

    /// Address-space limit of a child, in MiB (0 = none).
    #[arg(long, env = "RUNEFLOW_MEMORY_LIMIT_MB", default_value_t = 2048)]
    pub memory_limit_mb: u64,

    /// CPU-time limit of a child, in seconds (0 = none).
    #[arg(long, env = "RUNEFLOW_CPU_LIMIT_SECS", default_value_t = 0)]
    pub cpu_limit_secs: u64,

    /// Captured output kept per execution, in bytes.
    #[arg(long, env = "RUNEFLOW_MAX_LOG_BYTES", default_value_t = 1024 * 1024)]
    pub max_log_bytes: usize,

    /// Largest frame accepted from a child, in bytes.
    #[arg(long, env = "RUNEFLOW_MAX_FRAME_BYTES", default_value_t = runeflow_shared::protocol::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// How often an idle worker polls the queue, in milliseconds. Pushes
    /// wake workers at once through Redis pub/sub; the poll is the safety
    /// net for a lost wake-up.
    #[arg(long, env = "RUNEFLOW_POLL_MS", default_value_t = 500)]
    pub poll_ms: u64,

    /// Heartbeat period, in milliseconds.
    #[arg(long, env = "RUNEFLOW_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,

    /// Missed heartbeats after which a worker's jobs are re-queued.
    #[arg(long, env = "RUNEFLOW_MISSED_HEARTBEATS", default_value_t = 5)]
    pub missed_heartbeats: usize,

    /// Attempts of one execution lost to worker faults before it is failed.
    #[arg(long, env = "RUNEFLOW_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: i32,

    /// Grace period for running executions on SIGTERM, in seconds.
    #[arg(long, env = "RUNEFLOW_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,

    /// Run children under uids of their own, one per concurrency slot:
    /// `auto` when the worker can switch users (root with CAP_SETUID,
    /// CAP_SETGID and CAP_KILL), `required` (refuse to start otherwise),
    /// or `off`.
    #[arg(long, env = "RUNEFLOW_CHILD_USERS", value_enum, default_value = "auto")]
    pub child_users: ChildUsersMode,

    /// Uids (and equal gids) children may run under, `FIRST-LAST`; each
    /// worker on a host claims one per concurrency slot. They need no
    /// /etc/passwd entry.
    #[arg(long, env = "RUNEFLOW_CHILD_UID_RANGE", default_value = "70000-70999")]
    pub child_uid_range: String,

    /// Processes (threads included) one execution may have at once
    /// (RLIMIT_NPROC of its uid; only with child users, since otherwise it
    /// would count the worker's own; 0 = none).
    #[arg(long, env = "RUNEFLOW_MAX_PROCESSES", default_value_t = 256)]
    pub max_processes: u64,

    /// Open files per process of an execution (RLIMIT_NOFILE; 0 = inherited).
    #[arg(long, env = "RUNEFLOW_MAX_OPEN_FILES", default_value_t = 1024)]
    pub max_open_files: u64,

    /// Largest file an execution may write, in MiB (RLIMIT_FSIZE; 0 = none).
    #[arg(long, env = "RUNEFLOW_MAX_FILE_SIZE_MB", default_value_t = 1024)]
    pub max_file_size_mb: u64,

    /// Largest result accepted from a workflow, in bytes of JSON (at most
    /// RUNEFLOW_MAX_FRAME_BYTES).
    #[arg(long, env = "RUNEFLOW_MAX_RESULT_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_result_bytes: usize,

    /// Memory a parsed result may take in the worker, in MiB (estimated
    /// while parsing; a result over it fails `ResultTooLarge`). JSON text
    /// can grow many times once parsed: `[0,0,…]` takes 32-64 bytes per
    /// 2-byte element.
    #[arg(long, env = "RUNEFLOW_MAX_RESULT_MEMORY_MB", default_value_t = 64)]
    pub max_result_memory_mb: usize,

    /// Module sources kept in memory by this worker, in MiB (shared by all
    /// executions; least recently used first out).
    #[arg(long, env = "RUNEFLOW_SOURCE_CACHE_MB", default_value_t = 64)]
    pub source_cache_mb: usize,

    /// Compiled modules kept in memory by this worker, in MiB.
    #[arg(long, env = "RUNEFLOW_CODE_CACHE_MB", default_value_t = 128)]
    pub code_cache_mb: usize,

    /// Virtual folder the workspace appears under in `__file__`.
    #[arg(
        long,
        env = "RUNEFLOW_VIRTUAL_ROOT",
        default_value = "/runeflow/workspace"
    )]
    pub virtual_root: String,

    /// File the worker writes its last consumer heartbeat to, for
    /// `runeflow worker-health` (container healthchecks); unset: none.
    #[arg(long, env = "RUNEFLOW_HEALTH_FILE")]
    pub health_file: Option<std::path::PathBuf>,
}

impl WorkerConfig {
    /// The default timeout, clamped into the range every timeout must be in.
    pub fn default_timeout(&self) -> Duration {
        let max = runeflow_shared::timeout::MAX_TIMEOUT_SECONDS;
        if self.default_timeout.is_nan() {
            return Duration::from_secs_f64(max);
        }
        Duration::from_secs_f64(self.default_timeout.clamp(0.001, max))
    }

    /// The configured name, or a fresh `host-pid-random` one.
    pub fn resolve_name(&self) -> String {
        if let Some(name) = self.worker_name.as_ref().filter(|n| !n.is_empty()) {
            return name.clone();
        }
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "worker".to_owned());
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}-{}", std::process::id(), &random[..8])
    }
}

impl Default for WorkerConfig {
    /// The defaults documented on each flag (environment variables apply).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            config: WorkerConfig,
        }
        <Defaults as clap::Parser>::parse_from(["runeflow-worker"]).config
    }
}

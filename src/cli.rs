//! Command-line interface. Every server setting is in the shared
//! [`Config`], read from flags or the environment (flags win).

use clap::{Parser, Subcommand};
use runeflow_shared::config::Config;
use runeflow_worker::WorkerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "runeflow",
    version,
    about = "Run Python workflows stored in PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the migrations (under an advisory lock) and warm the module store.
    Init(ServerArgs),
    /// Serve the REST API.
    Api(ServerArgs),
    /// Run workflows: consume the executions queue.
    Worker(WorkerArgs),
    /// Everything in one process (init, api, one worker); starts a private
    /// PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset.
    Dev(DevArgs),
    /// Upload a folder to the workspace: only new and changed files.
    Push(PushArgs),
    /// Write the workspace (or a prefix of it) to a folder.
    Pull(PullArgs),
    /// List workspace files.
    Ls(LsArgs),
    /// List workflows and data providers with their parameters.
    Workflows(ClientArgs),
    /// Run a workflow and print its result (exit code 1 unless it succeeded).
    Run(RunArgs),
    /// List executions, newest first.
    Executions(ExecutionsArgs),
    /// Print an execution's captured output.
    Logs(ExecutionIdArgs),
    /// Cancel an execution: a queued one never starts, a running one is
    /// killed with everything it started.
    Cancel(ExecutionIdArgs),
    /// List, add and remove cron schedules.
    #[command(subcommand)]
    Schedules(SchedulesCommand),
    /// Scoped API tokens: create (printed once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Config entries and secrets that workflows read (admin scope).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The secret key: make a new one, re-seal every secret under another.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// HTTP endpoints: list them, manage their keys, call one.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// The audit log, newest first: who did what to which target, and how
    /// it ended (needs an admin token).
    Audit(AuditArgs),
    /// Sync the workspace with a git remote (through the API).
    #[command(subcommand)]
    Git(GitCommand),
    /// One-shot import of an existing workspace (a folder or s3://bucket/prefix).
    Import(ImportArgs),
    /// Exit 0 if the worker's consumer heartbeat is recent (a container
    /// healthcheck; reads the worker's RUNEFLOW_HEALTH_FILE).
    WorkerHealth(WorkerHealthArgs),
}

#[derive(Debug, clap::Args)]
pub struct WorkerHealthArgs {
    /// The file the worker writes its heartbeat to.
    #[arg(long, env = "RUNEFLOW_HEALTH_FILE")]
    pub health_file: std::path::PathBuf,
}

/// Where the API is and how to authenticate (client verbs).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Base URL of the Runeflow API.
    #[arg(long, env = "RUNEFLOW_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token of the API.
    #[arg(long, env = "RUNEFLOW_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Folder to upload.
    pub dir: std::path::PathBuf,
    /// Workspace folder to upload into (e.g. `team/`); default the root.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Also delete workspace files under the prefix that the folder lacks.
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Folder to write into (created when missing).
    pub dir: std::path::PathBuf,
    /// Only files under this workspace prefix (written relative to it).
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only paths starting with this.
    pub prefix: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Workflow name, or `path::function`.
    pub workflow: String,
    /// A parameter as `key=value` (value parsed as JSON, else a string); repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// All parameters as one JSON object (`-p` entries override its keys).
    #[arg(long, value_name = "JSON")]
    pub params_json: Option<String>,
    /// Print the execution id and return at once.
    #[arg(long)]
    pub no_wait: bool,
    /// Sent as `Idempotency-Key`: a repeat within 24 h returns the first
    /// run's execution instead of starting another.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token with scopes (read, run, write, admin); it is printed
    /// this once.
    Create(CreateTokenArgs),
    /// Every token: id, name, scopes, created, last used, revoked.
    Ls(ClientArgs),
    /// Revoke a token: refused from its next request on.
    Revoke(TokenIdArgs),
}

#[derive(Debug, clap::Args)]
pub struct TokenIdArgs {
    /// Token id (from `runeflow token ls`).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateTokenArgs {
    /// Who or what uses it (e.g. `ci`).
    #[arg(long)]
    pub name: String,
    /// Comma-separated: read, run, write, admin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Set an entry. A secret's value is read from stdin (never an
    /// argument, which `ps` and shell history would keep).
    Set(ConfigSetArgs),
    /// Print an entry's value (a secret's is never shown).
    Get(ConfigKeyArgs),
    /// Every entry: key, plain or secret, last update.
    Ls(ClientArgs),
    /// Delete an entry.
    Rm(ConfigKeyArgs),
}

#[derive(Debug, clap::Args)]
pub struct ConfigSetArgs {
    /// Letters, digits, `_`, `.`, `-` (e.g. `API_URL`).
    pub key: String,
    /// The value (a string; with --json, parsed as JSON). Omit it for a
    /// secret: the value is then read from stdin.
    pub value: Option<String>,
    /// Store a secret: sealed, readable only by workflows.
    #[arg(long)]
    pub secret: bool,
    /// Parse the value as JSON (numbers, lists, objects).
    #[arg(long, conflicts_with = "secret")]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ConfigKeyArgs {
    pub key: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key (64 hex digits) for RUNEFLOW_SECRET_KEY.
    NewKey,
    /// Re-seal every secret from RUNEFLOW_SECRET_KEY (the current key) to
    /// RUNEFLOW_NEW_SECRET_KEY, in one transaction, directly in PostgreSQL;
    /// then give the API and the workers the new key and restart them.
    RotateKey(ServerArgs),
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Workflows exposed as HTTP endpoints (`endpoint=True`).
    Ls(ClientArgs),
    /// A workflow's endpoint keys (never the keys themselves).
    Keys(EndpointNameArgs),
    /// Create an endpoint key; it is printed this once.
    CreateKey(CreateKeyArgs),
    /// Revoke an endpoint key: calls with it are refused from now on.
    RevokeKey(RevokeKeyArgs),
    /// Call an endpoint (with the bearer token) and print its result.
    Call(CallArgs),
}

#[derive(Debug, clap::Args)]
pub struct EndpointNameArgs {
    /// Workflow name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct CreateKeyArgs {
    /// Workflow name.
    pub workflow: String,
    /// What the key is for (e.g. the sender).
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct RevokeKeyArgs {
    /// Workflow name.
    pub name: String,
    /// Key id (from `runeflow endpoints keys`).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// Workflow name.
    pub name: String,
    /// A parameter as `key=value` (value parsed as JSON, else a string); repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// All parameters as one JSON object (`-p` entries override its keys).
    #[arg(long, value_name = "JSON")]
    pub params_json: Option<String>,
    /// Wait for the outcome and print it (else print the execution id).
    #[arg(long)]
    pub wait: bool,
    /// Sent as `Idempotency-Key`.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExecutionsArgs {
    /// Only this status (pending, running, success, failed, timeout, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this workflow name.
    #[arg(long)]
    pub workflow: Option<String>,
    /// How many (1..=500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only rows at or after this time (RFC 3339, e.g. 2026-12-06T09:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this actor (a token's name, `bootstrap`, `endpoint-key:<name>`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (e.g. file.write, execution.run, token.revoke).
    #[arg(long)]
    pub action: Option<String>,
    /// How many (1..=1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExecutionIdArgs {
    /// Execution id.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule (decorator and API ones) with its next run time.
    Ls(ClientArgs),
    /// Schedule a workflow with parameters.
    Add(ScheduleAddArgs),
    /// Remove an API schedule (a decorator schedule belongs to its file).
    Rm(ScheduleIdArgs),
    /// Pause a schedule (API or decorator): no ticks until resumed.
    Pause(ScheduleIdArgs),
    /// Resume a paused schedule from now (missed ticks are skipped).
    Resume(ScheduleIdArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScheduleAddArgs {
    /// Workflow name, or `path::function`.
    pub workflow: String,
    /// Cron expression: 5 fields, 6 with seconds first, or `@daily` etc.
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// A parameter as `key=value` (value parsed as JSON, else a string); repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// All parameters as one JSON object (`-p` entries override its keys).
    #[arg(long, value_name = "JSON")]
    pub params_json: Option<String>,
    /// Skip ticks missed during an outage instead of running the latest once.
    #[arg(long)]
    pub no_catch_up: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ScheduleIdArgs {
    /// Schedule id.
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum GitCommand {
    /// Commit every live workspace file on top of the branch and push it.
    Push(GitPushArgs),
    /// Fetch the branch and apply its changes to the workspace.
    Pull(GitPullArgs),
}

#[derive(Debug, clap::Args)]
pub struct GitPushArgs {
    /// Remote URL (or path), as the API's host sees it.
    #[arg(long)]
    pub remote: String,
    #[arg(long, default_value = "main")]
    pub branch: String,
    #[arg(long, short = 'm', default_value = "Update from Runeflow")]
    pub message: String,
    /// Push even when the branch moved since the last sync (its changes are overwritten).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct GitPullArgs {
    /// Remote URL (or path), as the API's host sees it.
    #[arg(long)]
    pub remote: String,
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Resolve files changed on both sides: keep `ours` or take `theirs`.
    #[arg(long, value_parser = ["ours", "theirs"])]
    pub prefer: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A folder, or `s3://bucket/prefix`.
    pub source: String,
    /// Workspace folder to import into; default the root.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Print what would be created / updated / unchanged / refused; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Endpoint of an S3-compatible store (MinIO, moto, ...); AWS when unset.
    #[arg(long, env = "RUNEFLOW_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub config: Config,
    #[command(flatten)]
    pub worker: WorkerConfig,
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub config: Config,
    #[command(flatten)]
    pub worker: WorkerConfig,
    /// Folder for the private PostgreSQL data (kept between runs).
    #[arg(long, env = "RUNEFLOW_DEV_DIR", default_value = ".runeflow-dev")]
    pub data_dir: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub config: Config,
}

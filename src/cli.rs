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

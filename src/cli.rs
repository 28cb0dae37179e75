//! Command-line interface. Every server setting is in the shared
//! [`Config`], read from flags or the environment (flags win).

use clap::{Parser, Subcommand};
use runeflow_shared::config::Config;

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
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub config: Config,
}

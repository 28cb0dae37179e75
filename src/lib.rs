//! The `runeflow` command: server processes (`api`, `init`) and, later, the
//! worker and client verbs. Each subcommand is a module under `commands/`.

pub mod cli;
pub mod commands;
pub mod connect;
pub mod shutdown;
pub mod telemetry;

/// Runs one parsed command line on a fresh tokio runtime.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::dispatch(cli.command))
}

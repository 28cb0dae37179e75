//! The `runeflow` command: server processes (`init`, `api`, `worker`,
//! `dev`), the one-shot `import`, and the client verbs that talk to the REST
//! API (`push`, `pull`, `run`, `git`, ...). One module per subcommand under
//! `commands/`.

pub mod cli;
pub mod commands;
pub mod connect;
pub mod secret_key;
pub mod secrets_check;
pub mod shutdown;
pub mod telemetry;

/// An exit code a command asks for after printing its own message (e.g.
/// `run` of a failed execution): `main` exits with it and prints nothing.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Runs one parsed command line on a fresh tokio runtime.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::dispatch(cli.command))
}

//! The `runeflow` binary: parse arguments, start tracing, run, map errors to
//! an exit code. Everything else lives in the library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = runeflow::cli::Cli::parse();
    runeflow::telemetry::init_tracing();
    match runeflow::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<runeflow::Exit>() {
            Some(runeflow::Exit(code)) => ExitCode::from(*code),
            None => {
                eprintln!("runeflow: {err:#}");
                ExitCode::FAILURE
            }
        },
    }
}

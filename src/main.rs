//! The `runeflow` binary: parse arguments, start tracing, run, map errors to
//! an exit code. Everything else lives in the library (`src/lib.rs`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // /proc/<pid>/{environ,mem} root-owned and no same-uid ptrace: user
    // code running as this user cannot read our secrets (DESIGN.md,
    // "Containing user code"). Best effort: the flag only narrows access.
    let _ = nix::sys::prctl::set_dumpable(false);
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

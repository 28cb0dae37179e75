//! Logging setup: `RUST_LOG` filters (default `info`), output to stderr.
//! Colours only on a terminal: container logs and log files get plain
//! text; `NO_COLOR` (any non-empty value) turns them off on a terminal too.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours(std::io::stderr().is_terminal(), no_color))
        .try_init();
}

/// Whether log lines carry ANSI colour codes.
fn colours(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

#[cfg(test)]
mod tests {
    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(super::colours(true, false));
        assert!(!super::colours(true, true));
        assert!(!super::colours(false, false));
        assert!(!super::colours(false, true));
    }
}

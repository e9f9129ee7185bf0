//! One logging setup for both binaries: `tracing` to stderr, so stdout stays
//! clean for output that scripts parse.
//!
//! `RUST_LOG` wins over the binary's default level. Colours only on a
//! terminal, and never when `NO_COLOR` is set.

use std::io::IsTerminal;

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
pub fn init_stderr_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr())
        .with_target(false)
        .init();
}

/// Whether stderr should get ANSI colours.
pub fn colour_stderr() -> bool {
    colour_for(&std::io::stderr())
}

/// Whether `stream` should get ANSI colours: a terminal, and `NO_COLOR`
/// (<https://no-color.org>) unset or empty.
pub fn colour_for(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

//! The app's log: to stderr and to a daily file in the app's log folder
//! (the menu's "Open logs folder"; the window shows its tail). Old files are
//! pruned to a week. Nothing secret is ever logged (tokens, codes and
//! secrets never reach a `tracing` field, and the crates that see them are
//! capped at `info`), so the files are safe to share; the folder is 0700 and
//! the files 0600 all the same ([`mcp_auth_core::DailyLog`]).

use std::path::{Path, PathBuf};

use mcp_auth_core::DailyLog;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

const PREFIX: &str = "mcp-auth-tray";
const SUFFIX: &str = "log";
const KEEP_FILES: usize = 7;

/// Keeps the file writer flushing until the app ends (Tauri-managed state).
#[derive(Debug)]
pub struct LogGuard(#[allow(dead_code, reason = "held for its Drop")] Option<WorkerGuard>);

/// Installs the global subscriber. `RUST_LOG` overrides the default level
/// (`info`), within the core's cap on the crates that see secrets
/// ([`mcp_auth_core::log_filter`]). Without a writable log folder, logs go
/// to stderr only.
pub fn init(dir: &Path) -> LogGuard {
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(mcp_auth_core::colour_stderr())
        .with_target(false)
        .with_filter(mcp_auth_core::log_filter("info"));
    let appender = DailyLog::open(dir, PREFIX, SUFFIX, KEEP_FILES);
    match appender {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_target(false)
                .with_filter(mcp_auth_core::log_filter("info"));
            tracing_subscriber::registry().with(stderr).with(file).init();
            LogGuard(Some(guard))
        }
        Err(e) => {
            tracing_subscriber::registry().with(stderr).init();
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write log files; logging to stderr only");
            LogGuard(None)
        }
    }
}

/// Logs to stderr only: the status window's process (the resident tray
/// owns the log files; its stderr is the window's too).
pub fn init_stderr() {
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(mcp_auth_core::colour_stderr())
        .with_target(false)
        .with_filter(mcp_auth_core::log_filter("info"));
    tracing_subscriber::registry().with(stderr).init();
}

/// The newest log file in `dir` (file names carry the date, so the largest
/// name is today's).
pub fn current_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .max()
}

//! mcp-auth-tray: the tray app. A thin shell over `mcp-auth-core`.
//!
//! It owns no OAuth or config logic: it starts the core's file watcher, asks
//! the core for the status report and the menu model, and draws them.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod tray;
mod tray_host;

use tauri::{Manager, RunEvent};

fn main() -> anyhow::Result<()> {
    init_logging();
    let app = tauri::Builder::default()
        .setup(|app| {
            tray_host::warn_if_missing();
            tray::start(app.handle())?;
            Ok(())
        })
        .build(tauri::generate_context!())
        .map_err(|e| anyhow::anyhow!("cannot start the app: {e}"))?;
    app.run(|app, event| match event {
        // A tray app has no window to close: only "Quit" ends it.
        RunEvent::ExitRequested { api, code: None, .. } => api.prevent_exit(),
        RunEvent::Exit => app.state::<tray::TrayState>().shutdown(),
        _ => {}
    });
    Ok(())
}

/// Logs to stderr; `RUST_LOG` sets the level (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_stderr())
        .with_target(false)
        .init();
}

/// Colours only on a terminal, and never when `NO_COLOR` is set.
fn colour_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

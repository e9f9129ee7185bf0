//! mcp-auth-tray: the tray app. A thin shell over `mcp-auth-core`.
//!
//! It owns no OAuth or config logic: it starts the core's file watcher, asks
//! the core for the status report and the menu model, and draws them.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod tray;
mod tray_host;

use tauri::{Manager, RunEvent};

fn main() -> anyhow::Result<()> {
    mcp_auth_core::init_stderr_logging("info");
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

//! Opening the status window, from the resident tray. The window runs in a
//! process of its own (`mcp-auth-tray --window`, `window_process.rs`),
//! started on demand and gone when it closes, so the resident never maps a
//! webview and WebKit's memory is returned when the window closes. When one
//! is already open it is asked to come forward instead. Opening it asks the
//! service to check the servers for real, so what it shows is true now, not
//! only derived from expiry times.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mcp_auth_core::{MenuAction, ServerRef};
use tauri::{AppHandle, Manager};

use crate::state::AppState;
use crate::window_link::Windows;
use crate::window_process::{FOCUS_ARG, WINDOW_ARG};

/// Whether a window process runs (Tauri-managed state): set when one is
/// started, cleared when it exits.
#[derive(Default)]
pub struct WindowProcess(Arc<AtomicBool>);

/// Opens (or brings forward) the status window, scrolled to `focus` if given.
pub fn open(app: &AppHandle, focus: Option<&ServerRef>) {
    let focus = focus.map(|r| MenuAction::ShowDetails(r.clone()).id());
    let Some(running) = app.try_state::<WindowProcess>().map(|w| w.0.clone()) else {
        tracing::warn!("the status window was asked for before the app was ready");
        return;
    };
    if running.swap(true, Ordering::SeqCst) {
        // Started already: it comes forward once connected (a request made
        // while it is still starting is not needed: it opens in front).
        if let Some(windows) = app.try_state::<Windows>() {
            windows.bring_forward(focus);
        }
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            running.store(false, Ordering::SeqCst);
            tracing::warn!(error = %e, "cannot find our own program to open the status window");
            return;
        }
    };
    let mut command = tokio::process::Command::new(exe);
    command.arg(WINDOW_ARG);
    if let Some(focus) = &focus {
        command.arg(FOCUS_ARG).arg(focus);
    }
    tauri::async_runtime::spawn(async move {
        match command.spawn() {
            Ok(mut child) => {
                tracing::info!(pid = ?child.id(), "status window started");
                match child.wait().await {
                    Ok(status) => tracing::info!(%status, "status window closed"),
                    Err(e) => tracing::warn!(error = %e, "lost track of the status window"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot start the status window"),
        }
        running.store(false, Ordering::SeqCst);
    });
    if let Some(state) = app.try_state::<AppState>() {
        state.service.check_now();
    }
}

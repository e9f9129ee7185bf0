//! "Start at login" (tauri-plugin-autostart) and the first run, which turns
//! it on once and says so in the status window.

use mcp_auth_core::SettingsFile;
use tauri::{AppHandle, Manager};
use tauri_plugin_autostart::ManagerExt as _;

use crate::state::{AppState, lock};
use crate::window;

/// The settings key that records the first run (autostart turned on once).
const FIRST_RUN_DONE: &str = "first_run_done";

/// Whether the OS starts the app at login (false when it cannot tell).
pub fn enabled(app: &AppHandle) -> bool {
    app.autolaunch().is_enabled().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the login item");
        false
    })
}

/// Adds or removes the login item, then publishes what the OS now says (the
/// menu is redrawn from it).
pub fn set(app: &AppHandle, on: bool) -> Result<(), String> {
    let launcher = app.autolaunch();
    let result = if on { launcher.enable() } else { launcher.disable() }.map_err(|e| e.to_string());
    if let Err(e) = &result {
        tracing::warn!(error = %e, on, "cannot change the login item");
    }
    app.state::<AppState>().autostart.send_replace(enabled(app));
    result
}

/// On the very first run, turn "Start at login" on and say so in the window
/// (not when the login item itself started us: then only the tray shows).
pub fn first_run(app: &AppHandle, from_login: bool) {
    let Some(settings) = SettingsFile::default_location() else { return };
    let mut saved = settings.load();
    if saved.other.get(FIRST_RUN_DONE).is_some_and(|v| v.as_bool() == Some(true)) {
        return;
    }
    saved.other.insert(FIRST_RUN_DONE.to_owned(), serde_json::Value::Bool(true));
    if let Err(e) = settings.save(&saved) {
        tracing::warn!(error = %e, "cannot record the first run");
    }
    let note = match set(app, true) {
        Ok(()) => "MCP Auth Tray now starts when you log in. Turn this off with “Start at login” in the tray menu.",
        Err(_) => "MCP Auth Tray could not add itself to the programs that start at login; see the log.",
    };
    *lock(&app.state::<AppState>().first_run_note) = Some(note.to_owned());
    if !from_login {
        window::open(app, None);
    }
}

//! The commands the status window's page (`ui/`) may call — exactly those
//! its capability allows. They read the service's view and run the same
//! actions as the tray menu. Errors reach the page as `{code, message}`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mcp_auth_core::{EngineState, MenuAction, tail_lines};
use mcp_auth_core::{ServerDetails, server_details};
use serde::Serialize;
use tauri::{AppHandle, State};

use crate::state::{AppState, lock};

/// How much of the log the window shows at most.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// A command's failure, as the page receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    /// Stable, for the page to branch on.
    pub code: &'static str,
    /// For the user.
    pub message: String,
}

/// What the window shows.
#[derive(Debug, Serialize)]
pub struct StatusPage {
    title: String,
    rows: Vec<ServerDetails>,
    problems: Vec<String>,
    hints: Vec<String>,
    /// Said once, on the first run (e.g. "starts at login now").
    note: Option<String>,
    /// Why signing in is off, when it is.
    engine_missing: Option<String>,
    /// Version, git commit and build date.
    about: &'static str,
}

/// How often the page asked for its rows: the first time is its load, the
/// second can only be its `status-changed` listener (both logged once, so a
/// test sees that the page's capability lets it work).
static ROWS_READ: AtomicUsize = AtomicUsize::new(0);

/// Whether the page read the log yet.
static LOG_READ: AtomicBool = AtomicBool::new(false);

#[tauri::command]
pub fn status_rows(state: State<'_, AppState>) -> StatusPage {
    match ROWS_READ.fetch_add(1, Ordering::Relaxed) {
        0 => tracing::info!("the status window read its rows"),
        1 => tracing::info!("the status window follows the app's status-changed events"),
        _ => {}
    }
    let view = state.service.current();
    let report = &view.report;
    StatusPage {
        title: report.overview().summary(),
        rows: server_details(report, &view.vault, &view.activity),
        problems: report.problems.iter().map(|p| p.message.clone()).collect(),
        hints: report.hints.clone(),
        note: lock(&state.first_run_note).clone(),
        engine_missing: match &view.engine {
            EngineState::Off(reason) => Some(reason.clone()),
            _ => None,
        },
        about: crate::ABOUT,
    }
}

/// Runs a menu action by id (the window's buttons).
#[tauri::command]
pub fn menu_action(app: AppHandle, id: String) -> Result<(), CommandError> {
    let action = MenuAction::parse(&id)
        .ok_or_else(|| CommandError { code: "unknown_action", message: format!("unknown action `{id}`") })?;
    crate::tray::run(&app, action);
    Ok(())
}

/// The end of today's log file.
#[tauri::command]
pub fn log_tail(state: State<'_, AppState>) -> Result<Vec<String>, CommandError> {
    if !LOG_READ.swap(true, Ordering::Relaxed) {
        tracing::info!("the status window read the log");
    }
    match crate::app_log::current_file(&state.logs_dir) {
        None => Ok(Vec::new()),
        Some(path) => tail_lines(&path, LOG_TAIL_BYTES)
            .map_err(|e| CommandError { code: "log_unreadable", message: format!("cannot read the log: {e}") }),
    }
}

//! The commands the status window's page (`ui/`) may call — exactly those
//! its capability allows. They run in the window's own process
//! (`window_process.rs`): the rows are the page the resident tray last sent
//! over the link, and an action is handed back to the resident, which runs
//! it like a menu click. Errors reach the page as `{code, message}`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mcp_auth_core::{ClientMenuAction, MenuAction, tail_lines};
use serde::Serialize;
use tauri::State;

use crate::window_link::Client;

/// How much of the log the window shows at most.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// What the window process keeps (Tauri-managed state).
pub struct PageState {
    /// The link to the resident tray.
    pub link: Client,
    /// The app's log folder (the resident writes the log; the page shows its tail).
    pub logs_dir: PathBuf,
}

/// A command's failure, as the page receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandError {
    /// Stable, for the page to branch on.
    pub code: &'static str,
    /// For the user.
    pub message: String,
}

/// How often the page asked for its rows: the first time is its load, the
/// second can only be its `status-changed` listener (both logged once, so a
/// test sees that the page's capability lets it work).
static ROWS_READ: AtomicUsize = AtomicUsize::new(0);

/// Whether the page read the log yet.
static LOG_READ: AtomicBool = AtomicBool::new(false);

/// The page to show, as the resident sent it last.
#[tauri::command]
pub fn status_rows(state: State<'_, PageState>) -> serde_json::Value {
    let page = state.link.page.borrow().clone();
    match ROWS_READ.fetch_add(1, Ordering::Relaxed) {
        0 => {
            let servers: Vec<&str> = page["rows"]
                .as_array()
                .map(|rows| rows.iter().filter_map(|r| r["name"].as_str()).collect())
                .unwrap_or_default();
            tracing::info!(servers = %servers.join(","), "the status window read its rows")
        }
        1 => tracing::info!("the status window follows the app's status-changed events"),
        _ => {}
    }
    page
}

/// Hands a menu action by id (the window's buttons) to the resident tray.
#[tauri::command]
pub fn menu_action(state: State<'_, PageState>, id: String) -> Result<(), CommandError> {
    if MenuAction::parse(&id).is_none() && ClientMenuAction::parse(&id).is_none() {
        return Err(CommandError { code: "unknown_action", message: format!("unknown action `{id}`") });
    }
    tracing::info!(action = %id, "the status window asks the tray");
    if state.link.act(id) {
        Ok(())
    } else {
        Err(CommandError { code: "tray_gone", message: "the tray app is not running any more".to_owned() })
    }
}

/// The end of today's log file.
#[tauri::command]
pub fn log_tail(state: State<'_, PageState>) -> Result<Vec<String>, CommandError> {
    if !LOG_READ.swap(true, Ordering::Relaxed) {
        tracing::info!("the status window read the log");
    }
    match crate::app_log::current_file(&state.logs_dir) {
        None => Ok(Vec::new()),
        Some(path) => tail_lines(&path, LOG_TAIL_BYTES)
            .map_err(|e| CommandError { code: "log_unreadable", message: format!("cannot read the log: {e}") }),
    }
}

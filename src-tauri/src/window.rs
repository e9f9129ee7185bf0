//! The status window. Its webview exists only while it is open: created on
//! demand and destroyed when closed, so the idle app carries no WebKit
//! processes. Its page (`ui/`) reads rows through [`status_rows`] and acts
//! through [`menu_action`], the same actions as the tray menu.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mcp_auth_core::ServerRef;
use mcp_auth_core::{MenuAction, tail_lines};
use mcp_auth_core::{ServerDetails, server_details};
use serde::Serialize;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

use crate::shell::{Shell, lock};

/// The window's label (also the capability's window name).
pub const LABEL: &str = "status";

/// How much of the log the window shows at most.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// Opens (or brings forward) the status window, scrolled to `focus` if given.
pub fn open(app: &AppHandle, focus: Option<&ServerRef>) {
    let query = focus
        .map(|r| {
            let id = MenuAction::ShowDetails(r.clone()).id();
            format!("?focus={}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>())
        })
        .unwrap_or_default();
    if let Some(window) = app.get_webview_window(LABEL) {
        // The page's own URL with the new query: the app's origin differs
        // by platform (`tauri://localhost` here, `http://tauri.localhost`
        // on Windows), so it is never spelled out.
        if focus.is_some()
            && let Ok(mut url) = window.url()
        {
            url.set_query(query.strip_prefix('?'));
            let _ = window.navigate(url);
        }
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App(format!("index.html{query}").into()))
        .title("MCP Auth Tray")
        .inner_size(880.0, 560.0)
        .min_inner_size(560.0, 320.0)
        .build();
    if let Err(e) = built {
        tracing::warn!(error = %e, "cannot open the status window");
    }
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
pub fn status_rows(app: AppHandle) -> StatusPage {
    match ROWS_READ.fetch_add(1, Ordering::Relaxed) {
        0 => tracing::info!("the status window read its rows"),
        1 => tracing::info!("the status window follows the app's status-changed events"),
        _ => {}
    }
    let shell = app.state::<Shell>();
    let activity = shell.activity.borrow().clone();
    let latest = lock(&shell.latest);
    let report = &latest.report;
    StatusPage {
        title: report.overview().summary(),
        rows: server_details(report, &latest.views, &activity),
        problems: report.problems.iter().map(|p| p.message.clone()).collect(),
        hints: report.hints.clone(),
        note: lock(&shell.first_run_note).clone(),
        engine_missing: shell.engine_state.borrow().as_ref().and_then(|s| s.clone().err()),
        about: crate::ABOUT,
    }
}

/// Runs a menu action by id (the window's buttons).
#[tauri::command]
pub fn menu_action(app: AppHandle, id: String) -> Result<(), String> {
    let action = MenuAction::parse(&id).ok_or_else(|| format!("unknown action `{id}`"))?;
    crate::actions::run(&app, action);
    Ok(())
}

/// The end of today's log file.
#[tauri::command]
pub fn log_tail(app: AppHandle) -> Vec<String> {
    if !LOG_READ.swap(true, Ordering::Relaxed) {
        tracing::info!("the status window read the log");
    }
    let shell = app.state::<Shell>();
    crate::app_log::current_file(&shell.logs_dir)
        .map(|path| tail_lines(&path, LOG_TAIL_BYTES).unwrap_or_else(|e| vec![format!("cannot read the log: {e}")]))
        .unwrap_or_default()
}

//! Opening the status window. Its webview exists only while it is open:
//! created on demand and destroyed when closed, so the idle app carries no
//! WebKit processes. What the page may call is in `commands.rs`. Opening it
//! asks the service to check the servers for real, so what it shows is
//! true now, not only derived from expiry times.

use mcp_auth_core::{MenuAction, ServerRef};
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

use crate::state::AppState;

/// The window's label (also the capability's window name).
pub const LABEL: &str = "status";

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
    match built {
        Ok(_) => {
            if let Some(state) = app.try_state::<AppState>() {
                state.service.check_now();
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot open the status window"),
    }
}

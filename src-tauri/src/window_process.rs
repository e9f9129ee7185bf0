//! The status window's own process: `mcp-auth-tray --window [--focus ID]`.
//!
//! The resident tray never creates a webview; "Open status window" (and a
//! second launch, "Show details", the first run) start this process, which
//! shows the window and exits when it closes, so WebKit's memory (its web
//! and network processes, and what it leaves in ours) goes back to the
//! system. It registers none of the resident's plugins (single instance,
//! deep links, notifications, autostart): it is not an instance of the app,
//! only its window. It shows what the resident sends over the private link
//! (`window_link.rs`) and sends the page's clicks back; it never signs in,
//! refreshes or touches the vault itself. When the tray quits, the link
//! closes and the window goes with it.

use tauri::{AppHandle, Emitter as _, Manager as _, WebviewUrl, WebviewWindowBuilder, Wry};

use crate::commands::PageState;
use crate::window_link::Client;

/// The argument that makes this process the status window.
pub const WINDOW_ARG: &str = "--window";
/// Followed by the menu action id of the row to scroll to.
pub const FOCUS_ARG: &str = "--focus";
/// The window's label (also the capability's window name).
pub const LABEL: &str = "status";

/// `Some(focus)` when this process was started as the status window.
pub fn requested() -> Option<Option<String>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().any(|a| a == WINDOW_ARG).then(|| args.iter().skip_while(|a| *a != FOCUS_ARG).nth(1).cloned())
}

/// Runs the status window until it closes (or the tray quits).
pub fn run(context: tauri::Context<Wry>, focus: Option<String>) -> anyhow::Result<()> {
    crate::app_log::init_stderr();
    let client = tauri::async_runtime::block_on(Client::connect())?;
    let app = tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![
            crate::commands::status_rows,
            crate::commands::menu_action,
            crate::commands::log_tail
        ])
        .setup(move |app| {
            let logs_dir = app.path().app_log_dir()?;
            let mut focus_requests = crate::state::lock(&client.focus).take();
            let mut page = client.page.clone();
            app.manage(PageState { link: client, logs_dir });
            WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App(page_path(focus.as_deref()).into()))
                .title("MCP Auth Tray")
                .inner_size(880.0, 560.0)
                .min_inner_size(560.0, 320.0)
                .build()?;
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                loop {
                    tokio::select! {
                        changed = page.changed() => {
                            if changed.is_err() {
                                tracing::info!("the tray closed the link; closing the status window");
                                handle.exit(0);
                                return;
                            }
                            // The page re-reads its rows.
                            let _ = handle.emit_to(LABEL, "status-changed", ());
                        }
                        Some(focus) = async { match focus_requests.as_mut() { Some(r) => r.recv().await, None => None } } => {
                            bring_forward(&handle, focus.as_deref());
                        }
                    }
                }
            });
            Ok(())
        })
        .build(context)
        .map_err(|e| anyhow::anyhow!("cannot open the status window: {e}"))?;
    // The last window closed: the process ends (the default), and so does
    // everything WebKit started for it.
    app.run(|_, _| {});
    tracing::debug!("status window process done");
    Ok(())
}

fn page_path(focus: Option<&str>) -> String {
    match focus {
        Some(id) => format!("index.html?{}", focus_query(id)),
        None => "index.html".to_owned(),
    }
}

/// The page's query asking it to scroll to `id` (both the first load and a
/// later re-navigation spell it this way).
fn focus_query(id: &str) -> String {
    format!("focus={}", url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>())
}

fn bring_forward(app: &AppHandle, focus: Option<&str>) {
    let Some(window) = app.get_webview_window(LABEL) else { return };
    // The page's own URL with the new query: the app's origin differs by
    // platform (`tauri://localhost` here, `http://tauri.localhost` on
    // Windows), so it is never spelled out.
    if let Some(id) = focus
        && let Ok(mut url) = window.url()
    {
        url.set_query(Some(&focus_query(id)));
        let _ = window.navigate(url);
    }
    let _ = window.show();
    let _ = window.set_focus();
}

//! mcp-auth-tray: the tray app. A thin shell over `mcp-auth-core`.
//!
//! It owns no OAuth or config logic: the core watches the agent's files,
//! signs in, keeps credentials and refreshes them; this shell draws the
//! core's menu model, forwards clicks, deep links and notifications, and
//! opens the status window on demand.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod actions;
mod app_log;
mod notices;
mod resume;
mod shell;
mod tray_host;
mod window;

use tauri::{Manager, RunEvent};
use tauri_plugin_deep_link::DeepLinkExt;

/// The argument the login item starts us with: tray only, no window.
const AUTOSTART_ARG: &str = "--autostart";

/// The bundle identifier before 0.1.0 (`.app` made macOS take the log
/// folder for an application); its folder is moved to the current one.
const OLD_IDENTIFIER: &str = "dev.mcpauthtray.app";

/// The window's About line and the first log line: version, git commit and
/// build date (set by build.rs).
pub const ABOUT: &str = concat!(
    "mcp-auth-tray ",
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MCP_AUTH_GIT_COMMIT"),
    ", built ",
    env!("MCP_AUTH_BUILD_DATE"),
    ")"
);

fn main() -> anyhow::Result<()> {
    draw_without_gl();
    let app = tauri::Builder::default()
        // First: a second launch (the browser opening our deep link, or the
        // user starting the app again) hands its arguments to this one and exits.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            // A deep link is handled by the deep-link plugin; any other
            // second launch is the user asking for the app.
            if mcp_auth_core::launch_deep_links(&argv, shell::URL_SCHEME).next().is_none() {
                window::open(app, None);
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_autostart::Builder::new().arg(AUTOSTART_ARG).build())
        .invoke_handler(tauri::generate_handler![window::status_rows, window::menu_action, window::log_tail])
        .setup(|app| {
            let logs = app.path().app_log_dir()?;
            let moved = mcp_auth_core::migrate_app_folder(&logs, &app.config().identifier, OLD_IDENTIFIER);
            app.manage(app_log::init(&logs));
            tracing::info!(version = ABOUT, production = !tauri::is_dev(), "mcp-auth-tray starting");
            match moved {
                Ok(Some(old)) => tracing::info!(from = %old.display(), "moved the app's folder to its new name"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot move the app's folder from its old name"),
            }
            tray_host::warn_if_missing();
            notices::init(app.handle());
            let handle = app.handle().clone();
            let deep_links = handle.clone();
            app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    actions::deep_link(&deep_links, url.as_str());
                }
            });
            // Linux and Windows (release builds too; the installers also
            // register it); macOS takes it from the bundle's Info.plist.
            #[cfg(any(target_os = "linux", windows))]
            if let Err(e) = app.deep_link().register_all() {
                tracing::warn!(error = %e, "cannot register the sign-in URL scheme; servers using it cannot sign in");
            }
            let from_login = std::env::args().any(|a| a == AUTOSTART_ARG);
            shell::start(&handle, from_login)?;
            resume::on_resume(handle.clone(), |app| shell::woke_up(&app));
            Ok(())
        })
        .build(tauri::generate_context!())
        .map_err(|e| anyhow::anyhow!("cannot start the app: {e}"))?;
    app.run(|app, event| match event {
        // Closing the status window does not end a tray app: only "Quit" does.
        RunEvent::ExitRequested { api, code: None, .. } => api.prevent_exit(),
        RunEvent::Exit => shell::shutdown(app),
        _ => {}
    });
    Ok(())
}

/// On Linux, GTK sets up OpenGL as it starts, even for a tray that shows no
/// window; with no GPU that loads Mesa's software renderer (~45 MB resident,
/// for nothing). The status window is a small table that draws fine without
/// GL, so GL is off unless the user set `GDK_GL` themselves. Done first
/// thing in `main`, before GTK or any other thread starts, so nothing reads
/// the environment while it changes.
#[cfg(target_os = "linux")]
fn draw_without_gl() {
    // A failure only costs memory; logging is not up yet.
    let _ = glib::setenv("GDK_GL", "disable", false);
}

#[cfg(not(target_os = "linux"))]
fn draw_without_gl() {}

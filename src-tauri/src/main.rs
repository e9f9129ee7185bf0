//! mcp-auth-tray: the tray app. A thin shell over `mcp-auth-core`.
//!
//! It owns no OAuth, config or runtime logic: the core's `Service` watches
//! the agent's files, signs in, keeps credentials, refreshes them and decides
//! what to tell the user; this shell draws its view (`tray`), shows its
//! notices (`notify`), forwards clicks and deep links (`deeplink`), and keeps
//! the OS glue (`autostart`, `resume`, `tray_host`, `app_log`). The status
//! window is the same program started as `--window` (`window_process`,
//! `commands`), a process of its own that talks to this one over a private
//! local socket (`window_link`). `main` wires them; no shell module imports
//! one that imports it back.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod app_log;
mod autostart;
mod commands;
mod deeplink;
mod notify;
mod resume;
mod state;
mod tray;
mod tray_host;
mod window;
mod window_link;
mod window_process;

use mcp_auth_core::{HermesRoot, InstanceKind, InstanceLock, Service, ServiceOptions, SettingsFile};
use tauri::{Manager, RunEvent};
use tauri_plugin_deep_link::DeepLinkExt;

use crate::state::AppState;

/// The argument the login item starts us with: tray only, no window.
const AUTOSTART_ARG: &str = "--autostart";

/// The bundle identifier before 0.1.0 (`.app` made macOS take the log
/// folder for an application); its folder is moved to the current one.
const OLD_IDENTIFIER: &str = "dev.mcpauthtray.app";

/// The window's About line and the first log line: version, git commit and
/// build date (set by build.rs).
pub const ABOUT: &str = concat!("mcp-auth-tray ", env!("MCP_AUTH_VERSION_LINE"));

fn main() -> anyhow::Result<()> {
    draw_without_gl();
    let context = tauri::generate_context!();
    // The status window runs in a process of its own (no plugins, no
    // service): the resident tray below never creates a webview.
    if let Some(focus) = window_process::requested() {
        return window_process::run(context, focus);
    }
    let app = tauri::Builder::default()
        // First: a second launch (the browser opening our deep link, or the
        // user starting the app again) hands its arguments to this one and exits.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            // A deep link is handled by the deep-link plugin; any other
            // second launch is the user asking for the app.
            if mcp_auth_core::launch_deep_links(&argv, state::URL_SCHEME).next().is_none() {
                window::open(app, None);
            }
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_autostart::Builder::new().arg(AUTOSTART_ARG).build())
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
            // One daemon or tray per user (a second tray never gets here:
            // the single-instance plugin hands it over above).
            let instance = InstanceLock::acquire_default(InstanceKind::Tray)?;
            tray_host::warn_if_missing();
            let handle = app.handle().clone();
            notify::init(&handle, tray::run);
            let root = HermesRoot::resolve(None);
            tracing::info!(root = %root.path().display(), "watching the agent's home");
            let settings = SettingsFile::default_location()
                .ok_or_else(|| anyhow::anyhow!("no config folder for the app's settings"))?;
            let options = ServiceOptions {
                root,
                settings,
                url_scheme: state::URL_SCHEME.to_owned(),
                vault: None,
                check_store: None,
            };
            let service = tauri::async_runtime::block_on(Service::start(options))?;
            let notices = service.notices();
            app.manage(AppState::new(service, logs, instance));
            app.manage(window::WindowProcess::default());
            if let Err(e) = window_link::serve(&handle, tray::run) {
                tracing::warn!(error = %e, "the status window cannot open");
            }
            let from_login = std::env::args().any(|a| a == AUTOSTART_ARG);
            autostart::first_run(&handle, from_login);
            app.state::<AppState>().autostart.send_replace(autostart::enabled(&handle));
            tray::start(&handle)?;
            notify::follow(handle.clone(), notices);
            let deep_links = handle.clone();
            app.deep_link().on_open_url(move |event| {
                for url in event.urls() {
                    deeplink::handle(&deep_links, url.as_str());
                }
            });
            // Linux and Windows (release builds too; the installers also
            // register it); macOS takes it from the bundle's Info.plist.
            #[cfg(any(target_os = "linux", windows))]
            register_url_scheme(app);
            resume::on_resume(handle, |app| app.state::<AppState>().service.woke_up());
            Ok(())
        })
        .build(context)
        .map_err(|e| anyhow::anyhow!("cannot start the app: {e}"))?;
    app.run(|app, event| match event {
        // Closing the status window does not end a tray app: only "Quit" does.
        RunEvent::ExitRequested { api, code: None, .. } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(state) = app.try_state::<AppState>() {
                // Bounded: a refresh in flight finishes, sign-ins close.
                tauri::async_runtime::block_on(state.service.shutdown());
            }
        }
        _ => {}
    });
    Ok(())
}

/// Registers the sign-in URL scheme with the desktop for this executable,
/// unless the package's desktop entry already does (Linux; see
/// [`mcp_auth_core::installed_entry_opens`]).
#[cfg(any(target_os = "linux", windows))]
fn register_url_scheme(app: &tauri::App) {
    #[cfg(target_os = "linux")]
    if let Ok(exe) = std::env::current_exe()
        && mcp_auth_core::installed_entry_opens(state::URL_SCHEME, &exe)
    {
        tracing::debug!("the installed desktop entry opens the sign-in URL scheme");
        return;
    }
    if let Err(e) = app.deep_link().register_all() {
        tracing::warn!(error = %e, "cannot register the sign-in URL scheme; servers using it cannot sign in");
    }
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

//! The tray icon and what its menu items (and the window's buttons, and the
//! notifications' actions) do. Every action is a core [`MenuAction`]; this
//! module only carries it out with the core's engine and Tauri's plugins.

use std::sync::Arc;

use mcp_auth_core::Delivery;
use mcp_auth_core::HermesExporter;
use mcp_auth_core::ServerRef;
use mcp_auth_core::{AuthState, MenuAction, MenuLine, TrayIcon, TrayMenu};
use mcp_auth_core::{Browser, BrowserError, BrowserFuture, CommandBrowser, check_browser_url};
use mcp_auth_core::{OAuthServer, disconnect, find_oauth_server};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_clipboard_manager::ClipboardExt as _;
use tauri_plugin_opener::OpenerExt as _;

use crate::shell::{Shell, lock, server_ref};
use crate::{notices, window};

const TRAY_ID: &str = "main";

/// Creates the tray icon with its first menu.
pub fn build_tray(app: &AppHandle, model: &TrayMenu) -> tauri::Result<()> {
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(model.icon))
        .tooltip(&model.title)
        .menu(&build_menu(app, model)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| match MenuAction::parse(event.id().as_ref()) {
            Some(action) => run(app, action),
            None => tracing::debug!(id = event.id().as_ref(), "information item clicked"),
        })
        .build(app)?;
    Ok(())
}

/// Replaces the menu, icon and tooltip.
pub fn redraw(app: &AppHandle, model: &TrayMenu) -> tauri::Result<()> {
    let menu = build_menu(app, model)?;
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        tray.set_menu(Some(menu))?;
        tray.set_icon(Some(icon(model.icon)))?;
        tray.set_tooltip(Some(&model.title))?;
    }
    Ok(())
}

fn build_menu(app: &AppHandle, model: &TrayMenu) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    for line in &model.lines {
        menu.append(item(app, line)?.as_ref())?;
    }
    Ok(menu)
}

fn item(app: &AppHandle, line: &MenuLine) -> tauri::Result<Box<dyn IsMenuItem<Wry>>> {
    Ok(match line {
        MenuLine::Item { id, label, enabled } => Box::new(MenuItem::with_id(app, id, label, *enabled, None::<&str>)?),
        MenuLine::Check { id, label, checked } => {
            let check = CheckMenuItem::with_id(app, id, label, true, *checked, None::<&str>)?;
            if *id == MenuAction::ToggleAutostart.id()
                && let Some(shell) = app.try_state::<Shell>()
            {
                *lock(&shell.autostart_item) = Some(check.clone());
            }
            Box::new(check)
        }
        MenuLine::Submenu { id, label, lines } => {
            let submenu = Submenu::with_id(app, id, label, true)?;
            for line in lines {
                submenu.append(item(app, line)?.as_ref())?;
            }
            Box::new(submenu)
        }
        MenuLine::Separator => Box::new(PredefinedMenuItem::separator(app)?),
    })
}

fn icon(kind: TrayIcon) -> Image<'static> {
    match kind {
        TrayIcon::Normal => tauri::include_image!("../icons/tray@2x.png"),
        TrayIcon::Attention => tauri::include_image!("../icons/tray-attention@2x.png"),
        TrayIcon::Busy => tauri::include_image!("../icons/tray-busy@2x.png"),
    }
}

/// Carries out `action` (from the menu, the window or a notification).
pub fn run(app: &AppHandle, action: MenuAction) {
    tracing::info!(action = %action.id(), "action");
    let shell = app.state::<Shell>();
    match action {
        MenuAction::Connect(r) => connect(app, r),
        MenuAction::Disconnect(r) => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move { sign_out(&app, &r).await });
        }
        MenuAction::CancelSignIn(r) => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Ok(engine) = app.state::<Shell>().ready_engine().await {
                    engine.sign_ins.cancel(&r).await;
                }
            });
        }
        MenuAction::CopyUrl(r) => match find(app, &r).map(|s| s.url.to_string()) {
            Ok(url) => {
                if let Err(e) = app.clipboard().write_text(url) {
                    tracing::warn!(error = %e, "cannot copy to the clipboard");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot copy the server URL"),
        },
        MenuAction::ShowDetails(r) => window::open(app, Some(&r)),
        MenuAction::ConnectAllNeeding => {
            let needing: Vec<ServerRef> = lock(&shell.latest)
                .report
                .servers
                .iter()
                .filter(|s| s.state == AuthState::NeedsReauth)
                .map(ServerRef::of)
                .collect();
            for r in needing {
                connect(app, r);
            }
        }
        MenuAction::OpenWindow => window::open(app, None),
        MenuAction::ToggleAutostart => {
            let was = autostart_enabled(app);
            // GTK ticks a check item itself when it is clicked: put the tick
            // back to what the OS says, so it changes only once the login
            // item did (set_autostart publishes the OS state, and the menu is
            // redrawn from it), and stays right when the change fails.
            if let Some(item) = lock(&shell.autostart_item).as_ref()
                && let Err(e) = item.set_checked(was)
            {
                tracing::debug!(error = %e, "cannot reset the login item's tick");
            }
            if let Err(e) = set_autostart(app, !was) {
                notices::problem(app, "Cannot change “Start at login”", &e);
            }
        }
        MenuAction::OpenConfig => open_path(app, &shell.root.path().join("config.yaml")),
        MenuAction::OpenLogs => open_path(app, &shell.logs_dir),
        MenuAction::Quit => {
            tracing::info!("quit from the tray menu");
            app.exit(0);
        }
    }
}

/// The configured OAuth server `r` in the current snapshot.
fn find(app: &AppHandle, r: &ServerRef) -> Result<OAuthServer, String> {
    let snapshot = app.state::<Shell>().snapshot();
    find_oauth_server(&snapshot, &r.name, Some(r.profile.as_deref().unwrap_or("default"))).map_err(|e| e.to_string())
}

/// Starts a sign-in to `r` (a second click while one runs does nothing).
fn connect(app: &AppHandle, r: ServerRef) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let shell = app.state::<Shell>();
        let engine = shell.ready_engine().await;
        let started = find(&app, &r).and_then(|server| Ok(engine?.sign_ins.start(server, browser(&app))));
        match started {
            Ok(true) => {}
            Ok(false) => tracing::info!(server = %r.name, "a sign-in is already running"),
            Err(reason) => {
                tracing::warn!(server = %r.name, %reason, "cannot sign in");
                notices::sign_in_failed(&app, &r, &reason);
            }
        }
    });
}

/// Signs out of `r`: revoke, remove from the vault and the agent's files.
async fn sign_out(app: &AppHandle, r: &ServerRef) {
    let shell = app.state::<Shell>();
    let result = match (find(app, r), shell.ready_engine().await) {
        (Ok(server), Ok(engine)) => disconnect(&engine.http, &engine.vault, &HermesExporter, &server)
            .await
            .map(|d| (server_ref(&server), d))
            .map_err(|e| e.to_string()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match result {
        Ok((r, done)) => {
            shell.update_activity(&r, |a| *a = Default::default());
            let how = if done.revoked { "tokens revoked and removed" } else { "tokens removed" };
            tracing::info!(server = %r.name, revoked = done.revoked, note = ?done.revoke_note, "disconnected");
            notices::disconnected(app, &r, how);
        }
        Err(e) => notices::problem(app, &format!("Cannot disconnect {}", r.name), &e),
    }
}

/// The browser for sign-ins: `$BROWSER` when set (a command given the URL,
/// as on the command line), else the desktop's default through the opener.
fn browser(app: &AppHandle) -> Arc<dyn Browser> {
    match std::env::var("BROWSER").ok().as_deref().and_then(CommandBrowser::from_spec) {
        Some(command) => Arc::new(command),
        None => Arc::new(Opener(app.clone())),
    }
}

struct Opener(AppHandle);

impl Browser for Opener {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            // The same last check as every other front end's, before the OS launcher.
            check_browser_url(url)?;
            self.0.opener().open_url(url, None::<&str>).map_err(|e| BrowserError::Other(e.to_string()))
        })
    }
}

/// A deep link to our scheme: the end of a sign-in with a custom-scheme redirect.
pub fn deep_link(app: &AppHandle, url: &str) {
    let shell = app.state::<Shell>();
    let Ok(engine) = shell.engine() else {
        tracing::warn!("a sign-in redirect arrived before the app was ready; ignored");
        return;
    };
    match engine.sign_ins.deliver_redirect(url) {
        Delivery::Completed => tracing::info!("sign-in redirect received"),
        // The waiting flow reports the refusal itself.
        Delivery::Refused(reason) => tracing::warn!(%reason, "sign-in redirect refused"),
        Delivery::UnknownState => tracing::warn!("a sign-in redirect that belongs to no running sign-in; ignored"),
        Delivery::Malformed(reason) => tracing::warn!(%reason, "not a sign-in redirect; ignored"),
    }
}

fn open_path(app: &AppHandle, path: &std::path::Path) {
    if let Err(e) = app.opener().open_path(path.to_string_lossy(), None::<&str>) {
        notices::problem(app, &format!("Cannot open {}", path.display()), &e.to_string());
    }
}

/// Whether the OS starts the app at login (false when it cannot tell).
pub fn autostart_enabled(app: &AppHandle) -> bool {
    app.autolaunch().is_enabled().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the login item");
        false
    })
}

/// Adds or removes the login item, then shows what the OS now says.
pub fn set_autostart(app: &AppHandle, on: bool) -> Result<(), String> {
    let launcher = app.autolaunch();
    let result = if on { launcher.enable() } else { launcher.disable() }.map_err(|e| e.to_string());
    if let Err(e) = &result {
        tracing::warn!(error = %e, on, "cannot change the login item");
    }
    app.state::<Shell>().autostart.send_replace(autostart_enabled(app));
    result
}

//! The tray icon: draws the core's menu model from the service's view, and
//! carries out what its items (and the window's buttons, and the
//! notifications' actions) ask. Every action is a core [`MenuAction`]; this
//! module only hands it to the core service or to Tauri's plugins.
//!
//! One task follows the view (and the login-item state) and redraws when the
//! menu model changed; nothing here decides what the status is. The other
//! MCP clients' submenu ([`with_clients_menu`]) is read again with every
//! redraw of the view and after a "Use in <client>" click
//! ([`ClientMenuAction`], carried out by the core service).

use std::sync::Arc;

use mcp_auth_core::ServerRef;
use mcp_auth_core::{AuthState, MenuAction, MenuContext, MenuLine, TrayIcon, TrayMenu, tray_menu};
use mcp_auth_core::{Browser, BrowserError, BrowserFuture, check_browser_url, chosen_browser};
use mcp_auth_core::{ClientMenuAction, program_beside, with_clients_menu};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tauri_plugin_clipboard_manager::ClipboardExt as _;
use tauri_plugin_opener::OpenerExt as _;

use crate::state::{AppState, lock};
use crate::{autostart, notify, window};

const TRAY_ID: &str = "main";

/// Poked when a client's config was changed from the menu: read the clients again.
static CLIENTS_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Creates the tray icon from the current view and keeps it up to date.
pub fn start(app: &AppHandle) -> tauri::Result<()> {
    let state = app.state::<AppState>();
    let view = state.service.current();
    let model = tray_menu(&view.report, MenuContext { activity: &view.activity, autostart: *state.autostart.borrow() });
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(model.icon))
        .tooltip(&model.title)
        .menu(&build_menu(app, &model)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            let id = event.id().as_ref();
            match (MenuAction::parse(id), ClientMenuAction::parse(id)) {
                (Some(action), _) => run(app, action),
                (None, Some(action)) => client_action(app, action),
                (None, None) => tracing::debug!(id, "information item clicked"),
            }
        })
        .build(app)?;
    tracing::info!(summary = %model.title, "tray ready");
    tauri::async_runtime::spawn(follow(app.clone(), model));
    Ok(())
}

/// Redraws the tray whenever the view or the login-item state changes.
async fn follow(app: AppHandle, mut shown: TrayMenu) {
    let state = app.state::<AppState>();
    let mut view = state.service.view();
    let mut autostart = state.autostart.subscribe();
    // The first menu was drawn before the clients were read: no wait for it.
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                changed = view.changed() => if changed.is_err() { return },
                changed = autostart.changed() => if changed.is_err() { return },
                () = CLIENTS_CHANGED.notified() => {}
            }
        }
        first = false;
        let clients = state.service.clients().await.0;
        *lock(&state.clients_shown) = clients.clone();
        let current = view.borrow_and_update().clone();
        let model = with_clients_menu(
            tray_menu(
                &current.report,
                MenuContext { activity: &current.activity, autostart: *autostart.borrow_and_update() },
            ),
            &clients,
        );
        if model != shown {
            match redraw(&app, &model) {
                Ok(()) => tracing::debug!(summary = %model.title, "tray menu redrawn"),
                Err(e) => tracing::warn!(error = %e, "cannot redraw the tray menu"),
            }
            shown = model;
        }
    }
}

/// Replaces the menu, icon and tooltip.
fn redraw(app: &AppHandle, model: &TrayMenu) -> tauri::Result<()> {
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
                && let Some(state) = app.try_state::<AppState>()
            {
                *lock(&state.autostart_item) = Some(check.clone());
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
    let state = app.state::<AppState>();
    match action {
        MenuAction::Connect(r) => connect(app, r, false),
        MenuAction::StepUp(r) => connect(app, r, true),
        MenuAction::CheckNow => state.service.check_now(),
        MenuAction::Disconnect(r) => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                // Success is announced by the service's notice.
                if let Err(e) = app.state::<AppState>().service.disconnect(&r).await {
                    notify::problem(&app, &format!("Cannot disconnect {}", r.name), &e.to_string());
                }
            });
        }
        MenuAction::CancelSignIn(r) => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                app.state::<AppState>().service.cancel_sign_in(&r).await;
            });
        }
        MenuAction::CopyUrl(r) => match state.service.find(&r).map(|s| s.url.to_string()) {
            Ok(url) => {
                if let Err(e) = app.clipboard().write_text(url) {
                    tracing::warn!(error = %e, "cannot copy to the clipboard");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot copy the server URL"),
        },
        MenuAction::ShowDetails(r) => window::open(app, Some(&r)),
        MenuAction::ConnectAllNeeding => {
            let needing: Vec<ServerRef> = state
                .service
                .current()
                .report
                .servers
                .iter()
                .filter(|s| s.state == AuthState::NeedsReauth)
                .map(ServerRef::of)
                .collect();
            for r in needing {
                connect(app, r, false);
            }
        }
        MenuAction::OpenWindow => window::open(app, None),
        MenuAction::ToggleAutostart => {
            let was = autostart::enabled(app);
            // GTK ticks a check item itself when it is clicked: put the tick
            // back to what the OS says, so it changes only once the login
            // item did (`autostart::set` publishes the OS state, and the
            // menu is redrawn from it), and stays right when the change fails.
            if let Some(item) = lock(&state.autostart_item).as_ref()
                && let Err(e) = item.set_checked(was)
            {
                tracing::debug!(error = %e, "cannot reset the login item's tick");
            }
            if let Err(e) = autostart::set(app, !was) {
                notify::problem(app, "Cannot change “Start at login”", &e);
            }
        }
        MenuAction::OpenConfig => open_path(app, &state.service.root().path().join("config.yaml")),
        MenuAction::OpenLogs => open_path(app, &state.logs_dir),
        MenuAction::Quit => {
            tracing::info!("quit from the tray menu");
            app.exit(0);
        }
    }
}

/// A click under "Other MCP clients": "Sign in" is the same sign-in as the
/// agent's Connect, to the grant serving that line; "Use in <client>" has
/// the core service edit that client's config (backup, atomic write), and
/// the result is announced and the menu read again.
pub fn client_action(app: &AppHandle, action: ClientMenuAction) {
    tracing::info!(action = %action.id(), "action");
    let (client, server) = match action {
        ClientMenuAction::SignIn { server, .. } => return connect(app, server, false),
        ClientMenuAction::UseIn { client, server } => (client, server),
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let exe = std::env::current_exe().ok();
        let program = program_beside(exe.as_deref());
        match app.state::<AppState>().service.use_in(client, server.clone(), program).await {
            Ok(done) => {
                let (title, body) = done.message();
                notify::info(&app, &title, &body);
            }
            Err(e) => notify::problem(&app, &format!("Cannot route {server} in {}", client.label()), &e.to_string()),
        }
        CLIENTS_CHANGED.notify_one();
    });
}

/// Starts a sign-in to `r` (a second click while one runs does nothing; a
/// failure to start is announced by the service's notice). With `step_up`,
/// it asks for the scope the last check found missing ("Grant more access").
fn connect(app: &AppHandle, r: ServerRef, step_up: bool) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let browser = browser(&app);
        let service = &app.state::<AppState>().service;
        let _ = if step_up { service.step_up(&r, browser).await } else { service.connect(&r, browser).await };
    });
}

/// The browser for sign-ins: `$BROWSER` when set (a command given the URL,
/// as on the command line), else the desktop's default through the opener.
fn browser(app: &AppHandle) -> Arc<dyn Browser> {
    Arc::from(chosen_browser(Box::new(Opener(app.clone()))))
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

fn open_path(app: &AppHandle, path: &std::path::Path) {
    if let Err(e) = app.opener().open_path(path.to_string_lossy(), None::<&str>) {
        notify::problem(app, &format!("Cannot open {}", path.display()), &e.to_string());
    }
}

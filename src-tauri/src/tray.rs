//! The tray icon and its menu, redrawn whenever the status changes.
//!
//! A task waits for either a new snapshot from the core's watcher or the next
//! moment the report changes by time alone (`StatusReport::next_change_at`):
//! no polling. Each redraw builds the menu from the core's menu model.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_auth_core::{
    HermesRoot, HomeWatcher, MenuLine, QUIT_ID, Snapshot, StatusReport, TrayIcon, TrayMenu, tray_menu,
};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Wry};
use tokio::sync::watch;

const TRAY_ID: &str = "main";

/// What the tray keeps alive for the app's lifetime.
#[derive(Debug, Default)]
pub struct TrayState {
    watcher: Mutex<Option<HomeWatcher>>,
}

impl TrayState {
    /// Stops the file watcher (on exit).
    pub fn shutdown(&self) {
        if let Ok(mut w) = self.watcher.lock() {
            w.take();
        }
    }
}

/// Creates the tray icon and starts following the agent's files.
pub fn start(app: &AppHandle) -> anyhow::Result<()> {
    let root = HermesRoot::resolve(None);
    tracing::info!(root = %root.path().display(), "watching the agent's home");
    let watcher = HomeWatcher::start(root)?;
    let snapshots = watcher.subscribe();
    app.manage(TrayState { watcher: Mutex::new(Some(watcher)) });

    let report = StatusReport::evaluate(&snapshots.borrow(), SystemTime::now());
    let model = tray_menu(&report);
    let menu = build_menu(app, &model)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(model.icon))
        .tooltip(&model.title)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            if event.id().as_ref() == QUIT_ID {
                tracing::info!("quit from the tray menu");
                app.exit(0);
            }
        })
        .build(app)?;
    tracing::info!(summary = %model.title, "tray ready");

    tauri::async_runtime::spawn(follow(app.clone(), snapshots, Arc::new(model)));
    Ok(())
}

/// Redraws the menu whenever the snapshot or the clock changes what it shows.
async fn follow(app: AppHandle, mut snapshots: watch::Receiver<Arc<Snapshot>>, mut shown: Arc<TrayMenu>) {
    loop {
        let report = {
            let snapshot = snapshots.borrow_and_update().clone();
            StatusReport::evaluate(&snapshot, SystemTime::now())
        };
        let model = tray_menu(&report);
        if model != *shown {
            match redraw(&app, &model) {
                Ok(()) => tracing::debug!(summary = %model.title, "tray menu redrawn"),
                Err(e) => tracing::warn!(error = %e, "cannot redraw the tray menu"),
            }
            shown = Arc::new(model);
        }
        let timer = async {
            match report.next_change_at() {
                Some(at) => tokio::time::sleep(until(at)).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = timer => {}
        }
    }
}

fn until(epoch_secs: f64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    Duration::from_secs_f64((epoch_secs - now).max(0.0))
}

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
        match line {
            MenuLine::Item { id, label, enabled } => {
                menu.append(&MenuItem::with_id(app, id.as_str(), label, *enabled, None::<&str>)?)?;
            }
            MenuLine::Separator => menu.append(&PredefinedMenuItem::separator(app)?)?,
        }
    }
    Ok(menu)
}

fn icon(kind: TrayIcon) -> Image<'static> {
    match kind {
        TrayIcon::Normal => tauri::include_image!("../icons/tray@2x.png"),
        TrayIcon::Attention => tauri::include_image!("../icons/tray-attention@2x.png"),
    }
}

//! The tray icon and its menu, redrawn whenever the status changes.
//!
//! A task waits for either a new snapshot from the core's watcher or the next
//! moment the report changes by time alone (`StatusReport::next_change_at`):
//! no polling. On each change it first takes into the vault what the agent
//! wrote (its own refreshes and sign-ins: the core's sync), then rebuilds the
//! menu from the core's menu model, with the vault as the source of truth.
//! The core's background refresher renews tokens before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_auth_core::background::BackgroundRefresh;
use mcp_auth_core::connect::{OAuthServer, oauth_servers};
use mcp_auth_core::export::HermesExporter;
use mcp_auth_core::oauth::http::Http;
use mcp_auth_core::refresh::{Refresher, SyncOutcome};
use mcp_auth_core::vault::{Vault, VaultError, VaultKey};
use mcp_auth_core::{
    HermesRoot, HomeWatcher, MenuLine, QUIT_ID, Snapshot, StatusReport, TrayIcon, TrayMenu, VaultView,
    open_default_vault, tray_menu, vault_views,
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

/// The vault, when the keychain (or the opt-in file) can be reached.
async fn open_vault_once() -> Result<Vault, VaultError> {
    tauri::async_runtime::spawn_blocking(open_default_vault)
        .await
        .unwrap_or_else(|e| Err(VaultError::Backend(format!("vault task failed: {e}"))))
}

/// Takes into the vault what the agent wrote, then reads what the vault holds
/// for each server (the status's source of truth).
async fn sync_and_look_up(
    snapshot: &Snapshot,
    vault: &Result<Vault, VaultError>,
    refresher: &Refresher,
) -> HashMap<VaultKey, VaultView> {
    let servers = oauth_servers(snapshot);
    if let Ok(vault) = vault {
        for server in &servers {
            match refresher.sync(vault, server).await {
                Ok(SyncOutcome::Adopted | SyncOutcome::AdoptedNew) => {
                    tracing::info!(server = %server.name, "took in tokens the agent wrote")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(server = %server.name, error = %e, "cannot sync with the agent's files"),
            }
        }
    }
    let keys: Vec<VaultKey> = servers.iter().map(OAuthServer::vault_key).collect();
    let vault = vault.clone();
    tauri::async_runtime::spawn_blocking(move || vault_views(&vault, keys)).await.unwrap_or_default()
}

/// Redraws the menu whenever the snapshot or the clock changes what it shows.
/// Only a new snapshot (the agent's files changed) syncs and re-reads the
/// vault; a clock tick just re-evaluates the labels.
async fn follow(app: AppHandle, mut snapshots: watch::Receiver<Arc<Snapshot>>, mut shown: Arc<TrayMenu>) {
    let vault = open_vault_once().await;
    if let Err(e) = &vault {
        tracing::warn!(error = %e, "credentials cannot be kept until the keychain is available");
    }
    let refresher = match Http::new() {
        Ok(http) => Refresher::new(http, Arc::new(HermesExporter)),
        Err(e) => {
            tracing::error!(error = %e, "cannot create the HTTP client");
            return;
        }
    };
    // Refreshes before expiry, in the background, while the app runs.
    let background = vault.as_ref().ok().map(|vault| {
        BackgroundRefresh::start(
            vault.clone(),
            refresher.clone(),
            Box::new(|server, reason| tracing::warn!(server = %server.name, %reason, "sign in again: the token cannot be refreshed")),
        )
    });
    let mut snapshot = snapshots.borrow_and_update().clone();
    let mut views = HashMap::new();
    let mut snapshot_changed = true;
    loop {
        if snapshot_changed {
            if let Some(background) = &background {
                background.set_servers(oauth_servers(&snapshot));
            }
            views = sync_and_look_up(&snapshot, &vault, &refresher).await;
        }
        let report = StatusReport::evaluate_with(&snapshot, SystemTime::now(), &|k| {
            views.get(k).cloned().unwrap_or(VaultView::Missing)
        });
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
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                snapshot = snapshots.borrow_and_update().clone();
                snapshot_changed = true;
            }
            () = timer => snapshot_changed = false,
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

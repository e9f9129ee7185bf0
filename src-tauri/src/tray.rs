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
use mcp_auth_core::vault::{Vault, VaultKey};
use mcp_auth_core::{
    HermesRoot, HomeWatcher, MenuLine, QUIT_ID, SettingsFile, Snapshot, StatusReport, TrayIcon, TrayMenu, VaultView,
    open_vault, tray_menu,
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
async fn open_vault_once() -> Result<Vault, String> {
    tauri::async_runtime::spawn_blocking(|| {
        let settings = SettingsFile::default_location().ok_or("no config folder for the app's settings")?;
        open_vault(&settings.load()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Syncs what the agent wrote into the vault, then evaluates the status.
async fn report_for(snapshot: &Snapshot, vault: &Result<Vault, String>, refresher: &Refresher) -> StatusReport {
    let servers = oauth_servers(snapshot);
    let Ok(vault) = vault else {
        let reason = vault.as_ref().err().cloned().unwrap_or_default();
        let reason = reason.strip_prefix("keychain unavailable: ").unwrap_or(&reason).to_owned();
        return StatusReport::evaluate_with(snapshot, SystemTime::now(), &|_| VaultView::Unavailable(reason.clone()));
    };
    for server in &servers {
        match refresher.sync(vault, server).await {
            Ok(SyncOutcome::Adopted | SyncOutcome::AdoptedNew) => {
                tracing::info!(server = %server.name, "took in tokens the agent wrote")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(server = %server.name, error = %e, "cannot sync with the agent's files"),
        }
    }
    let keys: Vec<VaultKey> = servers.iter().map(OAuthServer::vault_key).collect();
    let vault = vault.clone();
    let views: HashMap<VaultKey, VaultView> = tauri::async_runtime::spawn_blocking(move || {
        keys.into_iter().map(|k| (k.clone(), VaultView::of(vault.load(&k)))).collect()
    })
    .await
    .unwrap_or_default();
    StatusReport::evaluate_with(snapshot, SystemTime::now(), &|k| views.get(k).cloned().unwrap_or(VaultView::Missing))
}

/// Redraws the menu whenever the snapshot or the clock changes what it shows.
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
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        if let Some(background) = &background {
            background.set_servers(oauth_servers(&snapshot));
        }
        let report = report_for(&snapshot, &vault, &refresher).await;
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

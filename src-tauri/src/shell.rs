//! The app's state and the loop that keeps the tray up to date.
//!
//! One task waits for whatever can change what the user sees: a new snapshot
//! from the core's watcher (config edits, the agent's token files), the live
//! activity (sign-ins, refreshes), the login-item state, or the next moment
//! a label changes by time alone (`StatusReport::next_change_at`). No polling.
//! On a new snapshot it first takes into the vault what the agent wrote (the
//! core's sync), then re-reads the vault, the status's source of truth.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_auth_core::HermesExporter;
use mcp_auth_core::Http;
use mcp_auth_core::{Activity, AttentionTracker, Busy, ServerRef};
use mcp_auth_core::{BackgroundRefresh, RefreshEvent};
use mcp_auth_core::{
    HermesRoot, HomeWatcher, MenuContext, SettingsFile, Snapshot, StatusReport, TrayMenu, VaultView, open_vault,
    tray_menu, vault_views,
};
use mcp_auth_core::{OAuthServer, oauth_servers};
use mcp_auth_core::{Refresher, SyncOutcome};
use mcp_auth_core::{SignInEvent, SignIns};
use mcp_auth_core::{Vault, VaultError, VaultKey};
use tauri::{AppHandle, Emitter, Manager};
use tokio::sync::{Notify, watch};

use crate::{notices, window};

/// The private-use URI scheme of the app (RFC 8252 §7.1), as registered
/// with the deep-link plugin in `tauri.conf.json`.
pub const URL_SCHEME: &str = "dev.mcpauthtray.app";

/// The settings key that records the first run (autostart turned on once).
const FIRST_RUN_DONE: &str = "first_run_done";

/// The engine parts that exist once the vault is open.
pub struct Engine {
    pub vault: Vault,
    pub http: Http,
    pub sign_ins: SignIns,
    background: BackgroundRefresh,
}

/// The last evaluated status, for the window and the menu's actions.
#[derive(Default)]
pub struct Latest {
    pub report: StatusReport,
    pub views: HashMap<VaultKey, VaultView>,
}

/// Everything the app keeps for its lifetime (Tauri-managed state).
pub struct Shell {
    pub root: HermesRoot,
    pub logs_dir: PathBuf,
    /// The agent's homes as last read.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    watcher: Mutex<Option<HomeWatcher>>,
    pub activity: watch::Sender<Activity>,
    /// Whether the OS starts the app at login, as last read.
    pub autostart: watch::Sender<bool>,
    /// The menu's "Start at login" item as last drawn (see `ToggleAutostart`).
    pub autostart_item: Mutex<Option<tauri::menu::CheckMenuItem<tauri::Wry>>>,
    pub engine: OnceLock<Engine>,
    /// `None` while the engine starts; then ready, or why there is none.
    pub engine_state: watch::Sender<Option<Result<(), String>>>,
    pub latest: Mutex<Latest>,
    /// The app learned something the window should show (a first-run note).
    pub first_run_note: Mutex<Option<String>>,
    /// Re-read the vault at the next turn of the loop (after resume).
    reread: Notify,
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shell {
    /// The current snapshot of the agent's homes.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// The engine, or why there is none (yet).
    pub fn engine(&self) -> Result<&Engine, String> {
        self.engine.get().ok_or_else(|| match &*self.engine_state.borrow() {
            Some(Err(reason)) => reason.clone(),
            _ => "the app is still starting".to_owned(),
        })
    }

    /// The engine, once it has started (a click right after launch waits
    /// for the keychain instead of failing).
    pub async fn ready_engine(&self) -> Result<&Engine, String> {
        let mut state = self.engine_state.subscribe();
        let _ = state.wait_for(Option::is_some).await;
        self.engine()
    }

    /// Changes the live state of `server`.
    pub fn update_activity(&self, server: &ServerRef, change: impl FnOnce(&mut mcp_auth_core::ServerActivity)) {
        self.activity.send_modify(|a| a.update(server, change));
    }
}

/// The reference of a configured server.
pub fn server_ref(server: &OAuthServer) -> ServerRef {
    ServerRef::new(server.home.profile.as_deref(), &server.name)
}

/// Creates the tray, starts following the agent's files and opens the vault.
pub fn start(app: &AppHandle, from_login: bool) -> anyhow::Result<()> {
    let root = HermesRoot::resolve(None);
    tracing::info!(root = %root.path().display(), "watching the agent's home");
    let watcher = HomeWatcher::start(root.clone())?;
    let snapshots = watcher.subscribe();
    let shell = Shell {
        root,
        logs_dir: app.path().app_log_dir()?,
        snapshots: snapshots.clone(),
        watcher: Mutex::new(Some(watcher)),
        activity: watch::Sender::new(Activity::default()),
        autostart: watch::Sender::new(false),
        autostart_item: Mutex::new(None),
        engine: OnceLock::new(),
        engine_state: watch::Sender::new(None),
        latest: Mutex::new(Latest::default()),
        first_run_note: Mutex::new(None),
        reread: Notify::new(),
    };
    app.manage(shell);
    first_run(app, from_login);
    let autostart = crate::actions::autostart_enabled(app);
    app.state::<Shell>().autostart.send_replace(autostart);

    let report = StatusReport::evaluate(&snapshots.borrow(), SystemTime::now());
    let model = tray_menu(&report, MenuContext { activity: &Activity::default(), autostart });
    crate::actions::build_tray(app, &model)?;
    tracing::info!(summary = %model.title, "tray ready");
    tauri::async_runtime::spawn(follow(app.clone(), Arc::new(model)));
    Ok(())
}

/// On the very first run, turn "Start at login" on and say so in the window
/// (not when the login item itself started us: then only the tray shows).
fn first_run(app: &AppHandle, from_login: bool) {
    let Some(settings) = SettingsFile::default_location() else { return };
    let mut saved = settings.load();
    if saved.other.get(FIRST_RUN_DONE).is_some_and(|v| v.as_bool() == Some(true)) {
        return;
    }
    saved.other.insert(FIRST_RUN_DONE.to_owned(), serde_json::Value::Bool(true));
    if let Err(e) = settings.save(&saved) {
        tracing::warn!(error = %e, "cannot record the first run");
    }
    let note = match crate::actions::set_autostart(app, true) {
        Ok(()) => "MCP Auth Tray now starts when you log in. Turn this off with “Start at login” in the tray menu.",
        Err(_) => "MCP Auth Tray could not add itself to the programs that start at login; see the log.",
    };
    let shell = app.state::<Shell>();
    *lock(&shell.first_run_note) = Some(note.to_owned());
    if !from_login {
        window::open(app, None);
    }
}

/// Stops the watcher, the refresher and any sign-in (on exit).
pub fn shutdown(app: &AppHandle) {
    let shell = app.state::<Shell>();
    lock(&shell.watcher).take();
}

/// After the machine resumes: refresh what fell due during sleep, and
/// recompute the labels (the monotonic clock did not run while asleep).
pub fn woke_up(app: &AppHandle) {
    let shell = app.state::<Shell>();
    if let Some(engine) = shell.engine.get() {
        engine.background.wake();
    }
    shell.reread.notify_one();
}

/// Opens the vault and starts the engine parts that need it.
async fn start_engine(app: &AppHandle) -> Result<Refresher, String> {
    let shell = app.state::<Shell>();
    let http = Http::new().map_err(|e| format!("cannot create the HTTP client: {e}"))?;
    let refresher = Refresher::new(http.clone(), Arc::new(HermesExporter));
    let settings =
        SettingsFile::default_location().ok_or_else(|| "no config folder for the app's settings".to_owned())?;
    let opened = {
        let settings = settings.clone();
        tauri::async_runtime::spawn_blocking(move || open_vault(&settings.load()))
            .await
            .unwrap_or_else(|e| Err(VaultError::Backend(format!("vault task failed: {e}"))))
    };
    let vault = opened.map_err(|e| format!("credentials cannot be kept until the keychain is available: {e}"))?;
    let (sign_ins, events) = SignIns::new(http.clone(), vault.clone(), Arc::new(HermesExporter), settings, URL_SCHEME);
    let on_refresh = {
        let app = app.clone();
        Box::new(move |server: &OAuthServer, event: RefreshEvent<'_>| refresh_event(&app, server, event))
    };
    let background = BackgroundRefresh::start(vault.clone(), refresher.clone(), on_refresh);
    let _ = shell.engine.set(Engine { vault, http, sign_ins, background });
    tauri::async_runtime::spawn(sign_in_events(app.clone(), events));
    Ok(refresher)
}

/// Keeps the live state in step with the background refresher.
fn refresh_event(app: &AppHandle, server: &OAuthServer, event: RefreshEvent<'_>) {
    let shell = app.state::<Shell>();
    let r = server_ref(server);
    shell.update_activity(&r, |a| {
        let signing_in = a.busy == Some(Busy::SigningIn);
        match event {
            RefreshEvent::Started if !signing_in => a.busy = Some(Busy::Refreshing),
            RefreshEvent::Started => {}
            RefreshEvent::Renewed => {
                a.last_error = None;
                a.needs_reauth = None;
            }
            RefreshEvent::WillRetry(e) => a.last_error = Some(format!("refresh failed, will retry: {e}")),
            RefreshEvent::Stopped(reason) => {
                a.needs_reauth = Some(reason.to_owned());
                a.last_error = Some(reason.to_owned());
            }
        }
        if !matches!(event, RefreshEvent::Started) && !signing_in {
            a.busy = None;
        }
    });
    if let RefreshEvent::Stopped(reason) = event {
        tracing::warn!(server = %server.name, %reason, "sign in again: the token cannot be refreshed");
    }
}

/// Turns sign-in results into live state and notifications.
async fn sign_in_events(app: AppHandle, mut events: tokio::sync::mpsc::UnboundedReceiver<SignInEvent>) {
    while let Some(event) = events.recv().await {
        let shell = app.state::<Shell>();
        match event {
            SignInEvent::Started(r) => shell.update_activity(&r, |a| a.busy = Some(Busy::SigningIn)),
            SignInEvent::Connected(r, connected) => {
                shell.update_activity(&r, |a| *a = Default::default());
                tracing::info!(server = %r.name, expires_at = ?connected.expires_at, "connected");
                notices::connected(&app, &r);
                if let Ok(engine) = shell.engine() {
                    engine.background.wake();
                }
            }
            SignInEvent::Failed(r, reason) => {
                shell.update_activity(&r, |a| {
                    a.busy = None;
                    a.last_error = Some(reason.clone());
                });
                tracing::warn!(server = %r.name, %reason, "sign-in failed");
                notices::sign_in_failed(&app, &r, &reason);
            }
            SignInEvent::Cancelled(r) => {
                shell.update_activity(&r, |a| a.busy = None);
                tracing::info!(server = %r.name, "sign-in cancelled");
            }
        }
    }
}

/// Takes into the vault what the agent wrote, then reads what the vault holds
/// for each server (the status's source of truth).
async fn sync_and_look_up(
    snapshot: &Snapshot,
    vault: Option<&Vault>,
    refresher: Option<&Refresher>,
) -> HashMap<VaultKey, VaultView> {
    let servers = oauth_servers(snapshot);
    if let (Some(vault), Some(refresher)) = (vault, refresher) {
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
    let vault = vault.cloned().ok_or_else(|| VaultError::Unavailable("the keychain is not available".to_owned()));
    tauri::async_runtime::spawn_blocking(move || vault_views(&vault, keys)).await.unwrap_or_default()
}

/// Redraws the tray whenever something it shows may have changed.
async fn follow(app: AppHandle, mut shown: Arc<TrayMenu>) {
    let shell = app.state::<Shell>();
    let refresher = match start_engine(&app).await {
        Ok(refresher) => {
            shell.engine_state.send_replace(Some(Ok(())));
            Some(refresher)
        }
        Err(reason) => {
            tracing::warn!(%reason, "signing in and refreshing are off");
            shell.engine_state.send_replace(Some(Err(reason)));
            None
        }
    };
    let mut snapshots = shell.snapshots.clone();
    let mut activity = shell.activity.subscribe();
    let mut autostart = shell.autostart.subscribe();
    let mut attention = AttentionTracker::default();
    let mut snapshot = snapshots.borrow_and_update().clone();
    let mut reread = true;
    loop {
        let engine = shell.engine.get();
        if reread {
            if let Some(engine) = engine {
                engine.background.set_servers(oauth_servers(&snapshot));
            }
            let views = sync_and_look_up(&snapshot, engine.map(|e| &e.vault), refresher.as_ref()).await;
            lock(&shell.latest).views = views;
        }
        let live = activity.borrow_and_update().clone();
        let report = {
            let mut latest = lock(&shell.latest);
            let views = &latest.views;
            let mut report = StatusReport::evaluate_with(&snapshot, SystemTime::now(), &|k| {
                views.get(k).cloned().unwrap_or(VaultView::Missing)
            });
            live.apply(&mut report);
            latest.report = report.clone();
            report
        };
        for needs in attention.observe(&report) {
            notices::needs_sign_in(&app, &needs.server, needs.reason.as_deref());
        }
        let model = tray_menu(&report, MenuContext { activity: &live, autostart: *autostart.borrow_and_update() });
        if model != *shown {
            match crate::actions::redraw(&app, &model) {
                Ok(()) => tracing::debug!(summary = %model.title, "tray menu redrawn"),
                Err(e) => tracing::warn!(error = %e, "cannot redraw the tray menu"),
            }
            shown = Arc::new(model);
        }
        // The status window, when open, re-reads its rows.
        let _ = app.emit_to(window::LABEL, "status-changed", ());
        let timer = async {
            match report.next_change_at() {
                Some(at) => tokio::time::sleep(until(at)).await,
                None => std::future::pending::<()>().await,
            }
        };
        reread = false;
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                snapshot = snapshots.borrow_and_update().clone();
                reread = true;
            }
            _ = activity.changed() => {}
            _ = autostart.changed() => {}
            () = shell.reread.notified() => reread = true,
            () = timer => {}
        }
    }
}

fn until(epoch_secs: f64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    mcp_auth_core::sleep_until(epoch_secs - now)
}

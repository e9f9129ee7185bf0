//! The app's state, kept by Tauri for the app's lifetime: the core's
//! [`Service`] (the whole runtime: engine, watcher, status, notices) and the
//! few things only a desktop shell has (the login item, the first-run note,
//! the log folder). No behaviour lives here.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use mcp_auth_core::{ClientsReport, InstanceLock, Service};
use tokio::sync::watch;

/// The private-use URI scheme of the app, as registered with the deep-link
/// plugin in `tauri.conf.json`.
pub const URL_SCHEME: &str = mcp_auth_core::APP_URL_SCHEME;

/// Everything the app keeps for its lifetime (Tauri-managed state).
pub struct AppState {
    /// The core's runtime.
    pub service: Service,
    /// The app's log folder ("Open logs folder", the window's log tail).
    pub logs_dir: PathBuf,
    /// Whether the OS starts the app at login, as last read.
    pub autostart: watch::Sender<bool>,
    /// The menu's "Start at login" item as last drawn (see `ToggleAutostart`).
    pub autostart_item: Mutex<Option<tauri::menu::CheckMenuItem<tauri::Wry>>>,
    /// The app learned something the window should show (a first-run note).
    pub first_run_note: Mutex<Option<String>>,
    /// The other clients' servers as the menu last showed them (the status
    /// window shows the same).
    pub clients_shown: Mutex<ClientsReport>,
    /// Held while the app runs: one daemon or tray per user.
    _instance: InstanceLock,
}

impl AppState {
    pub fn new(service: Service, logs_dir: PathBuf, instance: InstanceLock) -> Self {
        Self {
            service,
            logs_dir,
            autostart: watch::Sender::new(false),
            autostart_item: Mutex::new(None),
            first_run_note: Mutex::new(None),
            clients_shown: Mutex::new(ClientsReport::default()),
            _instance: instance,
        }
    }
}

/// A poisoned lock still holds usable data (nothing here is half-updated).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

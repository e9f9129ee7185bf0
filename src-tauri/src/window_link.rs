//! The private link between the resident tray and its status window's
//! process.
//!
//! The status window runs in a process of its own (`mcp-auth-tray
//! --window`, see `window_process.rs`), started on demand, so WebKit's
//! memory goes back to the system when the window closes and the resident
//! tray never creates a webview. That process only draws: it gets the page
//! to show from the resident and sends the user's clicks back as menu
//! action ids, which the resident parses and runs like a menu click. The
//! resident's service stays the one owner of sign-ins and refreshes.
//!
//! The link is a local socket (`interprocess`: a Unix socket in the user's
//! private runtime folder, `$XDG_RUNTIME_DIR/mcp-auth-tray/window.sock`,
//! 0700, next to the instance lock; a named pipe on Windows). On Unix a
//! connection from another user is refused (peer credentials), on top of
//! the folder's permissions. Messages are one JSON object per line, each
//! bounded (a page 4 MiB, an action 4 KiB), and at most a few windows are
//! served at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::{Listener, Stream, prelude::*};
use interprocess::local_socket::{ListenerOptions, Name};
use mcp_auth_core::{
    ClientMenuAction, EngineState, InstanceLock, MenuAction, MenuLine, ServerDetails, clients_menu, server_details,
};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};

use crate::state::{AppState, lock};

/// The socket's file name in [`InstanceLock::default_dir`].
const SOCKET: &str = "window.sock";
/// The largest page the window accepts (a few hundred servers fit easily).
const PAGE_CAP: usize = 4 * 1024 * 1024;
/// The largest message the resident accepts from a window (an action id).
const ACTION_CAP: usize = 4 * 1024;
/// How many windows are served at once (one is the rule; a few tolerate
/// a window starting while the last one closes).
const MAX_WINDOWS: usize = 4;
/// How long a starting window waits for the resident's first page.
const FIRST_PAGE_WAIT: Duration = Duration::from_secs(10);

/// From the resident to the window.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToWindow {
    /// What to show (sent at once, then on every change).
    Page { page: serde_json::Value },
    /// Come forward, scrolled to this row when given (a menu action id).
    Focus { focus: Option<String> },
}

/// From the window to the resident.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToTray {
    /// Run this menu action (parsed and checked by the resident).
    Action { id: String },
}

/// What the window shows.
#[derive(Debug, Serialize)]
struct StatusPage {
    title: String,
    rows: Vec<ServerDetails>,
    problems: Vec<String>,
    hints: Vec<String>,
    /// Said once, on the first run (e.g. "starts at login now").
    note: Option<String>,
    /// Why signing in is off, when it is.
    engine_missing: Option<String>,
    /// The other MCP clients, grouped as in the tray menu (the same model).
    clients: Option<MenuLine>,
    /// Version, git commit and build date.
    about: &'static str,
}

fn page(state: &AppState) -> serde_json::Value {
    let view = state.service.current();
    let report = &view.report;
    let page = StatusPage {
        title: report.overview().summary(),
        rows: server_details(report, &view.vault, &view.activity),
        problems: report.problems.iter().map(|p| p.message.clone()).collect(),
        hints: report.hints.clone(),
        note: lock(&state.first_run_note).clone(),
        engine_missing: match &view.engine {
            EngineState::Off(reason) => Some(reason.clone()),
            _ => None,
        },
        clients: clients_menu(&lock(&state.clients_shown)),
        about: crate::ABOUT,
    };
    serde_json::to_value(page).unwrap_or_default()
}

/// The resident's side, kept by Tauri: asks the connected windows to come
/// forward.
pub struct Windows {
    focus: broadcast::Sender<Option<String>>,
}

impl Windows {
    /// Asks every connected window to come forward (scrolled to `focus`);
    /// false when none is connected.
    pub fn bring_forward(&self, focus: Option<String>) -> bool {
        self.focus.send(focus).is_ok()
    }
}

/// Starts serving windows: binds the socket now (so a window started right
/// after finds it), then accepts connections in the background. Each
/// window's actions go to `on_action`.
pub fn serve(app: &AppHandle, on_action: fn(&AppHandle, MenuAction)) -> anyhow::Result<()> {
    let dir =
        InstanceLock::default_dir().ok_or_else(|| anyhow::anyhow!("no runtime folder for the window's socket"))?;
    let listener = tauri::async_runtime::block_on(async { bind(&dir) })?;
    let (focus, _) = broadcast::channel(4);
    app.manage(Windows { focus: focus.clone() });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_WINDOWS));
        loop {
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "the status window's socket failed; windows cannot open");
                    return;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!("too many status windows at once; one refused");
                continue;
            };
            if !same_user(&stream, &dir) {
                tracing::warn!("a connection to the status window's socket from another user; refused");
                continue;
            }
            let (app, focus) = (app.clone(), focus.subscribe());
            tauri::async_runtime::spawn(async move {
                if let Err(e) = serve_window(&app, stream, focus, on_action).await {
                    tracing::debug!(error = %e, "status window link ended");
                }
                drop(slot);
            });
        }
    });
    Ok(())
}

fn bind(dir: &Path) -> std::io::Result<Listener> {
    mcp_auth_core::ensure_private_dir(dir)?;
    // We hold the instance lock: a socket file left there is a dead tray's.
    ListenerOptions::new().name(name(dir)?).try_overwrite(true).create_tokio()
}

/// The socket's name: a file in the private `dir` on Unix, a named pipe
/// (per user) elsewhere.
#[cfg(unix)]
fn name(dir: &Path) -> std::io::Result<Name<'static>> {
    use interprocess::local_socket::GenericFilePath;
    dir.join(SOCKET).to_fs_name::<GenericFilePath>()
}

#[cfg(not(unix))]
fn name(_dir: &Path) -> std::io::Result<Name<'static>> {
    use interprocess::local_socket::GenericNamespaced;
    let user = std::env::var("USERNAME").unwrap_or_default();
    format!("mcp-auth-tray.{user}.{SOCKET}").to_ns_name::<GenericNamespaced>()
}

/// Whether the peer runs as the user who owns the private folder (us).
#[cfg(unix)]
fn same_user(stream: &Stream, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let ours = std::fs::metadata(dir).map(|m| m.uid()).ok();
    let theirs = stream.peer_creds().ok().and_then(|c| c.euid());
    ours.is_some() && ours == theirs
}

#[cfg(not(unix))]
fn same_user(_stream: &Stream, _dir: &Path) -> bool {
    true
}

/// One window: its page now and on every change, its actions run here.
async fn serve_window(
    app: &AppHandle,
    stream: Stream,
    mut focus: broadcast::Receiver<Option<String>>,
    on_action: fn(&AppHandle, MenuAction),
) -> std::io::Result<()> {
    let stream = Arc::new(stream);
    let state = app.state::<AppState>();
    let mut view = state.service.view();
    let mut from_window = messages::<ToTray>(stream.clone(), ACTION_CAP);
    let mut shown = page(&state);
    send(&stream, &ToWindow::Page { page: shown.clone() }).await?;
    tracing::info!("a status window connected");
    loop {
        tokio::select! {
            changed = view.changed() => {
                if changed.is_err() { return Ok(()) }
                view.borrow_and_update();
                let now = page(&state);
                if now != shown {
                    send(&stream, &ToWindow::Page { page: now.clone() }).await?;
                    shown = now;
                }
            }
            wanted = focus.recv() => match wanted {
                Ok(focus) => send(&stream, &ToWindow::Focus { focus }).await?,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            message = from_window.recv() => match message {
                None => {
                    tracing::info!("the status window closed");
                    return Ok(());
                }
                Some(ToTray::Action { id }) => match (MenuAction::parse(&id), ClientMenuAction::parse(&id)) {
                    (Some(action), _) => on_action(app, action),
                    (None, Some(action)) => crate::tray::client_action(app, action),
                    (None, None) => tracing::warn!(id, "the status window asked for an unknown action; ignored"),
                },
            },
        }
    }
}

/// Reads `stream`'s messages in a task of their own (so a partly read line
/// is never lost to a `select!`); the channel closes at the end of the
/// stream or at the first bad message.
fn messages<T: for<'de> Deserialize<'de> + Send + 'static>(stream: Arc<Stream>, cap: usize) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel(4);
    tauri::async_runtime::spawn(async move {
        let mut reader = BufReader::new(&*stream);
        loop {
            match read::<T>(&mut reader, cap).await {
                Ok(Some(message)) => {
                    if tx.send(message).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "a bad message on the status window's link; link closed");
                    return;
                }
            }
        }
    });
    rx
}

async fn send<T: Serialize>(stream: &Stream, message: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut writer = stream;
    writer.write_all(&line).await?;
    writer.flush().await
}

/// The next message, `None` at the end of the stream. A line longer than
/// `cap` or not a message ends the link.
async fn read<T: for<'de> Deserialize<'de>>(
    reader: &mut (impl AsyncBufRead + Unpin),
    cap: usize,
) -> std::io::Result<Option<T>> {
    let mut line = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_until(b'\n', &mut line).await?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "message too long or cut off"));
    }
    serde_json::from_slice(&line).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The window's side: the page to show and the way back to the resident.
pub struct Client {
    /// The latest page (JSON, as the page's `status_rows` returns it).
    pub page: watch::Receiver<serde_json::Value>,
    /// Requests to come forward (a menu action id to scroll to, or none).
    pub focus: std::sync::Mutex<Option<mpsc::Receiver<Option<String>>>>,
    actions: mpsc::Sender<String>,
}

impl Client {
    /// Connects to the resident tray and waits for its first page. Must run
    /// inside the async runtime.
    pub async fn connect() -> anyhow::Result<Self> {
        let dir = InstanceLock::default_dir().ok_or_else(|| anyhow::anyhow!("no runtime folder"))?;
        let stream = Stream::connect(name(&dir)?).await.map_err(|e| {
            anyhow::anyhow!("the tray is not running (cannot reach {}: {e})", socket_path(&dir).display())
        })?;
        let stream = Arc::new(stream);
        let (page_tx, mut page) = watch::channel(serde_json::Value::Null);
        let (focus_tx, focus) = mpsc::channel(4);
        let (actions, mut actions_rx) = mpsc::channel::<String>(16);
        let mut from_tray = messages::<ToWindow>(stream.clone(), PAGE_CAP);
        tauri::async_runtime::spawn(async move {
            // Ends when the tray closes the link: the page watch closes too.
            while let Some(message) = from_tray.recv().await {
                match message {
                    ToWindow::Page { page } => {
                        page_tx.send_replace(page);
                    }
                    ToWindow::Focus { focus } => {
                        let _ = focus_tx.try_send(focus);
                    }
                }
            }
        });
        tauri::async_runtime::spawn(async move {
            while let Some(id) = actions_rx.recv().await {
                if let Err(e) = send(&stream, &ToTray::Action { id }).await {
                    tracing::warn!(error = %e, "cannot reach the tray");
                    return;
                }
            }
        });
        tokio::time::timeout(FIRST_PAGE_WAIT, page.wait_for(|p| !p.is_null()))
            .await
            .map_err(|_| anyhow::anyhow!("the tray sent no status within {FIRST_PAGE_WAIT:?}"))?
            .map_err(|_| anyhow::anyhow!("the tray closed the link before sending its status"))?;
        Ok(Self { page, focus: std::sync::Mutex::new(Some(focus)), actions })
    }

    /// Hands the action `id` to the resident; false when the link is gone.
    pub fn act(&self, id: String) -> bool {
        self.actions.try_send(id).is_ok()
    }
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}

//! The app's runtime: one service that every front end (the tray, `mcp-auth
//! daemon`) starts and then only watches and asks.
//!
//! A [`Service`] owns the engine bundle — the vault, the exporter to the
//! agent's files, the refresher, the sign-ins, the background schedule and
//! the watcher of the agent's homes — and publishes two things:
//! - the current [`ServiceView`] (status report with the live activity on
//!   top) through a `tokio::sync::watch` channel ([`Service::view`]);
//! - [`Notice`]s through a broadcast channel ([`Service::notices`]): a
//!   sign-in connected or failed, a server was disconnected, a server now
//!   needs sign-in (once per transition, however often the status is
//!   recomputed or a refresh retried).
//!
//! One task (the loop) waits for whatever can change the view: a new snapshot
//! of the agent's files, the live activity, a request (a vault record to read
//! again, resume from sleep), or the next moment a label changes by time
//! alone (`StatusReport::next_change_at`). No polling. What each event does
//! is decided by the pure rules in [`rules`].
//!
//! Invariants:
//! - Our own writes of the agent's files are recognised by content
//!   ([`ledger`]) and do not cause a sync; a change to one server's files
//!   syncs that server only. The vault record of a server is read again only
//!   when it may have changed (a sync, a refresh, a sign-in, a disconnect, a
//!   new server, resume), never for every server on every file event.
//! - The background schedule is re-planned only when the list of servers
//!   changes or credentials arrive, not on every file event (planning reads
//!   the vault of every server).
//! - Servers are checked for real (one authenticated MCP request each,
//!   [`crate::Checker`]) sparingly: on [`Service::check_now`] (a "Check now"
//!   click, the status window opening, resume from sleep) and in the
//!   background at most every few hours per server, jittered, with rounds
//!   coalesced so an idle machine is woken once per round
//!   ([`crate::due_for_check`]). One round at a time.
//! - Another process's vault change the user must see (a proxy found its
//!   grant revoked) is announced through the vault's changes file and makes
//!   the loop read every record again (`crate::vault::changes`): the status
//!   and the needs-sign-in notice follow without polling.
//! - [`Service::shutdown`] is bounded: a refresh in flight finishes (its
//!   rotated refresh token is stored and exported) or the wait gives up.

mod clients;
mod instance;
mod ledger;
mod rules;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, broadcast, mpsc, watch};

pub use instance::{Holder, InstanceError, InstanceKind, InstanceLock};

use crate::app::settings::SettingsFile;
use crate::clients::{AgentServersOnly, is_own_profile, own_grant_named, own_grants_needing_sign_in};
use crate::hermes::export::{Exporter, HermesExporter};
use crate::hermes::home::HermesRoot;
use crate::hermes::snapshot::Snapshot;
use crate::hermes::watch::{HomeWatcher, WatchError};
use crate::mcp::check::{CheckStore, Checker, Checks, due_for_check};
use crate::oauth::browser::Browser;
use crate::oauth::callback::Delivery;
use crate::oauth::http::Http;
use crate::refresh::background::{BackgroundRefresh, RefreshEvent};
use crate::refresh::transaction::{Refresher, SyncOutcome};
use crate::sign_in::connect::{ConnectError, Disconnected, OAuthServer, disconnect, find_oauth_server, oauth_servers};
use crate::sign_in::sign_ins::{SignInEvent, SignIns};
use crate::vault::{Vault, VaultError, VaultKey};
use crate::view::activity::{Activity, AttentionTracker, NeedsSignIn, ServerRef};
use crate::view::status::{StatusReport, VaultView};
use ledger::{Ledger, LedgerExporter, fingerprint};
use rules::{on_refresh_event, on_sign_in_event, plan_sync, sign_in_server};

/// The private-use URI scheme of the app (RFC 8252 §7.1), for servers
/// configured with `redirect: custom_scheme` (registered by the tray).
pub const APP_URL_SCHEME: &str = "dev.mcpauthtray.app";

/// How many notices a slow subscriber may fall behind before it misses some.
const NOTICE_BACKLOG: usize = 64;
/// The longest [`Service::shutdown`] waits for a refresh in flight.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What a service is started with.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The agent's root folder (its default home and profiles).
    pub root: HermesRoot,
    /// The app's settings (credential store, redirect port).
    pub settings: SettingsFile,
    /// The app's private-use URI scheme, for `redirect: custom_scheme` servers.
    pub url_scheme: String,
    /// The vault to use; `None` opens the one the settings choose (the OS
    /// keychain by default). Tests pass an in-memory one.
    pub vault: Option<Vault>,
    /// Where the status checks' results are kept; `None`: the default
    /// location ([`CheckStore::default_location`]).
    pub check_store: Option<CheckStore>,
}

/// Whether signing in and refreshing work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineState {
    /// The vault is being opened (the keychain may ask to be unlocked).
    Starting,
    /// Signing in and refreshing work.
    Ready,
    /// They are off, for this reason (no keychain, ...); the status still shows.
    Off(String),
    /// The service was shut down.
    Stopped,
}

/// What every front end shows.
#[derive(Debug, Clone)]
pub struct ServiceView {
    /// The agent's homes as last read.
    pub snapshot: Arc<Snapshot>,
    /// The status, with the live activity applied.
    pub report: StatusReport,
    /// What the app is doing for each server right now.
    pub activity: Activity,
    /// What the vault holds for each configured server.
    pub vault: HashMap<VaultKey, VaultView>,
    /// Whether signing in and refreshing work.
    pub engine: EngineState,
}

/// Something to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A sign-in finished: the agent can use the server now.
    Connected { server: ServerRef },
    /// The server's tokens can no longer be renewed (once per transition).
    NeedsSignIn { server: ServerRef, reason: Option<String> },
    /// A sign-in did not work.
    SignInFailed { server: ServerRef, reason: String },
    /// The user signed out of the server.
    Disconnected { server: ServerRef, revoked: bool },
}

impl Notice {
    /// The server the notice is about.
    pub fn server(&self) -> &ServerRef {
        match self {
            Notice::Connected { server }
            | Notice::NeedsSignIn { server, .. }
            | Notice::SignInFailed { server, .. }
            | Notice::Disconnected { server, .. } => server,
        }
    }
}

/// Counters of the work the service did (for tests and benchmarks: they
/// show that a file event costs what it should).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Snapshots of the agent's files handled (view published after each).
    pub snapshots: u64,
    /// Servers synced with the agent's files.
    pub syncs: u64,
    /// Vault records read for the view.
    pub vault_reads: u64,
    /// Status check rounds finished.
    pub check_rounds: u64,
}

/// Why the service could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot follow the agent's files")]
    Watch(#[source] WatchError),
    #[error("signing in and refreshing are off: {reason}")]
    EngineOff { reason: String },
    #[error("the app is shutting down")]
    Stopped,
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Setup(#[from] crate::clients::SetupError),
}

impl ServiceError {
    /// A stable machine-readable code (front ends show the message, and
    /// branch on this).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Watch(_) => "watch",
            ServiceError::EngineOff { .. } => "engine_off",
            ServiceError::Stopped => "stopped",
            ServiceError::Connect(ConnectError::NotFound { .. } | ConnectError::Ambiguous { .. }) => "not_found",
            ServiceError::Connect(_) => "failed",
            ServiceError::Setup(_) => "setup",
        }
    }
}

/// The engine parts that exist once the vault is open.
struct Engine {
    vault: Vault,
    http: Http,
    refresher: Refresher,
    sign_ins: SignIns,
    exporter: Arc<dyn Exporter>,
    checker: Checker,
    background: BackgroundRefresh,
    /// Another process (a proxy, the CLI) noted a failure in the vault: read it again.
    _vault_changes: Option<crate::vault::changes::ChangeWatcher>,
}

/// What the loop was asked to do at its next turn.
#[derive(Debug, Default)]
struct Requests {
    /// Read these vault records again.
    look_up: HashSet<VaultKey>,
    /// Read every vault record again (after resume).
    look_up_all: bool,
    /// Read our own grants' records again (another process changed the
    /// vault, or one of them was signed in to).
    own_grants: bool,
    /// Sync every server with the agent's files, changed or not.
    sync_all: bool,
    /// Check every connected server now.
    check_all: bool,
    /// A check round finished: read the checks file again.
    reload_checks: bool,
}

impl Requests {
    fn any(&self) -> bool {
        self.look_up_all || self.own_grants || self.sync_all || self.reload_checks || !self.look_up.is_empty()
    }
}

#[derive(Debug, Default)]
struct Counters {
    snapshots: AtomicU64,
    syncs: AtomicU64,
    vault_reads: AtomicU64,
    check_rounds: AtomicU64,
}

struct Inner {
    root: HermesRoot,
    settings: SettingsFile,
    url_scheme: String,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    watcher: Mutex<Option<HomeWatcher>>,
    view: watch::Sender<Arc<ServiceView>>,
    notices: broadcast::Sender<Notice>,
    activity: watch::Sender<Activity>,
    engine: Mutex<Option<Arc<Engine>>>,
    engine_state: watch::Sender<EngineState>,
    ledger: Arc<Ledger>,
    check_store: Option<CheckStore>,
    /// A check round is running.
    checking: std::sync::atomic::AtomicBool,
    requests: Mutex<Requests>,
    poke: Notify,
    counters: Counters,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running service. Cheap to clone; stops when the last clone is dropped
/// (call [`Service::shutdown`] to wait for it).
#[derive(Clone)]
pub struct Service {
    handle: Arc<Handle>,
}

/// Stops the tasks when the last [`Service`] goes (they hold the inner state).
struct Handle(Arc<Inner>);

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.0.stop.send(true);
    }
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("root", &self.inner().root).finish_non_exhaustive()
    }
}

impl Service {
    /// Starts following the agent's files and opens the vault, on the
    /// current tokio runtime. Returns at once with a first view (from the
    /// files alone); the engine comes up in the background
    /// ([`ServiceView::engine`]).
    pub async fn start(options: ServiceOptions) -> Result<Self, ServiceError> {
        let watcher = HomeWatcher::start(options.root.clone()).map_err(ServiceError::Watch)?;
        let snapshots = watcher.subscribe();
        let snapshot = watcher.current();
        let first = ServiceView {
            report: StatusReport::evaluate(&snapshot, SystemTime::now()),
            snapshot,
            activity: Activity::default(),
            vault: HashMap::new(),
            engine: EngineState::Starting,
        };
        let inner = Arc::new(Inner {
            root: options.root,
            settings: options.settings,
            url_scheme: options.url_scheme,
            snapshots,
            watcher: Mutex::new(Some(watcher)),
            view: watch::Sender::new(Arc::new(first)),
            notices: broadcast::channel(NOTICE_BACKLOG).0,
            activity: watch::Sender::new(Activity::default()),
            engine: Mutex::new(None),
            engine_state: watch::Sender::new(EngineState::Starting),
            ledger: Arc::new(Ledger::default()),
            check_store: options.check_store.or_else(CheckStore::default_location),
            checking: std::sync::atomic::AtomicBool::new(false),
            requests: Mutex::new(Requests::default()),
            poke: Notify::new(),
            counters: Counters::default(),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(inner.clone(), options.vault));
        *lock(&inner.task) = Some(task);
        Ok(Self { handle: Arc::new(Handle(inner)) })
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.0
    }

    /// The current view, and every later one.
    pub fn view(&self) -> watch::Receiver<Arc<ServiceView>> {
        self.inner().view.subscribe()
    }

    /// The current view.
    pub fn current(&self) -> Arc<ServiceView> {
        self.inner().view.borrow().clone()
    }

    /// The notices from now on.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner().notices.subscribe()
    }

    /// The agent's root folder.
    pub fn root(&self) -> &HermesRoot {
        &self.inner().root
    }

    /// The work done so far (see [`ServiceStats`]).
    pub fn stats(&self) -> ServiceStats {
        let c = &self.inner().counters;
        ServiceStats {
            snapshots: c.snapshots.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            vault_reads: c.vault_reads.load(Ordering::Relaxed),
            check_rounds: c.check_rounds.load(Ordering::Relaxed),
        }
    }

    /// The configured OAuth server `r`: the agent's, or one of our own
    /// grants (profile [`crate::clients::OWN_PROFILE`], read from our list and the clients'
    /// files; blocking, small bounded files).
    pub fn find(&self, r: &ServerRef) -> Result<OAuthServer, ServiceError> {
        let snapshot = self.inner().snapshots.borrow().clone();
        if is_own_profile(r.profile.as_deref()) {
            return own_grant_named(&snapshot, &r.name)
                .ok_or_else(|| ConnectError::NotFound { name: r.name.clone(), profile: None }.into());
        }
        Ok(find_oauth_server(&snapshot, &r.name, Some(r.profile.as_deref().unwrap_or("default")))?)
    }

    /// The engine, once started (waits while the vault opens).
    async fn engine(&self) -> Result<Arc<Engine>, ServiceError> {
        let mut state = self.inner().engine_state.subscribe();
        let state = state.wait_for(|s| *s != EngineState::Starting).await.map_err(|_| ServiceError::Stopped)?.clone();
        match state {
            EngineState::Ready => lock(&self.inner().engine).clone().ok_or(ServiceError::Stopped),
            EngineState::Off(reason) => Err(ServiceError::EngineOff { reason }),
            EngineState::Starting | EngineState::Stopped => Err(ServiceError::Stopped),
        }
    }

    /// Starts a sign-in to `r`, opening its authorization URL with `browser`.
    /// `Ok(false)` when one is already running. A failure to start is also
    /// announced as [`Notice::SignInFailed`]; how the sign-in ends arrives as
    /// a notice too.
    pub async fn connect(&self, r: &ServerRef, browser: Arc<dyn Browser>) -> Result<bool, ServiceError> {
        let started =
            async { Ok::<_, ServiceError>(self.engine().await?.sign_ins.start(self.find(r)?, browser)) }.await;
        match &started {
            Ok(true) => {}
            Ok(false) => tracing::info!(server = %r.name, "a sign-in is already running"),
            Err(e) => {
                tracing::warn!(server = %r.name, error = %e, "cannot sign in");
                self.inner().notify(Notice::SignInFailed { server: r.clone(), reason: e.to_string() });
            }
        }
        started
    }

    /// Signs in to `r` again asking for the scope its last check found
    /// missing on top of what is granted ("Grant more access"); a plain
    /// sign-in when no check asked for more.
    pub async fn step_up(&self, r: &ServerRef, browser: Arc<dyn Browser>) -> Result<bool, ServiceError> {
        let required = self
            .current()
            .report
            .servers
            .iter()
            .find(|s| ServerRef::of(s) == *r)
            .and_then(|s| s.last_check.required_scope.clone());
        let started = async {
            let server = self.find(r)?.with_step_up(required);
            Ok::<_, ServiceError>(self.engine().await?.sign_ins.start(server, browser))
        }
        .await;
        if let Err(e) = &started {
            tracing::warn!(server = %r.name, error = %e, "cannot sign in for more access");
            self.inner().notify(Notice::SignInFailed { server: r.clone(), reason: e.to_string() });
        }
        started
    }

    /// Checks every connected server for real now (one authenticated MCP
    /// request each): a "Check now" click, the status window opening,
    /// resume from sleep. Returns at once; the view shows the outcomes
    /// when the round ends. Nothing happens while a round runs.
    pub fn check_now(&self) {
        self.inner().request(|q| q.check_all = true);
    }

    /// Cancels a running sign-in to `r`; false when none runs.
    pub async fn cancel_sign_in(&self, r: &ServerRef) -> bool {
        match self.engine().await {
            Ok(engine) => engine.sign_ins.cancel(r).await,
            Err(_) => false,
        }
    }

    /// Hands a deep link to the running sign-ins (the end of a sign-in
    /// with a custom-scheme redirect).
    pub fn deliver_redirect(&self, url: &str) -> Result<Delivery, ServiceError> {
        let engine = lock(&self.inner().engine).clone();
        match engine {
            Some(engine) => Ok(engine.sign_ins.deliver_redirect(url)),
            None => Err(match &*self.inner().engine_state.borrow() {
                EngineState::Off(reason) => ServiceError::EngineOff { reason: reason.clone() },
                _ => ServiceError::Stopped,
            }),
        }
    }

    /// Signs out of `r`: revokes its tokens when the server allows it, and
    /// removes them from the vault and the agent's files.
    pub async fn disconnect(&self, r: &ServerRef) -> Result<Disconnected, ServiceError> {
        let server = self.find(r)?;
        let engine = self.engine().await?;
        let done = disconnect(&engine.http, &engine.vault, engine.exporter.as_ref(), &server).await?;
        let inner = self.inner();
        let r = ServerRef::new(server.home.profile.as_deref(), &server.name);
        inner.activity.send_modify(|a| a.update(&r, |a| *a = Default::default()));
        tracing::info!(server = %r.name, revoked = done.revoked, note = ?done.revoke_note, "disconnected");
        inner.notify(Notice::Disconnected { server: r, revoked: done.revoked });
        inner.request(|q| {
            q.look_up.insert(server.vault_key());
        });
        Ok(done)
    }

    /// After the machine resumed: refresh what fell due during sleep and
    /// read the vault again (the monotonic clock did not run while asleep).
    pub fn woke_up(&self) {
        if let Some(engine) = lock(&self.inner().engine).as_ref() {
            engine.background.wake();
        }
        self.inner().request(|q| {
            q.look_up_all = true;
            // What changed while asleep (a grant revoked) shows now.
            q.check_all = true;
        });
    }

    /// Syncs every server with the agent's files and reads the vault again,
    /// whether or not their files changed (an explicit "reload").
    pub fn sync_all(&self) {
        self.inner().request(|q| {
            q.sync_all = true;
            q.look_up_all = true;
        });
    }

    /// Stops everything: the loop, the background schedule (waiting at most
    /// [`SHUTDOWN_WAIT`] for a refresh in flight), running sign-ins (their
    /// loopback listeners close) and the watcher. Idempotent.
    pub async fn shutdown(&self) {
        let inner = self.inner();
        let _ = inner.stop.send(true);
        let task = lock(&inner.task).take();
        if let Some(task) = task
            && tokio::time::timeout(SHUTDOWN_WAIT, task).await.is_err()
        {
            tracing::warn!("the service's loop did not stop in time");
        }
        let engine = lock(&inner.engine).take();
        inner.engine_state.send_replace(EngineState::Stopped);
        if let Some(engine) = engine {
            for r in engine.sign_ins.running() {
                engine.sign_ins.cancel(&r).await;
            }
            match Arc::try_unwrap(engine) {
                Ok(engine) => {
                    if !engine.background.stop(SHUTDOWN_WAIT).await {
                        tracing::warn!("a refresh was still running at shutdown");
                    }
                }
                Err(_) => tracing::debug!("the engine is still in use; it stops when released"),
            }
        }
        let watcher = lock(&inner.watcher).take();
        // Joining the watcher's thread blocks briefly.
        let _ = tokio::task::spawn_blocking(move || drop(watcher)).await;
        tracing::info!("service stopped");
    }
}

impl Inner {
    fn notify(&self, notice: Notice) {
        // No subscriber is fine (nobody to tell).
        let _ = self.notices.send(notice);
    }

    fn request(&self, change: impl FnOnce(&mut Requests)) {
        change(&mut lock(&self.requests));
        self.poke.notify_one();
    }
}

/// Opens the vault and starts the engine parts that need it.
async fn start_engine(
    inner: &Arc<Inner>,
    given: Option<Vault>,
) -> Result<(Engine, mpsc::UnboundedReceiver<SignInEvent>), String> {
    let http = Http::new().map_err(|e| format!("cannot create the HTTP client: {e}"))?;
    let vault = match given {
        Some(vault) => vault,
        None => {
            let settings = inner.settings.clone();
            tokio::task::spawn_blocking(move || crate::vault::open::open_vault(&settings.load()))
                .await
                .unwrap_or_else(|e| Err(VaultError::Backend(format!("vault task failed: {e}"))))
                .map_err(|e| format!("credentials cannot be kept until the keychain is available: {e}"))?
        }
    };
    let exporter = Arc::new(LedgerExporter::new(Arc::new(HermesExporter), inner.ledger.clone()));
    // Sign-ins, refreshes and disconnects of our own grants write no files.
    let exporter: Arc<dyn Exporter> = Arc::new(AgentServersOnly(exporter));
    let refresher = Refresher::new(http.clone(), exporter.clone());
    let (sign_ins, events) =
        SignIns::new(http.clone(), vault.clone(), exporter.clone(), inner.settings.clone(), &inner.url_scheme);
    let weak = Arc::downgrade(inner);
    let on_refresh = Box::new(move |server: &OAuthServer, event: RefreshEvent<'_>| refresh_event(&weak, server, event));
    let mut checker =
        Checker::new(vault.clone(), refresher.clone()).map_err(|e| format!("cannot create the HTTP client: {e}"))?;
    if let Some(store) = inner.check_store.clone() {
        checker = checker.with_store(store);
    }
    let background = BackgroundRefresh::start(vault.clone(), refresher.clone(), on_refresh);
    let weak = Arc::downgrade(inner);
    let vault_changes = match vault.watch_changes(move || {
        if let Some(inner) = weak.upgrade() {
            tracing::debug!("another process changed the vault; reading it again");
            inner.request(|q| {
                q.look_up_all = true;
                q.own_grants = true;
            });
        }
    }) {
        Some(Ok(watcher)) => Some(watcher),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot follow vault changes of other processes (proxies); they show later");
            None
        }
        None => None,
    };
    let engine =
        Engine { vault, http, refresher, sign_ins, exporter, checker, background, _vault_changes: vault_changes };
    Ok((engine, events))
}

/// Keeps the live state in step with the background refresher.
fn refresh_event(inner: &Weak<Inner>, server: &OAuthServer, event: RefreshEvent<'_>) {
    let Some(inner) = inner.upgrade() else { return };
    let r = ServerRef::new(server.home.profile.as_deref(), &server.name);
    let mut effects = None;
    inner.activity.send_modify(|a| a.update(&r, |a| effects = Some(on_refresh_event(a, event))));
    if effects.is_some_and(|e| e.look_up) {
        inner.request(|q| {
            q.look_up.insert(server.vault_key());
        });
    }
    if let RefreshEvent::Stopped(reason) = event {
        tracing::warn!(server = %server.name, %reason, "sign in again: the token cannot be refreshed");
    }
}

/// Turns sign-in results into live state, notices and scheduler wake-ups.
async fn sign_in_events(inner: Arc<Inner>, mut events: mpsc::UnboundedReceiver<SignInEvent>) {
    let mut stop = inner.stop.subscribe();
    loop {
        let event = tokio::select! {
            event = events.recv() => match event { Some(event) => event, None => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        let r = sign_in_server(&event).clone();
        match &event {
            SignInEvent::Connected(_, connected) => {
                tracing::info!(server = %r.name, expires_at = ?connected.expires_at, "connected")
            }
            SignInEvent::Failed(_, reason) => tracing::warn!(server = %r.name, %reason, "sign-in failed"),
            SignInEvent::Cancelled(_) => tracing::info!(server = %r.name, "sign-in cancelled"),
            SignInEvent::Started(_) => {}
        }
        let mut effects = None;
        inner.activity.send_modify(|a| a.update(&r, |a| effects = Some(on_sign_in_event(a, &event))));
        let Some(effects) = effects else { continue };
        if effects.look_up && is_own_profile(r.profile.as_deref()) {
            inner.request(|q| q.own_grants = true);
        } else if effects.look_up
            && let Ok(server) =
                find_oauth_server(&inner.snapshots.borrow(), &r.name, Some(r.profile.as_deref().unwrap_or("default")))
        {
            inner.request(|q| {
                q.look_up.insert(server.vault_key());
            });
        }
        if effects.wake_scheduler
            && let Some(engine) = lock(&inner.engine).as_ref()
        {
            engine.background.wake();
        }
        if let Some(notice) = effects.notice {
            inner.notify(notice);
        }
    }
}

/// The service's loop (see the module docs).
async fn run(inner: Arc<Inner>, given_vault: Option<Vault>) {
    let mut stop = inner.stop.subscribe();
    let started = tokio::select! {
        started = start_engine(&inner, given_vault) => started,
        _ = stop.wait_for(|s| *s) => return,
    };
    let engine = match started {
        Ok((engine, events)) => {
            let engine = Arc::new(engine);
            *lock(&inner.engine) = Some(engine.clone());
            inner.engine_state.send_replace(EngineState::Ready);
            tokio::spawn(sign_in_events(inner.clone(), events));
            Some(engine)
        }
        Err(reason) => {
            tracing::warn!(%reason, "signing in and refreshing are off");
            inner.engine_state.send_replace(EngineState::Off(reason));
            None
        }
    };
    // Only a weak reference from here on: shutdown takes the engine (and so
    // stops the background schedule) while this loop may still run.
    let engine = engine.as_ref().map(Arc::downgrade);
    let mut snapshots = inner.snapshots.clone();
    let mut activity = inner.activity.subscribe();
    let mut attention = AttentionTracker::default();
    let mut snapshot = snapshots.borrow_and_update().clone();
    let mut servers: Option<Vec<OAuthServer>> = None;
    let mut views: HashMap<VaultKey, VaultView> = HashMap::new();
    let mut checks = load_checks(&inner).await;
    // Our own grants needing a new sign-in (they are in no report).
    let mut own_needs: Vec<NeedsSignIn> = Vec::new();
    // When each server's last check round was started (a round whose results
    // could not be kept still counts: no retry loop), or when it was first
    // seen connected.
    let mut tried: HashMap<String, f64> = HashMap::new();
    let mut new_snapshot = true;
    loop {
        let requests = std::mem::take(&mut *lock(&inner.requests));
        let engine = engine.as_ref().and_then(Weak::upgrade);
        if requests.reload_checks {
            checks = load_checks(&inner).await;
        }
        if new_snapshot || requests.any() {
            let now_servers = oauth_servers(&snapshot);
            let previous = servers.replace(now_servers.clone()).unwrap_or_default();
            if previous != now_servers
                && let Some(engine) = &engine
            {
                engine.background.set_servers(now_servers.clone());
            }
            let keys: Vec<VaultKey> = now_servers.iter().map(OAuthServer::vault_key).collect();
            views.retain(|k, _| keys.contains(k));
            let mut look_up = requests.look_up;
            if let Some(engine) = &engine
                && (new_snapshot || requests.sync_all)
            {
                let new: HashSet<VaultKey> =
                    keys.iter().filter(|k| !previous.iter().any(|s| s.vault_key() == **k)).cloned().collect();
                look_up.extend(sweep(&inner, engine, &now_servers, &new, requests.sync_all).await);
            }
            if requests.look_up_all {
                look_up.extend(keys.iter().cloned());
            }
            look_up.extend(keys.iter().filter(|k| !views.contains_key(k)).cloned());
            look_up.retain(|k| keys.contains(k));
            views.extend(read_views(&inner, engine.as_deref(), look_up).await);
            if let Some(engine) = &engine
                && (new_snapshot || requests.own_grants)
            {
                own_needs = read_own_needs(&snapshot, engine).await;
            }
        }
        let live = activity.borrow_and_update().clone();
        let mut report = StatusReport::evaluate_with(&snapshot, SystemTime::now(), &|k| {
            views.get(k).cloned().unwrap_or(VaultView::Missing)
        });
        report.apply_checks(&checks);
        live.apply(&mut report);
        for needs in attention.observe_with(&report, &own_needs) {
            inner.notify(Notice::NeedsSignIn { server: needs.server, reason: needs.reason });
        }
        let next_check = match &engine {
            Some(engine) => plan_checks(&inner, engine, &snapshot, &views, &checks, &mut tried, requests.check_all),
            None => None,
        };
        let next_change = match (report.next_change_at(), next_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let engine_state = inner.engine_state.borrow().clone();
        inner.view.send_replace(Arc::new(ServiceView {
            snapshot: snapshot.clone(),
            report,
            activity: live,
            vault: views.clone(),
            engine: engine_state,
        }));
        if new_snapshot {
            inner.counters.snapshots.fetch_add(1, Ordering::Relaxed);
        }
        new_snapshot = false;
        drop(engine);
        let timer = async {
            match next_change {
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
                new_snapshot = true;
            }
            _ = activity.changed() => {}
            () = inner.poke.notified() => {}
            () = timer => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Our own grants that need a new sign-in, read now (nothing when they
/// cannot be read: their records are no less fine than before).
async fn read_own_needs(snapshot: &Arc<Snapshot>, engine: &Engine) -> Vec<NeedsSignIn> {
    let (snapshot, vault) = (snapshot.clone(), engine.vault.clone());
    let now = crate::util::time::now_secs();
    tokio::task::spawn_blocking(move || own_grants_needing_sign_in(&snapshot, &vault, now)).await.unwrap_or_default()
}

/// The checks as kept in the store (none without one).
async fn load_checks(inner: &Arc<Inner>) -> Checks {
    match inner.check_store.clone() {
        Some(store) => tokio::task::spawn_blocking(move || store.load()).await.unwrap_or_default(),
        None => Checks::default(),
    }
}

/// Starts a check round when one is asked for (`all`) or due (the
/// background cadence), unless one runs; returns when the next is due.
fn plan_checks(
    inner: &Arc<Inner>,
    engine: &Arc<Engine>,
    snapshot: &Snapshot,
    views: &HashMap<VaultKey, VaultView>,
    checks: &Checks,
    tried: &mut HashMap<String, f64>,
    all: bool,
) -> Option<f64> {
    // Only servers with credentials can be checked.
    let connected: Vec<OAuthServer> = oauth_servers(snapshot)
        .into_iter()
        .filter(|s| matches!(views.get(&s.vault_key()), Some(VaultView::Present(_))))
        .collect();
    if connected.is_empty() {
        return None;
    }
    let now = crate::util::time::now_secs();
    let ids: Vec<(String, Option<f64>)> = connected
        .iter()
        .map(|s| {
            let key = s.vault_key();
            let kept = checks.get(&key).map(|r| r.checked_at);
            // Never checked: its first background check is a full interval
            // after the service first saw it connected (a start or a new
            // sign-in probes nothing; "Check now" and the window do).
            if kept.is_none() {
                tried.entry(key.account().to_owned()).or_insert(now);
            }
            let attempted = tried.get(key.account()).copied();
            let last = match (kept, attempted) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            (key.account().to_owned(), last)
        })
        .collect();
    let (due, next) = due_for_check(ids.iter().map(|(id, last)| (id.as_str(), *last)), now);
    let round: Vec<OAuthServer> = if all {
        connected
    } else {
        connected.into_iter().filter(|s| due.contains(&s.vault_key().account())).collect()
    };
    if round.is_empty() || inner.checking.swap(true, Ordering::AcqRel) {
        return next;
    }
    for server in &round {
        tried.insert(server.vault_key().account().to_owned(), now);
    }
    tracing::info!(servers = round.len(), asked = all, "checking servers");
    let (inner, engine) = (inner.clone(), engine.clone());
    tokio::spawn(async move {
        let keys: HashSet<VaultKey> = round.iter().map(OAuthServer::vault_key).collect();
        for (server, result) in engine.checker.check_all(&round).await {
            match result {
                Ok(Some(r)) => tracing::info!(server = %server.name, outcome = ?r.outcome.kind(), "checked"),
                Ok(None) => {}
                Err(e) => tracing::warn!(server = %server.name, error = %e, "cannot check the server"),
            }
        }
        inner.counters.check_rounds.fetch_add(1, Ordering::Relaxed);
        inner.checking.store(false, Ordering::Release);
        // A check may have refreshed: read those records again too.
        inner.request(|q| {
            q.reload_checks = true;
            q.look_up.extend(keys);
        });
    });
    next
}

/// Takes into the vault what the agent wrote, for the servers whose files
/// changed by someone else's hand (or are `new`, or all when `force`).
/// Returns the servers synced (their vault records may have changed).
async fn sweep(
    inner: &Arc<Inner>,
    engine: &Engine,
    servers: &[OAuthServer],
    new: &HashSet<VaultKey>,
    force: bool,
) -> Vec<VaultKey> {
    // Fingerprints (small file reads) off the async threads.
    let current = {
        let ledger = inner.ledger.clone();
        let paths: Vec<_> = servers.iter().map(OAuthServer::paths).collect();
        tokio::task::spawn_blocking(move || {
            let known = ledger.all();
            let now: Vec<_> = paths.iter().map(|p| (p.tokens.clone(), fingerprint(p), ledger.writes(p))).collect();
            (known, now)
        })
        .await
    };
    let Ok((known, now)) = current else { return Vec::new() };
    let pairs: Vec<_> = now.iter().map(|(path, f, _)| (path.clone(), *f)).collect();
    let plan = plan_sync(&known, &pairs);
    for gone in &plan.forget {
        inner.ledger.forget(gone);
    }
    let mut synced = Vec::new();
    for (server, (_, seen, writes_before)) in servers.iter().zip(&now) {
        let paths = server.paths();
        let key = server.vault_key();
        if !(force || new.contains(&key) || plan.sync.contains(&paths.tokens)) {
            continue;
        }
        inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
        match engine.refresher.sync(&engine.vault, server).await {
            Ok(outcome) => {
                if matches!(outcome, SyncOutcome::Adopted | SyncOutcome::AdoptedNew) {
                    tracing::info!(server = %server.name, "took in tokens the agent wrote");
                }
                inner.ledger.took_in(&paths, *seen, *writes_before);
            }
            Err(e) => tracing::warn!(server = %server.name, error = %e, "cannot sync with the agent's files"),
        }
        synced.push(key);
    }
    synced
}

/// Reads what the vault holds for `keys` (every key is unavailable, with
/// the reason, when the engine is off).
async fn read_views(
    inner: &Arc<Inner>,
    engine: Option<&Engine>,
    keys: HashSet<VaultKey>,
) -> HashMap<VaultKey, VaultView> {
    if keys.is_empty() {
        return HashMap::new();
    }
    let vault = match engine {
        Some(engine) => Ok(engine.vault.clone()),
        None => Err(VaultError::Unavailable(match &*inner.engine_state.borrow() {
            EngineState::Off(reason) => reason.clone(),
            _ => "the keychain is not available".to_owned(),
        })),
    };
    if vault.is_ok() {
        inner.counters.vault_reads.fetch_add(keys.len() as u64, Ordering::Relaxed);
    }
    tokio::task::spawn_blocking(move || crate::vault::open::vault_views(&vault, keys)).await.unwrap_or_default()
}

fn until(epoch_secs: f64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    crate::refresh::schedule::sleep_until(epoch_secs - now)
}

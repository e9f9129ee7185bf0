//! The GUI-free engine of mcp-auth-tray: everything the tray app and the
//! `mcp-auth` CLI do, so the two front ends stay thin and always agree.
//!
//! The crate is grouped by wing; each wing's `mod.rs` says what it owns:
//! - `hermes`: the agent's side — its homes and profiles ([`HermesRoot`]),
//!   its `config.yaml` read the way the agent reads it ([`load_home_config`]),
//!   its token store's layout and file shapes, its refresh fence, the live
//!   watcher ([`HomeWatcher`]) and the exporter ([`HermesExporter`]);
//! - `oauth`: the MCP authorization flow — discovery, registration, PKCE in
//!   the system browser, the loopback or custom-scheme callback, tokens,
//!   revocation, and the endpoint rules that keep a hostile server from
//!   sending us (or the browser) anywhere unsafe ([`Engine`]);
//! - `mcp`: using a token on an MCP server ([`McpSession`]), and checking
//!   each signed-in server for real, sparingly ([`Checker`]);
//! - `vault`: one credential record per server in the OS keychain ([`Vault`]);
//! - `sign_in`: Connect for one server, concurrent sign-ins for the tray, and
//!   `doctor` ([`connect`], [`SignIns`], [`examine`]);
//! - `refresh`: the single-flight refresh transaction that never loses a
//!   rotated token, the schedule rules and the background loop ([`Refresher`],
//!   [`BackgroundRefresh`]);
//! - `view`: what front ends render — the status model, activity, the tray
//!   menu and the window's rows ([`StatusReport`], [`tray_menu`]);
//! - `app`: the app's settings and logging; `util`: small shared helpers.
//!
//! The crate never depends on a GUI toolkit: it builds and tests headless.
//! Its modules are private; this facade is the whole public surface.

mod app;
mod clients;
/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod hermes;
mod mcp;
mod oauth;
mod refresh;
mod service;
mod sign_in;
mod util;
mod vault;
mod view;

pub use app::desktop_entry::installed_entry_opens;
pub use app::log_file::{DailyLog, migrate_app_folder};
pub use app::logging::{CAPPED_CRATES, colour_for, colour_stderr, init_stderr_logging, log_filter};
pub use app::settings::{AppSettings, SettingsError, SettingsFile};
pub use clients::grant::{choose_grant, grant_candidates};
pub use clients::setup::{apply as apply_setup, plan as plan_setup};
pub use clients::{
    ClientFile, ClientKind, ClientMenuAction, ClientProblem, ClientServer, ClientServerStatus, ClientsReport,
    ConfigLocation, GrantError, GrantServer, GrantSource, LocationEnv, NoExport, OWN_CLIENT, OWN_PROFILE, OwnList,
    OwnListError, OwnListFile, Platform, Routing, SetupAction, SetupError, SetupPlan, SetupRequest, Shape, Transport,
    clients_menu, clients_status, config_locations, exporter_for, find_grant, is_own_profile, normalize_url,
    own_grant_keys, read_all as read_client_configs, read_location as read_client_config, setup_location,
};
pub use clients::{
    UseInDone, load_clients_report, named_server_url, program_beside, read_client_files, urls_named,
    use_in as use_in_client, with_clients_menu,
};
pub use hermes::config::{
    AuthKind, ConfigError, ConfigLoad, EnvRef, HeaderAuth, OAuthSettings, RedirectKind, ServerConfig, ServerEntry,
    SignInFlow, load_home_config,
};
pub use hermes::export::{ExportError, ExportTarget, Exporter, HermesExporter};
pub use hermes::fence::{
    DEFAULT_FENCE_TIMEOUT, FenceError, FenceGuard, acquire as acquire_fence, acquire_async as acquire_fence_async,
};
pub use hermes::files::{
    AgentFilesError, TokenRecord, read_client, read_json, read_tokens, remove_server_files, write_server_files,
};
pub use hermes::home::{HermesRoot, Home, is_profile_id};
pub use hermes::layout::{AgentPaths, token_file_stem};
pub use hermes::snapshot::{HomeSnapshot, Snapshot, SnapshotLoader};
pub use hermes::token_file::{TokenFileError, TokenFileSummary, read_token_file};
pub use hermes::watch::{HomeWatcher, WatchError};
pub use mcp::check::{
    CHECK_CONCURRENCY, CHECK_INTERVAL, CHECK_JITTER, CHECK_TIMEOUT, CheckError, CheckKind, CheckOutcome, CheckResult,
    CheckRound, CheckStore, Checker, Checks, Probe as CheckProbe, classify as classify_check, due_for_check,
    next_check_at, probe as probe_server, step_up_scope,
};
pub use mcp::client::{McpError, McpSession, Wire};
pub use mcp::proxy::{
    AgentFilesIfPresent, Credentials, PROXY_ERROR_CODE, ProxyError, ProxyServer, ResolveError, Upstream,
    VaultAuthClient, authorization_headers, connect_command, refresh_due, relay, relay_via, resolve_grant,
    resolve_server,
};
pub use mcp::remote::{Remote, RemoteError, RemoteTransport, declared_transport, http_wrong_transport};
pub use mcp::sse::{
    EventSizeLimit, MAX_ENDPOINT_BYTES, SseConfig, SseError, SseTransport, SseWorker,
    bounded_events as bounded_sse_events, connect as connect_sse, endpoint_url as sse_endpoint_url,
};
pub use oauth::browser::{
    Browser, BrowserError, BrowserFuture, CommandBrowser, HeadlessBrowser, SystemBrowser, check_browser_url,
    chosen_browser,
};
pub use oauth::callback::{CallbackError, CallbackRouter, Delivery};
pub use oauth::client::ClientRecord;
pub use oauth::engine::{Discovered, Engine, EngineError, MAX_AUTHORIZATIONS, Probe, Step, Target};
pub use oauth::http::Http;
pub use oauth::loopback::{LoopbackListener, PortChoice, bind_stable};
pub use oauth::resource::canonical_resource;
pub use oauth::tokens::{JwtClient, MAX_LIFETIME_SECS, TokenEndpoint, TokenError};
pub use refresh::background::{BackgroundRefresh, OnEvent, RefreshEvent};
pub use refresh::schedule::{
    Clock, MAX_CONCURRENT_REFRESHES, WALL_CLOCK_CHECK, refresh_due_at, sleep_until, slept_through,
};
pub use refresh::transaction::{
    KeptIn, RECOVERED_NOTE, ReauthReason, RefreshError, RefreshOutcome, Refresher, SyncOutcome,
};
pub use service::{
    APP_URL_SCHEME, EngineState, Holder, InstanceError, InstanceKind, InstanceLock, Notice, SHUTDOWN_WAIT, Service,
    ServiceError, ServiceOptions, ServiceStats, ServiceView,
};
pub use sign_in::connect::{
    ConnectError, Drift, Grant, OAuthServer, connect, connect_with, disconnect, drift, export_server,
    find_oauth_server, needing_sign_in, oauth_servers,
};
pub use sign_in::doctor::{Diagnosis, Outcome, examine};
pub use sign_in::sign_ins::{SignInEvent, SignIns, launch_deep_links};
pub use util::atomic_file::{ensure_private_dir, write_private};
pub use util::read_capped::tail_lines;
pub use util::secret::SecretString;
pub use util::text::error_text;
pub use util::time::now_secs;
pub use vault::open::{
    default_credential_file, default_lock_dir, open_default_vault, open_vault, vault_status, vault_views,
};
pub use vault::{
    BackendError, CredentialRecord, Fetched, FileBackend, KeyringBackend, MemoryBackend, NamedBy, RefreshFailure,
    SECRET_SERVICE_IN_FLIGHT, SERVICE, SecretBackend, StoredTokens, Vault, VaultError, VaultKey,
};
pub use view::activity::{Activity, AttentionTracker, Busy, ServerActivity, ServerRef};
pub use view::details::{ServerDetails, server_details};
pub use view::menu::{MenuAction, MenuContext, MenuLine, QUIT_ID, TrayIcon, TrayMenu, tray_menu};
pub use view::status::{
    AuthLabel, AuthState, CheckView, ConfigProblem, EXPIRY_HORIZON_SECS, Overview, REDACTED, ServerStatus,
    StatusReport, VaultView, apply_check, menu_line, redact_url, time_left,
};

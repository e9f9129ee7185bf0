//! The GUI-free engine of mcp-auth-tray.
//!
//! Everything a front end needs lives here, so the tray app and the `mcp-auth`
//! CLI stay thin and agree with each other:
//! - where the agent keeps its homes and profiles ([`HermesRoot`]);
//! - its `config.yaml`, read the way the agent reads it, with `.env` and
//!   `${VAR}` interpolation ([`load_home_config`]);
//! - the file layout of the agent's own token store ([`token_file_stem`],
//!   [`TokenFileSummary`]);
//! - one status model that every front end renders ([`ServerStatus`]);
//! - a watcher that follows edits of config and token files ([`HomeWatcher`]).
//!
//! The crate never depends on a GUI toolkit: it builds and tests headless.

pub mod activity;
mod agent_files;
mod agent_layout;
mod atomic_file;
pub mod background;
mod client_identity;
mod config;
pub mod connect;
pub mod details;
pub mod doctor;
mod dotenv;
pub mod export;
mod fence;
/// Entry points for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod home;
mod interpolate;
mod log_file;
mod logging;
pub mod mcp_client;
mod menu;
pub mod oauth;
mod read_capped;
pub mod refresh;
pub mod schedule;
mod secret;
pub mod service;
mod settings;
pub mod sign_in;
mod snapshot;
mod status;
mod text;
mod token_file;
pub mod vault;
mod vault_open;
mod watch;

pub use agent_files::{
    AgentFilesError, ClientRecord, TokenRecord, read_client, read_json, read_tokens, remove_server_files,
    write_server_files,
};
pub use agent_layout::{AgentPaths, token_file_stem};
pub use atomic_file::{ensure_private_dir, write_private};
pub use config::{
    AuthKind, ConfigError, ConfigLoad, EnvRef, HeaderAuth, OAuthSettings, RedirectKind, ServerConfig, ServerEntry,
    SignInFlow, load_home_config,
};
pub use fence::{
    DEFAULT_FENCE_TIMEOUT, FenceError, FenceGuard, acquire as acquire_fence, acquire_async as acquire_fence_async,
};
pub use home::{HermesRoot, Home, is_profile_id};
pub use log_file::{DailyLog, migrate_app_folder};
pub use logging::{CAPPED_CRATES, colour_for, colour_stderr, init_stderr_logging, log_filter};
pub use menu::{MenuAction, MenuContext, MenuLine, QUIT_ID, TrayIcon, TrayMenu, tray_menu};
pub use read_capped::tail_lines;
pub use secret::SecretString;
pub use service::{
    EngineState, Holder, InstanceError, InstanceKind, InstanceLock, Notice, Service, ServiceError, ServiceOptions,
    ServiceStats, ServiceView,
};
pub use settings::{AppSettings, SettingsError, SettingsFile};
pub use sign_in::launch_deep_links;
pub use snapshot::{HomeSnapshot, Snapshot, SnapshotLoader};
pub use status::{
    AuthLabel, AuthState, ConfigProblem, Overview, REDACTED, ServerStatus, StatusReport, VaultView, menu_line,
    redact_url, refresh_due_at, time_left,
};
pub use token_file::{TokenFileError, TokenFileSummary, now_secs, read_token_file};
pub use vault_open::{
    default_credential_file, default_lock_dir, open_default_vault, open_vault, vault_status, vault_views,
};
pub use watch::{HomeWatcher, WatchError};

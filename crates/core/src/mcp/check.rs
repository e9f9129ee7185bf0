//! Checking for real: one authenticated MCP request per connected server.
//!
//! The status model derives a server's state from expiry times and the last
//! refresh result. That cannot see a grant revoked at the server, or a token
//! that lacks a scope the server now requires: both still read "Connected"
//! until the agent fails. A check asks the server itself, sparingly:
//! 1. it sends one `initialize` POST (Streamable HTTP) with the vault's
//!    access token, and looks only at the HTTP status and `WWW-Authenticate`
//!    ([`classify`], a pure table): the body is never read, so a server
//!    cannot make us buffer anything, and the whole request has a timeout
//!    ([`CHECK_TIMEOUT`]). A 404 or 405 may be a legacy HTTP+SSE server
//!    (MCP 2024-11-05), which is spoken to with a `GET` of its event stream
//!    and may refuse the POST before it looks at the token: then that `GET`
//!    is sent with the token too, judged the same way, and closed as soon as
//!    its head arrives ([`legacy_sse_answer`]);
//! 2. a 401 leads to exactly one refresh through the refresh transaction
//!    (single-flight per server, the agent's fence, a rotated token never
//!    lost) and one retry with the new token; a second 401, or a refresh that
//!    cannot work, is [`CheckOutcome::NeedsSignIn`];
//! 3. a 403 `insufficient_scope` is [`CheckOutcome::NeedsMoreAccess`] with
//!    the scope the server asks for ([`step_up_scope`] makes the union a new
//!    sign-in asks for);
//! 4. no answer, a timeout, 5xx, 404 are [`CheckOutcome::Unreachable`]:
//!    not an auth state — the credentials are kept and shown as they are.
//!
//! Results are kept per server in a small state file ([`CheckStore`],
//! `<data dir>/mcp-auth-tray/checks.json`) so they survive restarts and every
//! front end sees the same. A result names the expiry of the access token it
//! checked: once the tokens change (a refresh, a new sign-in), the result is
//! about tokens that are gone and the status ignores it.
//!
//! When to check is the caller's (the service): when the status window
//! opens, after resume, on "Check now", and in the background at most every
//! few hours per server ([`next_check_at`], [`due_for_check`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::oauth::http::{CONNECT_TIMEOUT, Http, HttpError};
use crate::oauth::www_authenticate::bearer_challenge;
use crate::refresh::transaction::Refresher;
use crate::sign_in::connect::OAuthServer;
use crate::util::json_file::JsonFile;
use crate::util::secret::SecretString;
use crate::util::text::error_text;
use crate::vault::{Vault, VaultError, VaultKey};

/// The whole check request (connect, send, response head) at most.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// Servers checked at once by [`Checker::check_all`].
pub const CHECK_CONCURRENCY: usize = 4;
/// The background cadence: a server is checked again this long after its
/// last check (± [`CHECK_JITTER`]).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// The spread of the background cadence, either way.
pub const CHECK_JITTER: Duration = Duration::from_secs(30 * 60);
/// Largest state file read.
pub const MAX_CHECKS_FILE_BYTES: u64 = 1024 * 1024;
/// Results older than this are dropped when the file is written.
const KEEP_RESULTS: f64 = 30.0 * 86400.0;
/// The most results kept (one per server: far more than anyone configures).
const MAX_RESULTS: usize = 10_000;

/// What a check found out about a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The server accepted the token.
    Ok,
    /// The server refuses the credentials, and one refresh did not help.
    NeedsSignIn { reason: String },
    /// The server wants a scope the token lacks (403 `insufficient_scope`).
    NeedsMoreAccess { scope: Option<String> },
    /// No usable answer (network, timeout, 5xx, no MCP endpoint): says
    /// nothing about the credentials.
    Unreachable { reason: String },
}

/// [`CheckOutcome`] without its details: `check` in `status --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Ok,
    NeedsSignIn,
    NeedsMoreAccess,
    Unreachable,
}

impl CheckOutcome {
    /// The outcome's kind.
    pub fn kind(&self) -> CheckKind {
        match self {
            Self::Ok => CheckKind::Ok,
            Self::NeedsSignIn { .. } => CheckKind::NeedsSignIn,
            Self::NeedsMoreAccess { .. } => CheckKind::NeedsMoreAccess,
            Self::Unreachable { .. } => CheckKind::Unreachable,
        }
    }
}

/// One server's check, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// When, epoch seconds.
    pub checked_at: f64,
    #[serde(flatten)]
    pub outcome: CheckOutcome,
    /// The expiry (epoch seconds, whole) of the access token the check used
    /// last: which tokens this result is about.
    pub token_expires_at: Option<i64>,
    /// The check refreshed the tokens (after a 401).
    #[serde(default)]
    pub refreshed: bool,
}

/// What one authenticated request showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Past the server's authorization (2xx, or a protocol-level refusal of
    /// our `initialize` that only an authorized request gets to see).
    Accepted,
    /// 401: the token is not (or no longer) valid.
    Unauthorized,
    /// 403 `insufficient_scope`, with the scope asked for.
    InsufficientScope(Option<String>),
    /// 403 without a scope challenge: access refused for this account.
    Forbidden,
    /// No answer worth judging the credentials by.
    Unreachable(String),
}

/// Judges an answer to the check request by its status and its
/// `WWW-Authenticate` values (pure; see the module docs).
pub fn classify<'a>(status: u16, www_authenticate: impl IntoIterator<Item = &'a str>) -> Probe {
    match status {
        200..=299 => Probe::Accepted,
        401 => Probe::Unauthorized,
        403 => match bearer_challenge(www_authenticate) {
            Some(c) if c.is_insufficient_scope() => Probe::InsufficientScope(c.scope),
            _ => Probe::Forbidden,
        },
        // Authorization comes before the protocol: a server that dislikes our
        // `initialize` (a stateless-only server, a version it does not
        // speak) has accepted the token.
        400 | 405 | 406 | 409 | 415 | 422 => Probe::Accepted,
        404 | 410 => Probe::Unreachable(format!("no MCP endpoint at this URL (HTTP {status})")),
        429 => Probe::Unreachable("the server is busy (HTTP 429)".to_owned()),
        300..=399 => Probe::Unreachable(format!("the server redirects elsewhere (HTTP {status})")),
        500..=599 => Probe::Unreachable(format!("the server has a problem (HTTP {status})")),
        other => Probe::Unreachable(format!("unexpected answer (HTTP {other})")),
    }
}

/// The scope a step-up sign-in asks for: what is granted now plus what the
/// server requires, each once, in order.
pub fn step_up_scope(current: Option<&str>, required: Option<&str>) -> Option<String> {
    let mut scopes: Vec<&str> = Vec::new();
    for s in current.into_iter().chain(required).flat_map(str::split_whitespace) {
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

/// When `server_id` is next due for a background check: [`CHECK_INTERVAL`]
/// after its last check, moved by a stable per-server jitter within
/// ±[`CHECK_JITTER`] (so many servers do not all fall due together); now
/// when it was never checked.
pub fn next_check_at(last_checked_at: Option<f64>, now: f64, server_id: &str) -> f64 {
    match last_checked_at {
        // A check "in the future" (a clock set back) counts as now.
        Some(last) => {
            let jitter = (crate::refresh::schedule::jitter_for(server_id) * 2.0 - 1.0) * CHECK_JITTER.as_secs_f64();
            last.min(now) + CHECK_INTERVAL.as_secs_f64() + jitter
        }
        None => now,
    }
}

/// The background rule over every server, as `(id, last check)`: which are
/// due now, and when to wake next. Servers falling due within
/// [`CHECK_JITTER`] of the earliest are checked in the same round, so a
/// machine is woken at most once per round, not once per server.
pub fn due_for_check<'a>(
    servers: impl IntoIterator<Item = (&'a str, Option<f64>)>,
    now: f64,
) -> (Vec<&'a str>, Option<f64>) {
    let window = CHECK_JITTER.as_secs_f64();
    let planned: Vec<(&str, f64)> = servers.into_iter().map(|(id, last)| (id, next_check_at(last, now, id))).collect();
    let due: Vec<&str> = planned.iter().filter(|(_, at)| *at <= now + window).map(|(id, _)| *id).collect();
    let next = planned.iter().map(|(_, at)| *at).filter(|at| *at > now + window).min_by(f64::total_cmp);
    (due, next)
}

/// Sends the check request: `initialize` with the token, nothing read but
/// the response head. An answer with a session id gets a best-effort
/// `DELETE` so the server can drop it.
#[tracing::instrument(skip_all, fields(url = %crate::view::status::redact_url(url)))]
pub async fn probe(http: &Http, url: &str, token: &SecretString) -> Probe {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcp-auth-tray", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let request = http
        .reqwest()
        .post(url)
        .bearer_auth(token.expose())
        .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
        .json(&body)
        .timeout(CHECK_TIMEOUT);
    let response = match tokio::time::timeout(CHECK_TIMEOUT, request.send()).await {
        Err(_) => return Probe::Unreachable(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Probe::Unreachable(unreachable_reason(url, &e)),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let challenges = challenge_values(response.headers());
    let session = response.headers().get("mcp-session-id").cloned();
    // The body is dropped unread (the connection closes with it).
    drop(response);
    let mut probe = classify(status, challenges.iter().map(String::as_str));
    if matches!(status, 404 | 405)
        && let Some(answer) = probe_event_stream(http, url, token).await
    {
        probe = answer;
    }
    if let Some(session) = session {
        let delete = http.reqwest().delete(url).bearer_auth(token.expose()).header("mcp-session-id", session);
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, delete.timeout(CONNECT_TIMEOUT).send()).await;
    }
    tracing::debug!(status, ?probe, "checked");
    probe
}

/// The check of a legacy HTTP+SSE server: a `GET` of its event stream with
/// the token, closed once its head arrives. `None` when the answer says
/// nothing about the token (no such stream either).
async fn probe_event_stream(http: &Http, url: &str, token: &SecretString) -> Option<Probe> {
    let request = http
        .reqwest()
        .get(url)
        .bearer_auth(token.expose())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .timeout(CHECK_TIMEOUT);
    let response = tokio::time::timeout(CHECK_TIMEOUT, request.send()).await.ok()?.ok()?;
    let status = response.status().as_u16();
    let event_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let challenges: Vec<String> = challenge_values(response.headers());
    // The stream is closed unread.
    drop(response);
    let answer = legacy_sse_answer(status, event_stream, challenges.iter().map(String::as_str));
    tracing::debug!(status, event_stream, ?answer, "checked the event stream");
    answer
}

/// How the `GET` of a legacy event stream judges the token (pure): a stream
/// opened is accepted, 401 and 403 as for the POST, anything else says
/// nothing (the POST's answer stands).
pub fn legacy_sse_answer<'a>(
    status: u16,
    event_stream: bool,
    www_authenticate: impl IntoIterator<Item = &'a str>,
) -> Option<Probe> {
    match status {
        200..=299 if event_stream => Some(Probe::Accepted),
        401 | 403 => Some(classify(status, www_authenticate)),
        _ => None,
    }
}

/// The `WWW-Authenticate` values of an answer, bounded.
fn challenge_values(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .take(16)
        .map(|v| v.chars().take(8192).collect())
        .collect()
}

/// Why the request got no answer, in words (the HTTP client's own terms).
fn unreachable_reason(url: &str, e: &reqwest::Error) -> String {
    let error = if e.is_timeout() {
        HttpError::Timeout { url: crate::view::status::redact_url(url), timeout: CHECK_TIMEOUT }
    } else {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        HttpError::Connect { url: crate::view::status::redact_url(url), reason }
    };
    error.to_string()
}

/// Runs checks and keeps their results. Cheap to clone.
#[derive(Clone)]
pub struct Checker {
    http: Http,
    vault: Vault,
    refresher: Refresher,
    store: Option<Arc<CheckStore>>,
    clock: Arc<dyn Fn() -> f64 + Send + Sync>,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").field("store", &self.store).finish_non_exhaustive()
    }
}

/// Why a check could not even start.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read the vault")]
    Vault(#[source] VaultError),
    #[error("cannot keep the check's result in {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Checker {
    /// Checks with the tokens of `vault`, refreshing through `refresher`
    /// (share the process's one, so a check's refresh is single-flight with
    /// every other). Results are not kept until [`Checker::with_store`].
    pub fn new(vault: Vault, refresher: Refresher) -> Result<Self, HttpError> {
        Ok(Self {
            http: Http::with_timeout(CHECK_TIMEOUT)?,
            vault,
            refresher,
            store: None,
            clock: Arc::new(crate::util::time::now_secs),
        })
    }

    /// The same checker reading the time from `clock` (epoch seconds; tests).
    pub fn with_clock(mut self, clock: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Keeps every result in `store`.
    pub fn with_store(mut self, store: CheckStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Checks `server`; `Ok(None)` when the vault holds nothing for it
    /// (not connected here: nothing to check). The result is kept.
    #[tracing::instrument(skip_all, fields(server = %server.name))]
    pub async fn check(&self, server: &OAuthServer) -> Result<Option<CheckResult>, CheckError> {
        let key = server.vault_key();
        let Some(token) = self.token(&key).await? else { return Ok(None) };
        let url = server.url.as_str();
        let mut refreshed = false;
        let mut expires_at = token.1;
        let mut probe = probe(&self.http, url, &token.0).await;
        if probe == Probe::Unauthorized {
            match self.refresher.refresh(&self.vault, server).await {
                Ok(_) => {
                    refreshed = true;
                    match self.token(&key).await? {
                        Some((token, at)) => {
                            expires_at = at;
                            probe = self::probe(&self.http, url, &token).await;
                        }
                        None => {
                            probe = Probe::Unauthorized;
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    let reason = error_text(&e);
                    probe =
                        Probe::Unreachable(format!("the server refused the token, and refreshing it failed: {reason}"))
                }
                Err(e) => {
                    let e = error_text(&e);
                    let outcome = CheckOutcome::NeedsSignIn { reason: format!("the server refused the token: {e}") };
                    return self.keep(&key, outcome, expires_at, false).map(Some);
                }
            }
        }
        let outcome = match probe {
            Probe::Accepted => CheckOutcome::Ok,
            Probe::Unauthorized if refreshed => CheckOutcome::NeedsSignIn {
                reason: "the server refuses the credentials, even freshly refreshed".to_owned(),
            },
            Probe::Unauthorized => {
                CheckOutcome::NeedsSignIn { reason: "the server refuses the credentials".to_owned() }
            }
            Probe::InsufficientScope(scope) => CheckOutcome::NeedsMoreAccess { scope },
            Probe::Forbidden => {
                CheckOutcome::NeedsSignIn { reason: "the server refuses access to this account (HTTP 403)".to_owned() }
            }
            Probe::Unreachable(reason) => CheckOutcome::Unreachable { reason },
        };
        self.keep(&key, outcome, expires_at, refreshed).map(Some)
    }

    /// Checks every server of `servers`, [`CHECK_CONCURRENCY`] at a time, in
    /// the order given. Servers not connected here answer `Ok(None)`.
    pub async fn check_all(
        &self,
        servers: &[OAuthServer],
    ) -> Vec<(OAuthServer, Result<Option<CheckResult>, CheckError>)> {
        futures_util::stream::iter(servers.iter().cloned())
            .map(|server| async move {
                let result = self.check(&server).await;
                (server, result)
            })
            .buffered(CHECK_CONCURRENCY)
            .collect()
            .await
    }

    /// One background round: checks the servers of `servers` that
    /// [`due_for_check`] says are due (by the last checks in the store; all
    /// of them without a store) and returns their results with when to run
    /// the next round (`None`: nothing to wait for). The service calls this
    /// at start and then at the returned time, never on a shorter loop.
    pub async fn check_due(&self, servers: &[OAuthServer]) -> CheckRound {
        let now = (self.clock)();
        let kept = match &self.store {
            Some(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.load()).await.unwrap_or_default()
            }
            None => Checks::default(),
        };
        let keys: Vec<VaultKey> = servers.iter().map(OAuthServer::vault_key).collect();
        let last: Vec<(&str, Option<f64>)> =
            keys.iter().map(|k| (k.account(), kept.get(k).map(|r| r.checked_at))).collect();
        let (due, next_at) = due_for_check(last.iter().copied(), now);
        let due: Vec<OAuthServer> =
            servers.iter().zip(&keys).filter(|(_, k)| due.contains(&k.account())).map(|(s, _)| s.clone()).collect();
        let checked = self.check_all(&due).await;
        CheckRound { checked, next_at }
    }

    /// The vault's access token for `key` and its expiry, if any.
    async fn token(&self, key: &VaultKey) -> Result<Option<(SecretString, Option<i64>)>, CheckError> {
        let (vault, key) = (self.vault.clone(), key.clone());
        let record = crate::vault::blocking(move || vault.load(&key)).await.map_err(CheckError::Vault)?;
        Ok(record.map(|r| (r.tokens.access_token, r.tokens.expires_at.map(|e| e.floor() as i64))))
    }

    fn keep(
        &self,
        key: &VaultKey,
        outcome: CheckOutcome,
        token_expires_at: Option<i64>,
        refreshed: bool,
    ) -> Result<CheckResult, CheckError> {
        let result = CheckResult { checked_at: (self.clock)(), outcome, token_expires_at, refreshed };
        tracing::info!(outcome = ?result.outcome.kind(), refreshed, "server checked");
        if let Some(store) = &self.store {
            store.record(key, &result).map_err(|source| CheckError::Store { path: store.path().to_owned(), source })?;
        }
        Ok(result)
    }
}

/// What [`Checker::check_due`] did.
#[derive(Debug)]
pub struct CheckRound {
    /// The servers that were due, with their results.
    pub checked: Vec<(OAuthServer, Result<Option<CheckResult>, CheckError>)>,
    /// When the next server falls due (epoch seconds), if any.
    pub next_at: Option<f64>,
}

/// Every kept result, by vault account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checks {
    #[serde(default)]
    pub servers: BTreeMap<String, CheckResult>,
}

impl Checks {
    /// The last check of the server `key` names.
    pub fn get(&self, key: &VaultKey) -> Option<&CheckResult> {
        self.servers.get(key.account())
    }
}

/// The file the results live in (JSON, private, written atomically under
/// a lock file, so the tray and the CLI never lose each other's results).
#[derive(Debug, Clone)]
pub struct CheckStore {
    path: PathBuf,
}

impl CheckStore {
    /// The results at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The per-user default: `<data dir>/mcp-auth-tray/checks.json`, the
    /// local one on Windows (beside the locks; results of this machine do
    /// not roam with the profile). The same folder elsewhere.
    pub fn default_location() -> Option<Self> {
        dirs::data_local_dir().map(|d| Self::at(d.join("mcp-auth-tray").join("checks.json")))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kept results; a missing, oversized or unreadable file reads as
    /// none (a check result is a hint, never worth failing a status for).
    pub fn load(&self) -> Checks {
        match self.file().read() {
            Ok(checks) => checks.unwrap_or_default(),
            Err(e) => {
                let e = error_text(&e);
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring an unreadable checks file");
                Checks::default()
            }
        }
    }

    fn file(&self) -> JsonFile<'_> {
        JsonFile::new(&self.path, MAX_CHECKS_FILE_BYTES)
    }

    /// Keeps `result` as the last check of `key` (blocking, briefly).
    pub fn record(&self, key: &VaultKey, result: &CheckResult) -> std::io::Result<()> {
        let file = self.file();
        let _lock = file.lock()?;
        let mut checks = self.load();
        checks.servers.insert(key.account().to_owned(), result.clone());
        let newest = result.checked_at;
        checks.servers.retain(|_, r| newest - r.checked_at < KEEP_RESULTS);
        while checks.servers.len() > MAX_RESULTS {
            let oldest =
                checks.servers.iter().min_by(|a, b| a.1.checked_at.total_cmp(&b.1.checked_at)).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => checks.servers.remove(&k),
                None => break,
            };
        }
        file.write(&checks)
    }
}

#[cfg(test)]
mod tests;

//! The one status model every front end renders.
//!
//! [`StatusReport::evaluate`] turns a [`Snapshot`] and the current time into a
//! row per server. Until the keychain vault exists, an OAuth server's state is
//! read from the token files the agent itself keeps, so what we show is what
//! the agent will find. Time is a parameter, never read here, so every rule
//! is a plain function with table tests.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::hermes::config::{AuthKind, ServerConfig, ServerEntry, SignInFlow};
use crate::hermes::layout::{AgentPaths, token_file_stem};
use crate::hermes::snapshot::{HomeSnapshot, Snapshot};
use crate::hermes::token_file::{TokenFileError, TokenFileSummary, read_token_file};
use crate::mcp::check::{CheckKind, CheckOutcome, CheckResult, Checks};
use crate::refresh::schedule::refresh_due_at;
use crate::util::text::error_text;
use crate::util::text::shorten;
use crate::util::time::epoch_secs;
use crate::vault::{CredentialRecord, VaultError, VaultKey};

/// Where a server stands, for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthState {
    /// OAuth server without tokens.
    NotConnected,
    /// Access token valid (until `expires_at`, when known).
    Connected,
    /// Access token still valid, but a refresh is due.
    Expiring,
    /// Access token expired; a refresh token can renew it.
    Expired,
    /// No usable credentials: the user must sign in again.
    NeedsReauth,
    /// The server wants a scope the tokens lack (a check's 403
    /// `insufficient_scope`): a sign-in asking for more access fixes it.
    NeedsMoreAccess,
    /// Something is broken (invalid entry, corrupt token file, ...).
    Error,
    /// Not an OAuth server (stdio, static headers, disabled, no auth).
    NotApplicable,
}

/// The auth kind as shown and serialised (`auth` in `status --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthLabel {
    Oauth,
    Headers,
    Stdio,
    None,
    Disabled,
    Invalid,
}

/// One server's row. The JSON form of this struct is the stable output of
/// `mcp-auth status --json`; add fields, never rename or remove them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    /// The profile the server belongs to (`null` for the default home).
    pub profile: Option<String>,
    pub name: String,
    /// Serialised with its secrets replaced ([`redact_url`]): a config may
    /// interpolate an API key into the query, and this output is for sharing.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: Option<String>,
    pub auth: AuthLabel,
    pub state: AuthState,
    /// Access token expiry, epoch seconds.
    pub expires_at: Option<i64>,
    /// Why, in words (never a secret).
    pub detail: Option<String>,
    /// The last refresh failure the vault noted (cleared by a success).
    pub last_error: Option<String>,
    /// How an OAuth server signs in (`oauth.flow`: `browser` or `device`);
    /// `None` for the others.
    pub flow: Option<SignInFlow>,
    /// When a refresh becomes due (epoch seconds); not serialised.
    #[serde(skip)]
    pub refresh_due_at: Option<f64>,
    /// The last check against the server, when it is about the current
    /// tokens (`checked_at`, `check`, `required_scope` in the JSON).
    #[serde(flatten)]
    pub last_check: CheckView,
}

/// A server's last check as the status shows it ([`StatusReport::apply_checks`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckView {
    /// When the server was last checked, epoch seconds.
    pub checked_at: Option<i64>,
    /// What the check found.
    pub check: Option<CheckKind>,
    /// The scope the server asked for (`needs_more_access`).
    pub required_scope: Option<String>,
}

/// A problem with a whole config file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigProblem {
    pub profile: Option<String>,
    pub message: String,
    /// The servers shown are the last good list, not the current file.
    pub stale: bool,
}

/// Every server's status, plus whole-file problems and hints.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    pub servers: Vec<ServerStatus>,
    pub problems: Vec<ConfigProblem>,
    /// Friendly notes (e.g. "no config.yaml at …").
    pub hints: Vec<String>,
    /// When this report was computed (epoch seconds).
    pub computed_at: f64,
}

/// Counts for a one-line summary and the tray icon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overview {
    pub connected: usize,
    pub needs_sign_in: usize,
    /// Signed in, but the server wants more scope.
    pub needs_more_access: usize,
    /// Signed in, but the last check got no answer.
    pub unreachable: usize,
    pub errors: usize,
    pub not_connected: usize,
}

impl Overview {
    /// Something needs the user (sign-in, more access, or an error).
    pub fn needs_attention(&self) -> bool {
        self.needs_sign_in + self.needs_more_access + self.errors > 0
    }

    /// "3 connected · 1 needs sign-in".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.connected > 0 {
            parts.push(format!("{} connected", self.connected));
        }
        if self.needs_sign_in > 0 {
            parts.push(format!("{} needs sign-in", self.needs_sign_in));
        }
        if self.needs_more_access > 0 {
            parts.push(format!("{} needs more access", self.needs_more_access));
        }
        if self.unreachable > 0 {
            parts.push(format!("{} unreachable", self.unreachable));
        }
        if self.not_connected > 0 {
            parts.push(format!("{} not connected", self.not_connected));
        }
        if self.errors > 0 {
            parts.push(format!("{} {}", self.errors, if self.errors == 1 { "error" } else { "errors" }));
        }
        if parts.is_empty() { "No OAuth servers".to_owned() } else { parts.join(" · ") }
    }
}

/// The note on servers whose tokens only the agent holds.
const AGENT_ONLY: &str = "tokens from the agent's own sign-in, not yet kept by mcp-auth-tray";

/// What the vault holds for one server (looked up by the caller: keychain
/// calls block, and the front ends decide where to make them).
#[derive(Debug, Clone, PartialEq)]
pub enum VaultView {
    /// The vault was not asked (status from the agent's files alone).
    NotConsulted,
    /// The keychain could not be asked.
    Unavailable(String),
    Missing,
    Present(TokenFileSummary),
    /// A record exists but cannot be read.
    Unreadable(String),
}

impl VaultView {
    /// The view of a vault lookup's result.
    pub fn of(result: Result<Option<CredentialRecord>, VaultError>) -> Self {
        match result {
            Ok(Some(r)) => Self::Present(TokenFileSummary {
                expires_at: r.tokens.expires_at,
                lifetime_secs: r.tokens.expires_in,
                has_refresh_token: r.tokens.refresh_token.is_some(),
                scope: r.tokens.scope,
                issuer: r.issuer,
                note: None,
                last_failure: r.last_error,
                client: Some(crate::hermes::client_identity::ClientIdentity::of(&r.client)),
            }),
            Ok(None) => Self::Missing,
            Err(VaultError::Unavailable(m)) => Self::Unavailable(m),
            Err(e) => Self::Unreadable(error_text(&e)),
        }
    }
}

impl StatusReport {
    /// Evaluates every server of `snapshot` at time `now` from the agent's
    /// files alone (no keychain access).
    pub fn evaluate(snapshot: &Snapshot, now: SystemTime) -> Self {
        Self::evaluate_with(snapshot, now, &|_| VaultView::NotConsulted)
    }

    /// Evaluates with the vault as the source of truth: `vault` answers for
    /// each OAuth server's key; the agent's files say whether the agent
    /// still has the server (it may have signed out).
    pub fn evaluate_with(snapshot: &Snapshot, now: SystemTime, vault: &dyn Fn(&VaultKey) -> VaultView) -> Self {
        let now_secs = epoch_secs(now);
        let mut report = StatusReport { computed_at: now_secs, ..Default::default() };
        for home in &snapshot.homes {
            evaluate_home(home, now_secs, vault, &mut report);
        }
        report
    }

    /// Counts by kind of state.
    pub fn overview(&self) -> Overview {
        let mut o = Overview::default();
        for s in &self.servers {
            match s.state {
                AuthState::Connected | AuthState::Expiring | AuthState::Expired if s.is_unreachable() => {
                    o.unreachable += 1;
                }
                AuthState::Connected | AuthState::Expiring | AuthState::Expired => o.connected += 1,
                AuthState::NeedsReauth => o.needs_sign_in += 1,
                AuthState::NeedsMoreAccess => o.needs_more_access += 1,
                AuthState::Error => o.errors += 1,
                AuthState::NotConnected => o.not_connected += 1,
                AuthState::NotApplicable => {}
            }
        }
        o.errors += self.problems.len();
        o
    }

    /// Lays the last checks over the expiry-derived states (see
    /// [`apply_check`]); `checks` as kept by [`crate::CheckStore`].
    pub fn apply_checks(&mut self, checks: &Checks) {
        for s in &mut self.servers {
            if s.auth != AuthLabel::Oauth {
                continue;
            }
            let key = VaultKey::new(s.profile.as_deref(), &s.name, s.url.as_deref().unwrap_or_default());
            if let Some(check) = checks.get(&key) {
                apply_check(s, check);
            }
        }
    }

    /// The next moment this report would read differently by time alone (a
    /// state change, or the "time left" text of a row): front ends set one
    /// timer for it instead of polling.
    pub fn next_change_at(&self) -> Option<f64> {
        let now = self.computed_at;
        self.servers
            .iter()
            .flat_map(|s| {
                let expires = s.expires_at.map(|e| e as f64);
                let label = expires.and_then(|e| next_time_left_change(e - now).map(|d| now + d));
                [s.refresh_due_at, expires, label]
            })
            .flatten()
            .filter(|t| *t > now)
            .min_by(f64::total_cmp)
    }
}

fn evaluate_home(home: &HomeSnapshot, now: f64, vault: &dyn Fn(&VaultKey) -> VaultView, report: &mut StatusReport) {
    let profile = home.home.profile.clone();
    if let Some(error) = &home.error {
        report.problems.push(ConfigProblem {
            profile: profile.clone(),
            message: error_text(&error),
            stale: !home.servers.is_empty(),
        });
    }
    if home.config_missing && home.home.profile.is_none() {
        report.hints.push(format!(
            "no agent config at {}: add servers under `mcp_servers:` there, or point --hermes-home / HERMES_HOME at your agent's home",
            home.home.config_path().display()
        ));
    }
    // Stems shared by several OAuth servers: the agent would mix their tokens.
    let mut stems: HashMap<String, Vec<&str>> = HashMap::new();
    for entry in &home.servers {
        if let Ok(ServerConfig { auth: AuthKind::OAuth(_), enabled: true, .. }) = &entry.config {
            stems.entry(token_file_stem(&entry.name)).or_default().push(&entry.name);
        }
    }
    let tokens_dir = home.home.tokens_dir();
    for entry in &home.servers {
        let mut status = evaluate_entry(entry, home.home.profile.as_deref(), &tokens_dir, now, vault);
        let clash = stems.get(&token_file_stem(&entry.name)).filter(|names| names.len() > 1);
        if let (Some(names), AuthLabel::Oauth) = (clash, status.auth) {
            let others: Vec<&str> = names.iter().copied().filter(|n| *n != entry.name).collect();
            status.state = AuthState::Error;
            status.detail = Some(format!(
                "its token file name `{}.json` is shared with `{}`; rename one of them",
                token_file_stem(&entry.name),
                others.join("`, `")
            ));
            status.expires_at = None;
            status.refresh_due_at = None;
        }
        status.profile = profile.clone();
        report.servers.push(status);
    }
}

fn evaluate_entry(
    entry: &ServerEntry,
    profile: Option<&str>,
    tokens_dir: &std::path::Path,
    now: f64,
    vault: &dyn Fn(&VaultKey) -> VaultView,
) -> ServerStatus {
    let mut status = ServerStatus {
        profile: None,
        name: entry.name.clone(),
        url: None,
        auth: AuthLabel::Invalid,
        state: AuthState::Error,
        expires_at: None,
        detail: None,
        refresh_due_at: None,
        last_error: None,
        flow: None,
        last_check: CheckView::default(),
    };
    let config = match &entry.config {
        Ok(config) => config,
        Err(reason) => {
            status.detail = Some(format!("invalid entry (config.yaml line {}): {reason}", entry.line));
            return status;
        }
    };
    status.url = config.url.clone();
    let warnings = (!config.warnings.is_empty()).then(|| config.warnings.join("; "));
    if !config.enabled {
        status.auth = AuthLabel::Disabled;
        status.state = AuthState::NotApplicable;
        status.detail = Some("disabled in config (`enabled: false`)".to_owned());
        return status;
    }
    status.state = AuthState::NotApplicable;
    status.detail = warnings.clone();
    match &config.auth {
        AuthKind::Stdio => status.auth = AuthLabel::Stdio,
        AuthKind::None => status.auth = AuthLabel::None,
        AuthKind::Headers(h) => {
            status.auth = AuthLabel::Headers;
            let missing: Vec<String> = h
                .headers
                .iter()
                .flat_map(|(header, refs)| {
                    refs.iter().filter(|r| !r.is_set).map(move |r| format!("{header} needs ${{{}}}", r.name))
                })
                .collect();
            let used: Vec<String> =
                h.headers.iter().flat_map(|(_, refs)| refs.iter().map(|r| format!("${{{}}}", r.name))).collect();
            if !missing.is_empty() {
                status.state = AuthState::Error;
                status.detail = Some(format!("{}, which is not set (environment or .env)", missing.join("; ")));
            } else if !used.is_empty() && status.detail.is_none() {
                status.detail = Some(format!("uses {} (set)", used.join(", ")));
            }
        }
        AuthKind::OAuth(oauth) => {
            status.auth = AuthLabel::Oauth;
            status.flow = Some(oauth.flow);
            status.detail = None;
            let paths = AgentPaths::new(tokens_dir, &entry.name);
            let file = read_token_file(&paths.tokens);
            let view = vault(&VaultKey::new(profile, &entry.name, config.url.as_deref().unwrap_or_default()));
            match (view, file) {
                // Whatever the agent's file says: it deletes it on its next start.
                (VaultView::Present(ours), _) if ours.client.as_ref().is_some_and(|c| c.superseded_by(oauth)) => {
                    status.state = AuthState::NeedsReauth;
                    status.detail = Some(crate::hermes::client_identity::SUPERSEDED.to_owned());
                }
                (VaultView::Present(ours), Ok(Some(_)) | Err(_)) => apply_tokens(&mut status, &ours, now),
                // A grant used without the agent's files (through `mcp-auth
                // proxy`) that needs a new sign-in says so, for the tray's notice.
                (VaultView::Present(ours), Ok(None)) if ours.last_failure.as_ref().is_some_and(|f| f.needs_reauth) => {
                    apply_tokens(&mut status, &ours, now);
                }
                (VaultView::Present(_), Ok(None)) => {
                    status.state = AuthState::NotConnected;
                    status.detail = Some(
                        "the agent signed out of this server (it removed its token files); connect to sign in again"
                            .to_owned(),
                    );
                }
                (view, file) => {
                    match file {
                        Ok(None) => status.state = AuthState::NotConnected,
                        Ok(Some(summary)) => apply_tokens(&mut status, &summary, now),
                        Err(e) => {
                            status.state = AuthState::Error;
                            status.detail = Some(token_file_problem(&e));
                        }
                    }
                    let note = match view {
                        VaultView::Unavailable(m) => Some(format!("keychain unavailable: {m}")),
                        VaultView::Unreadable(m) => Some(m),
                        VaultView::Missing
                            if matches!(
                                status.state,
                                AuthState::Connected | AuthState::Expiring | AuthState::Expired
                            ) =>
                        {
                            Some(AGENT_ONLY.to_owned())
                        }
                        _ => None,
                    };
                    if let Some(note) = note {
                        status.detail = Some(match status.detail.take() {
                            Some(d) => format!("{d}; {note}"),
                            None => note,
                        });
                    }
                }
            }
            if let (Some(w), false) = (warnings, status.state == AuthState::Error) {
                status.detail = Some(match status.detail.take() {
                    Some(d) => format!("{d}; {w}"),
                    None => w,
                });
            }
        }
    }
    status
}

/// The reason first (menus cut long lines), then the path.
fn token_file_problem(e: &TokenFileError) -> String {
    match e {
        TokenFileError::Corrupt { path, reason } => {
            format!("token file is corrupt: {reason}; sign in again to replace it ({})", path.display())
        }
        TokenFileError::TooLarge { path, limit } => {
            format!("token file is larger than {limit} bytes; sign in again to replace it ({})", path.display())
        }
        TokenFileError::Io { path, source } => format!("token file unreadable: {source} ({})", path.display()),
    }
}

pub(crate) fn apply_tokens(status: &mut ServerStatus, summary: &TokenFileSummary, now: f64) {
    status.detail = summary.note.clone();
    let Some(expires_at) = summary.expires_at else {
        status.state = AuthState::Connected;
        return;
    };
    status.expires_at = Some(expires_at.floor() as i64);
    let due = refresh_due_at(expires_at, summary.lifetime_secs);
    if now < due {
        status.state = AuthState::Connected;
        status.refresh_due_at = Some(due);
    } else if now < expires_at {
        status.state = AuthState::Expiring;
    } else if summary.has_refresh_token {
        status.state = AuthState::Expired;
    } else {
        status.state = AuthState::NeedsReauth;
        status.detail = Some("the access token expired and there is no refresh token".to_owned());
    }
    if let Some(failure) = &summary.last_failure {
        status.last_error = Some(failure.message.clone());
        if failure.needs_reauth {
            status.state = AuthState::NeedsReauth;
            status.detail = Some(failure.message.clone());
        }
    }
}

/// How a last check changes a row (pure). A check counts only while it is
/// about the tokens shown (same access-token expiry: a refresh or a new
/// sign-in since makes it history); it changes the state only over one that
/// says the credentials work (connected, refresh due, expired with a refresh
/// token): "needs sign-in" and errors known from the files stay.
/// "Unreachable" leaves the state as it is (it is no auth state) and adds a
/// note; "needs sign-in" and "needs more access" replace it.
pub fn apply_check(status: &mut ServerStatus, check: &CheckResult) {
    if check.token_expires_at != status.expires_at
        || matches!(status.state, AuthState::NotConnected | AuthState::NotApplicable)
    {
        return;
    }
    status.last_check = CheckView {
        checked_at: Some(check.checked_at.floor() as i64),
        check: Some(check.outcome.kind()),
        required_scope: match &check.outcome {
            CheckOutcome::NeedsMoreAccess { scope } => scope.clone(),
            _ => None,
        },
    };
    if !matches!(status.state, AuthState::Connected | AuthState::Expiring | AuthState::Expired) {
        return;
    }
    match &check.outcome {
        CheckOutcome::Ok => {}
        CheckOutcome::NeedsSignIn { reason } => {
            status.state = AuthState::NeedsReauth;
            status.detail = Some(format!("{reason}; sign in again"));
            status.refresh_due_at = None;
        }
        CheckOutcome::NeedsMoreAccess { scope } => {
            status.state = AuthState::NeedsMoreAccess;
            status.detail = Some(match scope {
                Some(scope) => format!("the server now asks for more access (scope `{scope}`); reconnect to grant it"),
                None => "the server now asks for more access; reconnect to grant it".to_owned(),
            });
            status.refresh_due_at = None;
        }
        CheckOutcome::Unreachable { reason } => {
            let note = format!("unreachable when last checked: {reason}");
            status.detail = Some(match status.detail.take() {
                Some(d) => format!("{note}; {d}"),
                None => note,
            });
        }
    }
}

impl ServerStatus {
    /// Signed in, but the last check got no answer (the credentials may
    /// be fine).
    pub fn is_unreachable(&self) -> bool {
        self.last_check.check == Some(CheckKind::Unreachable)
            && matches!(self.state, AuthState::Connected | AuthState::Expiring | AuthState::Expired)
    }
}

/// "52 min", "3 h", "2 d", "3 y", "<1 min": coarse, so a label changes
/// rarely; anything beyond a century (an expiry in milliseconds, 1e20) reads
/// as "> 100 y".
pub fn time_left(secs: f64) -> String {
    let s = if secs.is_nan() { 0.0 } else { secs.max(0.0) };
    if s >= MAX_SHOWN_YEARS * YEAR {
        format!("> {MAX_SHOWN_YEARS} y")
    } else if s >= 2.0 * YEAR {
        format!("{} y", (s / YEAR).floor())
    } else if s >= 2.0 * DAY {
        format!("{} d", (s / DAY).floor())
    } else if s >= 2.0 * HOUR {
        format!("{} h", (s / HOUR).floor())
    } else if s >= MINUTE {
        format!("{} min", (s / MINUTE).floor())
    } else {
        "<1 min".to_owned()
    }
}

/// Beyond this much time left, a label says "Connected" alone: an expiry a
/// year away tells the user nothing a glance needs.
pub const EXPIRY_HORIZON_SECS: f64 = YEAR;

const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86400.0;
/// A year of 365 days (labels are coarse).
const YEAR: f64 = 365.0 * DAY;
/// Beyond this many years `time_left` stops counting.
const MAX_SHOWN_YEARS: f64 = 100.0;

/// Seconds until [`time_left`] of a shrinking `remaining` reads differently.
fn next_time_left_change(remaining: f64) -> Option<f64> {
    if remaining.is_nan() || remaining <= 0.0 {
        return None;
    }
    if remaining >= MAX_SHOWN_YEARS * YEAR {
        return remaining.is_finite().then_some(remaining - MAX_SHOWN_YEARS * YEAR + 0.001);
    }
    let unit = if remaining >= 2.0 * YEAR {
        YEAR
    } else if remaining >= 2.0 * DAY {
        DAY
    } else if remaining >= 2.0 * HOUR {
        HOUR
    } else if remaining >= MINUTE {
        MINUTE
    } else {
        return None; // the expiry itself is the next change
    };
    let into_unit = remaining % unit;
    Some(if into_unit > 0.0 { into_unit } else { unit } + 0.001)
}

/// What replaces a secret part of a URL.
pub const REDACTED: &str = "[redacted]";

/// `url` safe to show and log: the value of every query parameter, the
/// fragment and a userinfo password replaced by [`REDACTED`] (configs
/// interpolate API keys into URLs: `?api_key=${KEY}`). Keys, host and path
/// stay, so the server is still recognisable. Works on text, so a URL that
/// does not parse is redacted too.
pub fn redact_url(url: &str) -> String {
    let (url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, (!f.is_empty()).then_some(f)),
        None => (url, None),
    };
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !value.is_empty() => format!("{key}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push('#');
        out.push_str(REDACTED);
    }
    out
}

/// `scheme://user:password@host/…` with the password replaced.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else { return base.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { format!("{user}:{REDACTED}") } else { userinfo.to_owned() };
            format!("{scheme}://{hidden}@{host}{path}")
        }
        None => base.to_owned(),
    }
}

fn serialize_redacted_url<S: serde::Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&redact_url(url)),
        None => serializer.serialize_none(),
    }
}

/// One tray-menu line: "● name — Connected · 52 min".
pub fn menu_line(s: &ServerStatus, now: f64) -> String {
    let left = s.expires_at.map(|e| e as f64 - now).filter(|l| *l < EXPIRY_HORIZON_SECS).map(time_left);
    let (glyph, text) = match s.state {
        AuthState::Connected | AuthState::Expiring | AuthState::Expired if s.is_unreachable() => {
            ("⊘", "Unreachable".to_owned())
        }
        AuthState::Connected => (
            "●",
            match left {
                Some(l) => format!("Connected · {l}"),
                None => "Connected".to_owned(),
            },
        ),
        AuthState::Expiring => (
            "◐",
            match left {
                Some(l) => format!("Refresh due · {l}"),
                None => "Refresh due".to_owned(),
            },
        ),
        AuthState::Expired => ("◌", "Expired, can refresh".to_owned()),
        AuthState::NotConnected => ("○", "Not connected".to_owned()),
        AuthState::NeedsReauth => ("⚠", "Needs sign-in".to_owned()),
        AuthState::NeedsMoreAccess => ("⚠", "Needs more access".to_owned()),
        AuthState::Error => ("✕", format!("Error: {}", shorten(s.detail.as_deref().unwrap_or("unknown"), 60))),
        AuthState::NotApplicable => (
            "·",
            match s.auth {
                AuthLabel::Stdio => "Local command".to_owned(),
                AuthLabel::Headers => "Static headers".to_owned(),
                AuthLabel::Disabled => "Disabled".to_owned(),
                _ => "No sign-in needed".to_owned(),
            },
        ),
    };
    format!("{glyph} {} — {text}", s.name)
}

#[cfg(test)]
mod tests;

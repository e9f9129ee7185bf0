//! Which grant serves a server URL: one per URL and authorization server,
//! shared by every client that names that URL (Hermes' export included).
//!
//! Decision: a **lookup**, not a re-keying of the vault. Records stay keyed
//! as today (`<profile>/<name>#<url hash>`, see [`crate::vault::VaultKey`]),
//! so Hermes profiles and every existing record keep working untouched and
//! nothing needs migrating. A URL (or a name) is mapped to the record that
//! already holds its grant:
//! 1. A name is the agent's server of that name (default home first, as
//!    `mcp-auth connect` finds it), else an entry of our own list
//!    ([`super::own`]), whose URL is then looked up as in 2.
//! 2. A URL is compared by [`normalize_url`] with every OAuth server of every
//!    Hermes home (default home first, then profiles), then with our list.
//!    The first candidate whose vault record exists wins, so a grant made
//!    through any of them serves them all; with none signed in, the first
//!    candidate is where a new sign-in goes.
//! 3. A URL named nowhere gets a server of its own (source [`GrantSource::Url`]),
//!    keyed under [`OWN_PROFILE`] by its host.
//!
//! The authorization server is part of the identity through the record: a
//! record names the issuer its tokens and registration belong to, and the
//! refresh and sign-in code never send them to another one (see
//! [`crate::sign_in::connect`]). Servers of our list and bare URLs are keyed under
//! [`OWN_PROFILE`], which no Hermes profile id can spell (`+` is not allowed),
//! and have nothing exported to disk ([`NoExport`]): their tokens live only
//! in the keychain.

use std::path::Path;

use crate::hermes::export::{ExportError, ExportTarget, Exporter};
use crate::hermes::home::Home;
use crate::hermes::snapshot::Snapshot;
use crate::sign_in::connect::{ConnectError, OAuthServer, find_oauth_server, oauth_servers};
use crate::vault::{CredentialRecord, Vault, VaultError};

use super::own::OwnList;

/// The vault "profile" of servers that are not the agent's.
pub const OWN_PROFILE: &str = "+mcp-auth";

/// Where a grant's server was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantSource {
    /// A server of a Hermes home (exported to the agent as today).
    Hermes,
    /// An entry of our own list (`mcp-auth add`).
    OwnList,
    /// A URL named in no list.
    Url,
}

/// A server whose vault record holds (or will hold) the grant for a URL.
#[derive(Debug, Clone)]
pub struct GrantServer {
    pub server: OAuthServer,
    pub source: GrantSource,
}

impl GrantServer {
    /// Whether a sign-in or refresh hands the tokens to the agent's files.
    pub fn exports_to_agent(&self) -> bool {
        self.source == GrantSource::Hermes
    }

    /// `profile/name` for people (`name` in the default home, `name` for ours).
    pub fn label(&self) -> String {
        match (&self.source, &self.server.home.profile) {
            (GrantSource::Hermes, Some(p)) => format!("{p}/{}", self.server.name),
            _ => self.server.name.clone(),
        }
    }
}

/// Why no server could be found for a name or URL.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error(
        "no server `{target}` in the agent's config or our list (add it with `mcp-auth add {target} <url>`, or give its URL)"
    )]
    NotFound { target: String },
    #[error("`{target}` is not an http(s) server URL")]
    BadUrl { target: String },
    #[error(transparent)]
    Config(#[from] ConnectError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The form two URLs are compared in: the parsed URL (scheme and host
/// lower-case, default port dropped, `.` segments resolved) without user
/// info, fragment, or a trailing `/` on a non-root path.
pub fn normalize_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    if u.query() == Some("") {
        u.set_query(None);
    }
    let path = u.path().to_owned();
    if path.len() > 1 && path.ends_with('/') {
        u.set_path(path.trim_end_matches('/'));
    }
    u.to_string()
}

/// [`normalize_url`] of a text, if it is an http(s) URL.
pub fn normalize_url_text(text: &str) -> Option<String> {
    url::Url::parse(text.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https")).map(|u| normalize_url(&u))
}

/// Every server that could hold the grant for `target` (a name or URL), best
/// first (see the module docs). Pure: no vault access. `own_home` is the
/// folder of our list (never written: nothing is exported for our servers).
pub fn grant_candidates(
    snapshot: &Snapshot,
    own: &OwnList,
    own_home: &Path,
    target: &str,
) -> Result<Vec<GrantServer>, GrantError> {
    let looks_like_url = target.contains("://");
    if !looks_like_url {
        match find_oauth_server(snapshot, target, None) {
            Ok(server) => {
                let url = normalize_url(&server.url);
                let others: Vec<_> = url_candidates(snapshot, own, own_home, &url)
                    .into_iter()
                    .filter(|c| {
                        !(c.source == GrantSource::Hermes
                            && c.server.name == server.name
                            && c.server.home == server.home)
                    })
                    .collect();
                let mut list = vec![GrantServer { server, source: GrantSource::Hermes }];
                list.extend(others);
                return Ok(list);
            }
            Err(ConnectError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let url = own.url_of(target).ok_or_else(|| GrantError::NotFound { target: target.to_owned() })?;
        let url = normalize_url_text(url).ok_or_else(|| GrantError::BadUrl { target: target.to_owned() })?;
        return Ok(url_candidates(snapshot, own, own_home, &url));
    }
    let parsed = url::Url::parse(target.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| GrantError::BadUrl { target: target.to_owned() })?;
    let url = normalize_url(&parsed);
    let mut list = url_candidates(snapshot, own, own_home, &url);
    if list.is_empty() {
        let name = parsed.host_str().unwrap_or("server").to_owned();
        list.push(GrantServer { server: own_server(own_home, &name, parsed), source: GrantSource::Url });
    }
    Ok(list)
}

fn url_candidates(snapshot: &Snapshot, own: &OwnList, own_home: &Path, url: &str) -> Vec<GrantServer> {
    let hermes = oauth_servers(snapshot)
        .into_iter()
        .filter(|s| normalize_url(&s.url) == url)
        .map(|server| GrantServer { server, source: GrantSource::Hermes });
    let ours = own.servers().filter_map(|(name, u)| {
        let parsed = url::Url::parse(u).ok()?;
        (normalize_url(&parsed) == url)
            .then(|| GrantServer { server: own_server(own_home, name, parsed), source: GrantSource::OwnList })
    });
    hermes.chain(ours).collect()
}

/// A server of ours (list entry or bare URL) as the sign-in code sees one.
fn own_server(own_home: &Path, name: &str, url: url::Url) -> OAuthServer {
    OAuthServer {
        home: Home { profile: Some(OWN_PROFILE.to_owned()), path: own_home.to_path_buf() },
        name: name.to_owned(),
        siblings: vec![name.to_owned()],
        url,
        oauth: crate::hermes::config::OAuthSettings {
            timeout_secs: crate::hermes::config::DEFAULT_OAUTH_TIMEOUT_SECS,
            ..Default::default()
        },
        step_up: None,
    }
}

/// The candidate that holds a grant, with its record; else the first
/// candidate (where a sign-in would go) and `None`. Blocking (keychain).
pub fn choose_grant(
    vault: &Vault,
    candidates: Vec<GrantServer>,
) -> Result<(GrantServer, Option<CredentialRecord>), GrantError> {
    let mut first = None;
    for candidate in candidates {
        match vault.load(&candidate.server.vault_key()) {
            Ok(Some(record)) => return Ok((candidate, Some(record))),
            Ok(None) | Err(VaultError::Corrupt { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        first.get_or_insert(candidate);
    }
    first.map(|c| (c, None)).ok_or_else(|| GrantError::NotFound { target: String::new() })
}

/// The server whose grant serves `target` (a server name or URL), and its
/// record when signed in: what `mcp-auth proxy` and `mcp-auth headers` use.
/// Blocking (keychain): call on `spawn_blocking`. Refresh and sign in
/// through [`GrantServer::server`] as for any configured server, with
/// [`exporter_for`] as the exporter.
pub fn find_grant(
    snapshot: &Snapshot,
    own: &OwnList,
    own_home: &Path,
    vault: &Vault,
    target: &str,
) -> Result<(GrantServer, Option<CredentialRecord>), GrantError> {
    let candidates = grant_candidates(snapshot, own, own_home, target)?;
    choose_grant(vault, candidates).map_err(|e| match e {
        GrantError::NotFound { .. } => GrantError::NotFound { target: target.to_owned() },
        other => other,
    })
}

/// The exporter for `grant`: the agent's files for a Hermes server, nothing
/// at all for ours (their tokens never touch the disk).
pub fn exporter_for(grant: &GrantServer) -> Box<dyn Exporter> {
    if grant.exports_to_agent() { Box::new(crate::hermes::export::HermesExporter) } else { Box::new(NoExport) }
}

/// Whether `profile` is the pseudo-profile of our grants ([`OWN_PROFILE`]).
pub fn is_own_profile(profile: Option<&str>) -> bool {
    profile == Some(OWN_PROFILE)
}

/// Whether `home` is the pseudo-home of our grants.
pub fn is_own_home(home: &Home) -> bool {
    is_own_profile(home.profile.as_deref())
}

/// The exporter of a process that serves every kind of grant (the tray,
/// the daemon): `inner` for the agent's servers, nothing at all for ours,
/// decided per server by its home (the same rule as [`exporter_for`]).
#[derive(Debug, Clone)]
pub struct AgentServersOnly(pub std::sync::Arc<dyn Exporter>);

impl AgentServersOnly {
    fn exporter(&self, target: &ExportTarget) -> &dyn Exporter {
        if is_own_home(&target.home) { &NoExport } else { self.0.as_ref() }
    }
}

impl Exporter for AgentServersOnly {
    fn check(&self, target: &ExportTarget) -> Result<(), ExportError> {
        self.exporter(target).check(target)
    }
    fn export(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<(), ExportError> {
        self.exporter(target).export(target, record)
    }
    fn update_tokens(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<bool, ExportError> {
        self.exporter(target).update_tokens(target, record)
    }
    fn remove(&self, target: &ExportTarget) -> Result<(), ExportError> {
        self.exporter(target).remove(target)
    }
    fn agent_tokens(&self, target: &ExportTarget) -> Option<crate::hermes::files::TokenRecord> {
        self.exporter(target).agent_tokens(target)
    }
    fn agent_registration(
        &self,
        target: &ExportTarget,
    ) -> Option<(crate::oauth::client::ClientRecord, Option<serde_json::Value>)> {
        self.exporter(target).agent_registration(target)
    }
}

/// An exporter that writes nothing: for servers used only through us.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExport;

impl Exporter for NoExport {
    fn check(&self, _: &ExportTarget) -> Result<(), ExportError> {
        Ok(())
    }
    fn export(&self, _: &ExportTarget, _: &CredentialRecord) -> Result<(), ExportError> {
        Ok(())
    }
    fn update_tokens(&self, _: &ExportTarget, _: &CredentialRecord) -> Result<bool, ExportError> {
        Ok(false)
    }
    fn remove(&self, _: &ExportTarget) -> Result<(), ExportError> {
        Ok(())
    }
    fn agent_tokens(&self, _: &ExportTarget) -> Option<crate::hermes::files::TokenRecord> {
        None
    }
    fn agent_registration(
        &self,
        _: &ExportTarget,
    ) -> Option<(crate::oauth::client::ClientRecord, Option<serde_json::Value>)> {
        None
    }
}

#[cfg(test)]
mod tests;

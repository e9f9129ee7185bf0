//! "Connect": sign in to one configured server, keep the result in the vault,
//! and hand it to the agent; shared by the CLI and the tray.
//!
//! A kept registration (vault record, else the agent's `<stem>.client.json`
//! with the `issuer` of `<stem>.meta.json`) is reused only for the same
//! issuer and redirect URI. The vault record and the agent's files are
//! replaced only after the new tokens are in hand, so a failed or cancelled
//! sign-in leaves the previous credentials untouched. The vault is written
//! first: the keychain is the copy we trust. Storing a sign-in's result and
//! disconnecting take the server's vault lock, so they serialise with a
//! refresh of the same server in flight (see [`crate::refresh::transaction`]).

use crate::hermes::config::{AuthKind, OAuthSettings, ServerConfig, ServerEntry};
use crate::hermes::export::{ExportError, ExportTarget, Exporter};
use crate::hermes::files::{AgentFilesError, read_client, read_json};
use crate::hermes::home::Home;
use crate::hermes::layout::AgentPaths;
use crate::hermes::snapshot::{HomeSnapshot, Snapshot};
use crate::oauth::client::ClientRecord;
use crate::oauth::engine::{Engine, EngineError, Step, Target};
use crate::vault::{CredentialRecord, StoredTokens, Vault, VaultError, VaultKey};
use crate::view::status::{AuthState, StatusReport};

/// The default `client_name`, as the agent registers itself.
pub const DEFAULT_CLIENT_NAME: &str = "Hermes Agent";

/// A configured OAuth server, found by name.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthServer {
    pub home: Home,
    pub name: String,
    /// Every server name in the same home.
    pub siblings: Vec<String>,
    pub url: url::Url,
    pub oauth: OAuthSettings,
    /// A step-up: the scope the server asked for in its last check, to
    /// ask for together with what is granted now ([`OAuthServer::with_step_up`]).
    pub step_up: Option<String>,
}

/// Why a server cannot be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no server `{name}` in the agent's config{}", profile.as_deref().map(|p| format!(" (profile {p})")).unwrap_or_default())]
    NotFound { name: String, profile: Option<String> },
    #[error("server `{name}` is in several profiles ({profiles}); choose one with --profile")]
    Ambiguous { name: String, profiles: String },
    #[error("server `{name}` cannot be used: {reason}")]
    Invalid { name: String, reason: String },
    #[error("server `{name}` does not use OAuth (`auth: oauth`); nothing to sign in to")]
    NotOAuth { name: String },
    #[error("server `{name}` is disabled in the config (`enabled: false`)")]
    Disabled { name: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("signed in, but cannot write the agent's files")]
    Files(#[from] AgentFilesError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("cannot hand tokens to the agent")]
    Export(#[from] ExportError),
    /// The config names another OAuth client than the one the grant belongs to.
    #[error("server `{name}`: {reason}")]
    ClientSuperseded { name: String, reason: &'static str },
}

/// Finds `name` in the default home or the given profile. Without a profile,
/// the default home wins; a name only in one profile is found there.
pub fn find_oauth_server(snapshot: &Snapshot, name: &str, profile: Option<&str>) -> Result<OAuthServer, ConnectError> {
    let candidates: Vec<_> = snapshot
        .homes
        .iter()
        .filter(|h| {
            profile.is_none_or(|p| h.home.profile.as_deref() == Some(p) || (p == "default" && h.home.profile.is_none()))
        })
        .flat_map(|h| h.servers.iter().filter(|e| e.name == name).map(move |e| (h, e)))
        .collect();
    let (home, entry) = match candidates.as_slice() {
        [] => return Err(ConnectError::NotFound { name: name.to_owned(), profile: profile.map(str::to_owned) }),
        [one] => *one,
        many => match many.iter().find(|(h, _)| h.home.profile.is_none()) {
            Some(default) => *default,
            None => {
                let profiles =
                    many.iter().map(|(h, _)| h.home.display_profile().to_owned()).collect::<Vec<_>>().join(", ");
                return Err(ConnectError::Ambiguous { name: name.to_owned(), profiles });
            }
        },
    };
    oauth_server_from(home, entry)
}

/// The usable OAuth server described by `entry` of `home`, or why not.
fn oauth_server_from(home: &HomeSnapshot, entry: &ServerEntry) -> Result<OAuthServer, ConnectError> {
    let name = entry.name.as_str();
    let config = entry
        .config
        .as_ref()
        .map_err(|reason| ConnectError::Invalid { name: name.to_owned(), reason: reason.clone() })?;
    let ServerConfig { url, enabled, auth, .. } = config;
    let AuthKind::OAuth(oauth) = auth else { return Err(ConnectError::NotOAuth { name: name.to_owned() }) };
    if !enabled {
        return Err(ConnectError::Disabled { name: name.to_owned() });
    }
    let url = url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .ok_or_else(|| ConnectError::Invalid { name: name.to_owned(), reason: "no usable url".to_owned() })?;
    let siblings = home.servers.iter().map(|e| e.name.clone()).collect();
    Ok(OAuthServer {
        home: home.home.clone(),
        name: name.to_owned(),
        siblings,
        url,
        oauth: oauth.clone(),
        step_up: None,
    })
}

/// Every enabled, valid OAuth server of every home of `snapshot`.
pub fn oauth_servers(snapshot: &Snapshot) -> Vec<OAuthServer> {
    snapshot.homes.iter().flat_map(|h| h.servers.iter().filter_map(move |e| oauth_server_from(h, e).ok())).collect()
}

/// The servers of `servers` whose row in `report` says the user must sign
/// in: never signed in here, no usable credentials left, or the server
/// wanting more access than was granted.
pub fn needing_sign_in(servers: Vec<OAuthServer>, report: &StatusReport) -> Vec<OAuthServer> {
    servers
        .into_iter()
        .filter(|s| {
            report.servers.iter().any(|row| {
                row.profile == s.home.profile
                    && row.name == s.name
                    && matches!(
                        row.state,
                        AuthState::NotConnected | AuthState::NeedsReauth | AuthState::NeedsMoreAccess
                    )
            })
        })
        .collect()
}

impl OAuthServer {
    /// The same server, signing in for `required` on top of the scope
    /// granted now (the one-click "needs more access" step).
    pub fn with_step_up(mut self, required: Option<String>) -> Self {
        self.step_up = required.filter(|s| !s.trim().is_empty());
        self
    }

    /// The engine's view of this server.
    pub fn target(&self) -> Target {
        Target {
            name: self.name.clone(),
            url: self.url.clone(),
            client_id: self.oauth.client_id.clone(),
            client_secret: self.oauth.client_secret.clone(),
            issuer: self.oauth.issuer.clone(),
            scope: self.oauth.scope.clone(),
            extra_scope: self.step_up.clone(),
            client_name: self.oauth.client_name.clone().unwrap_or_else(|| DEFAULT_CLIENT_NAME.to_owned()),
            client_metadata_url: self.oauth.client_metadata_url.clone(),
            omit_resource: self.oauth.omit_resource,
            timeout: std::time::Duration::from_secs_f64(self.oauth.timeout_secs),
            user_agent: self.oauth.user_agent.clone(),
            registration: crate::oauth::registration_options::RegistrationOptions {
                application_type: self.oauth.application_type.clone(),
                token_endpoint_auth_method: self.oauth.token_endpoint_auth_method.clone(),
            },
        }
    }

    /// How this server signs in unless told otherwise (`oauth.flow`).
    pub fn default_grant(&self) -> Grant {
        match self.oauth.flow {
            crate::hermes::config::SignInFlow::Browser => Grant::Browser,
            crate::hermes::config::SignInFlow::Device => Grant::Device,
        }
    }

    /// The agent's files for this server.
    pub fn paths(&self) -> AgentPaths {
        AgentPaths::new(&self.home.tokens_dir(), &self.name)
    }

    /// The agent's refresh fence for this server (`<stem>.json.refresh.lock`);
    /// `None` for our own grants, which the agent never sees (our processes
    /// are kept apart by the vault's per-server lock alone).
    pub fn agent_fence(&self) -> Option<std::path::PathBuf> {
        (!crate::clients::is_own_home(&self.home)).then(|| self.paths().refresh_lock)
    }

    /// This server as an exporter sees it.
    pub fn export_target(&self) -> ExportTarget {
        ExportTarget { home: self.home.clone(), name: self.name.clone(), siblings: self.siblings.clone() }
    }

    /// This server's key in the vault.
    pub fn vault_key(&self) -> VaultKey {
        VaultKey::new(self.home.profile.as_deref(), &self.name, self.url.as_str())
    }
}

/// What a successful connect did.
#[derive(Debug, Clone)]
pub struct Connected {
    pub paths: AgentPaths,
    /// Access-token expiry, epoch seconds.
    pub expires_at: Option<f64>,
    pub has_refresh_token: bool,
    pub scope: Option<String>,
    pub issuer: Option<String>,
    /// A new client registration was made (rather than one reused).
    pub registered: bool,
}

/// How the user signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grant {
    /// Authorization code + PKCE in a browser, back through the redirect URI.
    #[default]
    Browser,
    /// The device authorization grant (RFC 8628): a code entered on any device.
    Device,
}

/// Signs in to `server` through `engine` the way its config says
/// (`oauth.flow`; the browser unless `device`), redirecting to
/// `redirect_uri`, stores the result in `vault`, and writes the agent's files.
pub async fn connect(
    engine: &Engine,
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
    redirect_uri: &str,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<Connected, ConnectError> {
    connect_with(engine, vault, exporter, server, redirect_uri, server.default_grant(), progress).await
}

/// [`connect`] with a choice of grant. Whatever the grant, the tokens are
/// kept and handed to the agent by the same code.
#[tracing::instrument(skip_all, fields(server = %server.name, grant = ?grant), err)]
pub async fn connect_with(
    engine: &Engine,
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
    redirect_uri: &str,
    grant: Grant,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<Connected, ConnectError> {
    // Refuse before the browser step what could not be handed over afterwards.
    exporter.check(&server.export_target())?;
    let paths = server.paths();
    let key = server.vault_key();
    let kept = {
        match vault.load_async(&key).await {
            Ok(record) => record,
            // A damaged record is replaced by this sign-in.
            Err(VaultError::Corrupt { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    };
    let mut target = server.target();
    if server.step_up.is_some() {
        // The union of what is granted now and what the server asks for.
        let granted = kept.as_ref().and_then(|r| r.tokens.scope.as_deref());
        target.extra_scope = crate::mcp::check::step_up_scope(granted, server.step_up.as_deref());
        tracing::info!(scope = ?target.extra_scope, "asking for more access");
    }
    let stored = kept_registration(kept, &paths);
    let previous_client = stored.as_ref().map(|(c, _)| c.client_id.clone());
    let auth = match grant {
        Grant::Browser => engine.authorize(&target, redirect_uri, stored, progress).await?,
        Grant::Device => engine.authorize_device(&target, redirect_uri, stored, progress).await?,
    };
    // Legacy servers have no metadata document: leave the agent to its own fallback.
    let metadata = (!auth.discovered.legacy).then(|| auth.discovered.metadata_json.clone());
    let record = CredentialRecord {
        server: server.name.clone(),
        url: server.url.to_string(),
        profile: server.home.profile.clone(),
        tokens: StoredTokens::from_response(&auth.tokens),
        issuer: auth.discovered.issuer.clone(),
        client: auth.client.clone(),
        metadata,
        obtained_at: auth.tokens.received_at,
        last_error: None,
    };
    {
        // After any refresh in flight for the old credentials has finished,
        // so it cannot overwrite this sign-in.
        let _lock = vault.lock(&key).await?;
        vault.store_async(&key, &record).await?;
        exporter.export(&server.export_target(), &record)?;
    }
    tracing::info!(expires_at = ?record.tokens.expires_at, "connected; vault and agent files written");
    Ok(Connected {
        registered: previous_client.as_deref() != Some(auth.client.client_id.as_str()),
        paths,
        expires_at: record.tokens.expires_at,
        has_refresh_token: record.tokens.refresh_token.is_some(),
        scope: record.tokens.scope,
        issuer: record.issuer,
    })
}

/// The registration an earlier sign-in left, with the issuer it belongs to:
/// the vault's record, else the agent's `<stem>.client.json` and the issuer
/// of its `<stem>.meta.json`.
pub(crate) fn kept_registration(
    record: Option<CredentialRecord>,
    paths: &AgentPaths,
) -> Option<(ClientRecord, Option<String>)> {
    match record {
        Some(record) => Some((record.client, record.issuer)),
        None => {
            let issuer =
                read_json(&paths.meta).and_then(|m| m.get("issuer").and_then(|i| i.as_str()).map(str::to_owned));
            read_client(paths).map(|client| (client, issuer))
        }
    }
}

/// What a disconnect did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnected {
    /// The credentials were revoked at the authorization server (RFC 7009).
    pub revoked: bool,
    /// Why revocation did not happen, when it did not.
    pub revoke_note: Option<String>,
    /// There were credentials to remove.
    pub had_credentials: bool,
}

/// Signs out of `server`: revokes the refresh token (and the access token)
/// when the server has a revocation endpoint, then removes the vault record
/// and the agent's files. A failed revocation is reported, not fatal: the
/// local credentials go either way.
#[tracing::instrument(skip_all, fields(server = %server.name), err)]
pub async fn disconnect(
    http: &crate::oauth::http::Http,
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
) -> Result<Disconnected, ConnectError> {
    let key = server.vault_key();
    // Held to the end: a refresh in flight finishes first (and what it
    // stored is what gets revoked), and none can bring the record back.
    let _lock = vault.lock(&key).await?;
    let record = match vault.load_async(&key).await {
        Ok(r) => r,
        Err(VaultError::Corrupt { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let (revoked, revoke_note) = match &record {
        None => (false, Some("nothing stored to revoke".to_owned())),
        Some(record) => revoke_record(http, server, record).await,
    };
    vault.remove_async(&key).await?;
    exporter.remove(&server.export_target())?;
    Ok(Disconnected { revoked, revoke_note, had_credentials: record.is_some() })
}

async fn revoke_record(
    http: &crate::oauth::http::Http,
    server: &OAuthServer,
    record: &CredentialRecord,
) -> (bool, Option<String>) {
    let revocation_url = record.metadata.as_ref().and_then(|m| m.get("revocation_endpoint")).and_then(|v| v.as_str());
    let Some(revocation_url) = revocation_url else {
        return (false, Some("the server offers no revocation endpoint".to_owned()));
    };
    let endpoint = crate::oauth::tokens::TokenEndpoint {
        token_url: String::new(),
        revocation_url: Some(revocation_url.to_owned()),
        client: record.client.clone(),
        resource: (!server.oauth.omit_resource).then(|| server.url.to_string()),
    };
    // The refresh token first: revoking it usually ends the whole grant.
    let refresh = match &record.tokens.refresh_token {
        Some(refresh) => Some(endpoint.revoke(http, refresh, true).await),
        None => None,
    };
    let access = endpoint.revoke(http, &record.tokens.access_token, false).await;
    crate::oauth::tokens::revocation_outcome(refresh.as_ref(), &access)
}

/// How the agent's copy differs from the vault's, for `export --check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    InSync,
    /// The agent has no files for a server the vault holds.
    MissingInAgent,
    /// The agent's tokens differ (hand edit, or the agent refreshed and we did not sync yet).
    TokensDiffer,
    /// Nothing in the vault.
    NotInVault,
}

/// Compares the vault's record of `server` with what the agent holds.
pub async fn drift(vault: &Vault, exporter: &dyn Exporter, server: &OAuthServer) -> Result<Drift, ConnectError> {
    let key = server.vault_key();
    let record = vault.load_async(&key).await?;
    let Some(record) = record else { return Ok(Drift::NotInVault) };
    Ok(match exporter.agent_tokens(&server.export_target()) {
        None => Drift::MissingInAgent,
        Some(file) if file == record.agent_tokens() => Drift::InSync,
        Some(_) => Drift::TokensDiffer,
    })
}

/// Writes the vault's record of `server` to the agent (explicit re-export).
/// `Ok(false)` when the vault holds nothing for it.
pub async fn export_server(vault: &Vault, exporter: &dyn Exporter, server: &OAuthServer) -> Result<bool, ConnectError> {
    let key = server.vault_key();
    // Not while a refresh replaces the record: the file would get the old pair.
    let _lock = vault.lock(&key).await?;
    let record = vault.load_async(&key).await?;
    let Some(record) = record else { return Ok(false) };
    if let Some(reason) = crate::hermes::client_identity::superseded(&record.client, &server.oauth) {
        return Err(ConnectError::ClientSuperseded { name: server.name.clone(), reason });
    }
    exporter.export(&server.export_target(), &record)?;
    Ok(true)
}

//! Refreshing a server's tokens without ever losing one: a transaction.
//!
//! The agent refreshes on its own clock and rotates refresh tokens, so the
//! two of us must never spend the same refresh token. Each refresh of ours:
//! 1. is single-flight per server in this process (a second caller waiting
//!    on the first gets its result, not a second token request);
//! 2. takes the agent's file fence (`<stem>.json.refresh.lock`, 60 s, fail
//!    closed) for the rest;
//! 3. re-reads the vault and the agent's token file: if the agent already
//!    refreshed (its file is newer), we adopt its pair instead of refreshing;
//! 4. refreshes at the token endpoint (keeping our refresh token if the
//!    response omits one; on `invalid_grant`, re-reads the agent's file once
//!    more before declaring that a new sign-in is needed);
//! 5. persists: vault first, then the agent's token file — only if the agent
//!    still has one (a deleted file is the agent's decision to sign out);
//! 6. releases the fence.
//!
//! The work runs in its own task, so a caller that gives up cannot cancel it
//! between receiving a rotated token and persisting it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::agent_files::TokenRecord;
use crate::connect::OAuthServer;
use crate::export::{ExportError, Exporter};
use crate::fence::{DEFAULT_FENCE_TIMEOUT, FenceError, acquire_async};
use crate::oauth::http::Http;
use crate::oauth::tokens::{TokenEndpoint, TokenError, now};
use crate::vault::{CredentialRecord, RefreshFailure, StoredTokens, Vault, VaultError, VaultKey};

/// What a refresh did.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// New tokens from the token endpoint.
    Refreshed { expires_at: Option<f64> },
    /// The agent had refreshed already; its newer tokens were adopted.
    Adopted { expires_at: Option<f64> },
}

/// Why a refresh did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    #[error("not signed in (no credentials in the vault)")]
    NotConnected,
    /// Only a new sign-in helps.
    #[error("sign in again: {0}")]
    NeedsReauth(String),
    /// Worth retrying later (network, timeouts, the fence held too long).
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Failed(String),
}

impl From<VaultError> for RefreshError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Unavailable(_) => Self::Transient(e.to_string()),
            other => Self::Failed(other.to_string()),
        }
    }
}

impl From<FenceError> for RefreshError {
    fn from(e: FenceError) -> Self {
        Self::Transient(e.to_string())
    }
}

impl From<ExportError> for RefreshError {
    fn from(e: ExportError) -> Self {
        Self::Failed(e.to_string())
    }
}

#[derive(Default)]
struct Slot {
    lock: tokio::sync::Mutex<()>,
    /// Bumped by every finished transaction, with its result.
    last: Mutex<(u64, Option<Result<RefreshOutcome, RefreshError>>)>,
}

/// Runs refresh transactions; one per process is enough (cheap to clone).
#[derive(Clone)]
pub struct Refresher {
    http: Http,
    exporter: Arc<dyn Exporter>,
    fence_timeout: Duration,
    slots: Arc<Mutex<HashMap<VaultKey, Arc<Slot>>>>,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher").field("fence_timeout", &self.fence_timeout).finish_non_exhaustive()
    }
}

impl Refresher {
    /// Refreshes through `http`, handing results to the agent through `exporter`.
    pub fn new(http: Http, exporter: Arc<dyn Exporter>) -> Self {
        Self { http, exporter, fence_timeout: DEFAULT_FENCE_TIMEOUT, slots: Arc::default() }
    }

    /// The same refresher waiting at most `timeout` for the agent's fence.
    pub fn with_fence_timeout(mut self, timeout: Duration) -> Self {
        self.fence_timeout = timeout;
        self
    }

    fn slot(&self, key: VaultKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(key).or_default().clone()
    }

    /// Takes what the agent wrote into the vault when it is newer (the agent
    /// refreshed, or signed in by itself), without any network request.
    /// Serialised with this server's refreshes.
    #[tracing::instrument(skip_all, fields(server = %server.name), err)]
    pub async fn sync(&self, vault: &Vault, server: &OAuthServer) -> Result<SyncOutcome, RefreshError> {
        let slot = self.slot(server.vault_key());
        let _turn = slot.lock.lock().await;
        let (vault, server, exporter) = (vault.clone(), server.clone(), self.exporter.clone());
        tokio::spawn(async move { sync_once(&vault, exporter.as_ref(), &server).await })
            .await
            .unwrap_or_else(|e| Err(RefreshError::Failed(format!("sync task failed: {e}"))))
    }

    /// Refreshes `server` now (see the module docs for the steps).
    #[tracing::instrument(skip_all, fields(server = %server.name), err)]
    pub async fn refresh(&self, vault: &Vault, server: &OAuthServer) -> Result<RefreshOutcome, RefreshError> {
        let slot = self.slot(server.vault_key());
        let seen = slot.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0;
        let _turn = slot.lock.lock().await;
        {
            let last = slot.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.0 != seen
                && let Some(result) = &last.1
            {
                // Someone refreshed while we waited: theirs is ours.
                return result.clone();
            }
        }
        let (http, vault, server, timeout) = (self.http.clone(), vault.clone(), server.clone(), self.fence_timeout);
        let exporter = self.exporter.clone();
        let result = tokio::spawn(async move {
            let result = transaction(&http, &vault, exporter.as_ref(), &server, timeout).await;
            if let Err(e) = &result {
                note_failure(&vault, &server, e).await;
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(RefreshError::Failed(format!("refresh task failed: {e}"))));
        let mut last = slot.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *last = (last.0 + 1, Some(result.clone()));
        result
    }
}

/// What a sync found.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    /// Vault and agent agree (or ours is the newer copy).
    InSync,
    /// The agent's newer tokens are now in the vault.
    Adopted,
    /// The agent signed in by itself; its credentials are now in the vault.
    AdoptedNew,
    /// The agent removed its files: its decision, nothing is restored.
    AgentSignedOut,
    /// Neither side has credentials.
    NotConnected,
}

async fn sync_once(vault: &Vault, exporter: &dyn Exporter, server: &OAuthServer) -> Result<SyncOutcome, RefreshError> {
    let key = server.vault_key();
    let target = server.export_target();
    let record = {
        let (vault, key) = (vault.clone(), key.clone());
        crate::vault::blocking(move || vault.load(&key)).await?
    };
    let file = exporter.agent_tokens(&target);
    match (record, file) {
        (None, None) => Ok(SyncOutcome::NotConnected),
        (Some(_), None) => Ok(SyncOutcome::AgentSignedOut),
        (Some(mut record), Some(file)) => {
            Ok(match adopt_if_newer(vault, exporter, &target, &key, &mut record, Some(&file)).await? {
                Some(_) => SyncOutcome::Adopted,
                None => SyncOutcome::InSync,
            })
        }
        (None, Some(file)) => {
            // The agent's own sign-in: its registration and metadata come along.
            let paths = server.paths();
            let Some(client) = crate::agent_files::read_client(&paths) else {
                return Ok(SyncOutcome::NotConnected);
            };
            let record = CredentialRecord {
                server: server.name.clone(),
                url: server.url.to_string(),
                profile: server.home.profile.clone(),
                tokens: StoredTokens::from_agent(&file),
                issuer: file.issuer.clone(),
                client,
                metadata: crate::agent_files::read_json(&paths.meta),
                obtained_at: now(),
                last_error: None,
            };
            crate::vault::blocking({
                let vault = vault.clone();
                move || vault.store(&key, &record)
            })
            .await?;
            Ok(SyncOutcome::AdoptedNew)
        }
    }
}

/// The agent's tokens, when they are a newer pair than ours.
fn newer_in_file(file: Option<&TokenRecord>, ours: &StoredTokens) -> bool {
    let Some(file) = file else { return false };
    if file.access_token == ours.access_token {
        return false;
    }
    match (file.expires_at, ours.expires_at) {
        (Some(theirs), Some(mine)) => theirs > mine,
        // Without expiries, a different token in the file is the agent's newer one.
        _ => true,
    }
}

/// Notes a failed refresh in the vault record (the reason, and whether
/// sign-in is needed), for every front end and the next run; the next
/// success or adoption clears it. A record that is gone has nothing to note.
async fn note_failure(vault: &Vault, server: &OAuthServer, error: &RefreshError) {
    let (message, needs_reauth) = match error {
        RefreshError::NeedsReauth(m) => (m, true),
        RefreshError::Transient(m) | RefreshError::Failed(m) => (m, false),
        RefreshError::NotConnected => return,
    };
    let failure = RefreshFailure { message: message.clone(), needs_reauth, at: now() };
    let (vault, key) = (vault.clone(), server.vault_key());
    let noted = crate::vault::blocking(move || match vault.load(&key)? {
        Some(mut record) => {
            record.last_error = Some(failure);
            vault.store(&key, &record)
        }
        None => Ok(()),
    })
    .await;
    if let Err(e) = noted {
        tracing::debug!(error = %e, "cannot note the failure in the vault");
    }
}

async fn transaction(
    http: &Http,
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
    fence_timeout: Duration,
) -> Result<RefreshOutcome, RefreshError> {
    let paths = server.paths();
    let key = server.vault_key();
    let target = server.export_target();
    let _fence = acquire_async(paths.refresh_lock.clone(), fence_timeout).await?;

    let mut record = {
        let (vault, key) = (vault.clone(), key.clone());
        crate::vault::blocking(move || vault.load(&key)).await?.ok_or(RefreshError::NotConnected)?
    };
    let file = exporter.agent_tokens(&target);
    if let Some(outcome) = adopt_if_newer(vault, exporter, &target, &key, &mut record, file.as_ref()).await? {
        return Ok(outcome);
    }
    // A grant of a client the config no longer names is dead to the agent
    // (it deletes its files); it must not be spent or handed back either.
    if let Some(reason) = crate::client_identity::superseded(&record.client, &server.oauth) {
        return Err(RefreshError::NeedsReauth(reason.to_owned()));
    }
    let refresh_token = record.tokens.refresh_token.clone().ok_or_else(|| {
        RefreshError::NeedsReauth("the server gave no refresh token; the access token cannot be renewed".to_owned())
    })?;
    let endpoint = token_endpoint(&record, server)?;
    let http = http.with_token_user_agent(server.oauth.user_agent.as_deref());
    let tokens = match endpoint.refresh(&http, &refresh_token, None).await {
        Ok(tokens) => tokens,
        Err(TokenError::Rejected { description }) => {
            // The agent may have rotated it under us (older agents take no fence).
            let file = exporter.agent_tokens(&target);
            if let Some(outcome) = adopt_if_newer(vault, exporter, &target, &key, &mut record, file.as_ref()).await? {
                return Ok(outcome);
            }
            return Err(RefreshError::NeedsReauth(format!("the refresh token was rejected ({description})")));
        }
        Err(TokenError::ClientRejected { description }) => {
            return Err(RefreshError::NeedsReauth(format!("the client registration was rejected ({description})")));
        }
        Err(e) if e.is_transient() => return Err(RefreshError::Transient(e.to_string())),
        Err(e) => return Err(RefreshError::Failed(e.to_string())),
    };
    let previous_scope = record.tokens.scope.take();
    record.tokens = StoredTokens::from_response(&tokens);
    record.tokens.scope = record.tokens.scope.take().or(previous_scope);
    record.obtained_at = tokens.received_at;
    record.last_error = None;
    persist(vault, exporter, &target, &key, &record).await?;
    Ok(RefreshOutcome::Refreshed { expires_at: record.tokens.expires_at })
}

/// Adopts the agent's newer pair, restoring our refresh token if the agent's
/// write-back dropped it (mcp 1.26 does when a response omits it).
async fn adopt_if_newer(
    vault: &Vault,
    exporter: &dyn Exporter,
    target: &crate::export::ExportTarget,
    key: &VaultKey,
    record: &mut CredentialRecord,
    file: Option<&TokenRecord>,
) -> Result<Option<RefreshOutcome>, RefreshError> {
    if !newer_in_file(file, &record.tokens) {
        return Ok(None);
    }
    let Some(file) = file else { return Ok(None) };
    let mut tokens = StoredTokens::from_agent(file);
    let restore = tokens.refresh_token.is_none() && record.tokens.refresh_token.is_some();
    if restore {
        tokens.refresh_token = record.tokens.refresh_token.clone();
    }
    record.tokens = tokens;
    record.obtained_at = now();
    record.last_error = None;
    // After its own sign-in (`hermes mcp login`, browser or device) the
    // agent's tokens belong to the client it registered then: refreshing
    // them with ours would be refused. Take its registration along.
    if let Some((client, metadata)) = exporter.agent_registration(target)
        && client.client_id != record.client.client_id
    {
        tracing::info!("the agent signed in with its own client registration; adopting it too");
        let issuer = metadata.as_ref().and_then(|m| m.get("issuer")).and_then(|i| i.as_str()).map(str::to_owned);
        record.issuer = file.issuer.clone().or(issuer).or(record.issuer.take());
        record.client = client;
        if metadata.is_some() {
            record.metadata = metadata;
        }
    }
    tracing::info!("the agent had refreshed; adopting its tokens");
    {
        let (vault, key, record) = (vault.clone(), key.clone(), record.clone());
        crate::vault::blocking(move || vault.store(&key, &record)).await?;
    }
    if restore {
        exporter.update_tokens(target, record)?;
    }
    Ok(Some(RefreshOutcome::Adopted { expires_at: record.tokens.expires_at }))
}

async fn persist(
    vault: &Vault,
    exporter: &dyn Exporter,
    target: &crate::export::ExportTarget,
    key: &VaultKey,
    record: &CredentialRecord,
) -> Result<(), RefreshError> {
    {
        let (vault, key, record) = (vault.clone(), key.clone(), record.clone());
        crate::vault::blocking(move || vault.store(&key, &record)).await?;
    }
    if !exporter.update_tokens(target, record)? {
        tracing::info!("the agent has no token file for this server (it signed out); not recreating it");
    }
    Ok(())
}

fn token_endpoint(record: &CredentialRecord, server: &OAuthServer) -> Result<TokenEndpoint, RefreshError> {
    let field = |k: &str| record.metadata.as_ref().and_then(|m| m.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    let token_url = match field("token_endpoint") {
        Some(u) => u,
        // 2025-03-26 servers without metadata: the default endpoint at the origin.
        None => server.url.join("/token").map_err(|e| RefreshError::Failed(e.to_string()))?.to_string(),
    };
    Ok(TokenEndpoint {
        token_url,
        revocation_url: field("revocation_endpoint"),
        client: record.client.clone(),
        // As the agent does: the configured URL.
        resource: (!server.oauth.omit_resource).then(|| server.url.to_string()),
    })
}

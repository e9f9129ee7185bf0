//! Refreshing a server's tokens without ever losing one: a transaction.
//!
//! The agent refreshes on its own clock and rotates refresh tokens, so the
//! two of us must never spend the same refresh token. Each refresh of ours:
//! 1. is single-flight per server in this process (a second caller waiting
//!    on the first gets its result, not a second token request);
//! 2. takes the agent's file fence (`<stem>.json.refresh.lock`, 60 s, fail
//!    closed) for the rest (not for our own grants: the agent never sees
//!    them, [`OAuthServer::agent_fence`]);
//! 3. re-reads the vault and the agent's token file: if the agent already
//!    refreshed (its file is newer), we adopt its pair instead of refreshing;
//! 4. refreshes at the token endpoint (keeping our refresh token if the
//!    response omits one; on `invalid_grant`, re-reads the agent's file once
//!    more before declaring that a new sign-in is needed);
//! 5. persists: vault first, then the agent's token file — only if the agent
//!    still has one (a deleted file is the agent's decision to sign out);
//! 6. releases the fence.
//!
//! Steps 3–5 (and every other change of the record: sync, noting a failure)
//! run under the vault's per-server lock ([`Vault::lock`]), which connect and
//! disconnect take too: a refresh in flight finishes before a disconnect
//! removes the record, or before a new sign-in replaces it, never after.
//!
//! A rotated refresh token is never dropped: once the token endpoint answered,
//! the old refresh token is dead. If the vault cannot take the new pair
//! (keychain locked, access denied, D-Bus timeout), it still goes to the
//! agent's file and stays in this [`Refresher`]'s memory, and the next sync or
//! refresh stores it (taking it from memory, or back from the agent's file,
//! which is newer). If the agent's file cannot be written, the vault has the
//! pair and the next sync or refresh writes the file again. Either way the
//! attempt reports a [`RefreshError::TokensKept`] (with where the tokens
//! are) or [`RefreshError::AgentFileBehind`], both transient, so the
//! schedule retries soon.
//!
//! The work runs in its own task, so a caller that gives up cannot cancel it
//! between receiving a rotated token and persisting it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::hermes::export::ExportTarget;
use crate::hermes::export::{ExportError, Exporter};
use crate::hermes::fence::{DEFAULT_FENCE_TIMEOUT, FenceError, acquire_async};
use crate::hermes::files::TokenRecord;
use crate::oauth::http::Http;
use crate::oauth::tokens::{TokenEndpoint, TokenError};
use crate::sign_in::connect::OAuthServer;
use crate::util::secret::SecretString;
use crate::util::text::error_text;
use crate::util::time::now_secs as now;
use crate::vault::{CredentialRecord, RefreshFailure, StoredTokens, Vault, VaultError, VaultKey};

/// A token another process renewed counts as renewed when it is still valid
/// for this long (seconds); one about to expire is refreshed anyway.
const RENEWED_MARGIN_SECS: f64 = 5.0;

/// A record the vault could not take, kept until it can.
type Pending = Arc<Mutex<Option<CredentialRecord>>>;

/// What a refresh did.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    /// New tokens from the token endpoint.
    Refreshed { expires_at: Option<f64> },
    /// The agent had refreshed already; its newer tokens were adopted.
    Adopted { expires_at: Option<f64> },
    /// Asked to replace a token another process (the tray, the daemon,
    /// another proxy) had already replaced: the vault's newer, still valid
    /// token was kept and no refresh token was spent
    /// ([`Refresher::refresh_replacing`]).
    AlreadyRenewed { expires_at: Option<f64> },
}

/// Why a refresh did not happen. Callers branch on the variant and its
/// fields, never on the text: [`RefreshError::NeedsReauth`] (only a new
/// sign-in helps), [`RefreshError::is_transient`] (retry later), the rest
/// failed. Every cause is printed once, by the chain: show one with
/// [`error_text`](crate::error_text).
///
/// `Clone` because a refresh's result is handed to every caller that waited
/// for it; the sources that are not `Clone` are shared behind an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    #[error("not signed in (no credentials in the vault)")]
    NotConnected,
    /// Only a new sign-in helps.
    #[error("sign in again: {0}")]
    NeedsReauth(ReauthReason),
    /// The token request got no usable answer (network trouble, a timeout,
    /// HTTP 5xx): retried later.
    #[error(transparent)]
    Network(Arc<TokenError>),
    /// The agent's refresh lock could not be taken (another process held it
    /// too long, or it cannot be opened): retried later, nothing was spent.
    #[error(transparent)]
    Fence(Arc<FenceError>),
    /// The keychain could not be read or written; retried later when it is
    /// unavailable or busy.
    #[error(transparent)]
    Vault(VaultError),
    /// The keychain did not take new tokens: they wait where `kept` says
    /// and go to the keychain as soon as it can take them. Retried soon.
    #[error("{kept}")]
    TokensKept {
        kept: KeptIn,
        #[source]
        source: VaultError,
    },
    /// The agent's token file could not be written: the keychain has the new
    /// tokens, and the next sync or refresh writes the file again. Retried soon.
    #[error(
        "cannot write the agent's token file (new tokens kept in the keychain; the file is written again on the next sync or refresh)"
    )]
    AgentFileBehind(#[source] Arc<ExportError>),
    /// A rotating server answered with a new refresh token but no usable
    /// access token: it spent the one we sent, so the new one was kept.
    /// Retried soon.
    #[error("{0}; the new refresh token was kept")]
    PartialResponse(Arc<TokenError>),
    /// The token endpoint refused for another reason than one a new sign-in
    /// mends, or answered something unusable.
    #[error(transparent)]
    Token(Arc<TokenError>),
    /// The agent's files could not be read or written.
    #[error(transparent)]
    Export(Arc<ExportError>),
    /// No token endpoint: no metadata names one, and the server's URL gives no
    /// default.
    #[error("no token endpoint for {url}")]
    NoTokenEndpoint {
        url: String,
        #[source]
        source: url::ParseError,
    },
    /// The transaction's own task ended abnormally.
    #[error("the refresh task failed")]
    Task(#[source] Arc<tokio::task::JoinError>),
}

/// Why only a new sign-in helps: what a caller shows, typed so that none
/// of them needs to read the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReauthReason {
    /// The token endpoint answered `invalid_grant`: the refresh token is
    /// spent, revoked or expired.
    #[error("the refresh token was rejected ({description})")]
    GrantRejected { description: String },
    /// `invalid_client` or `unauthorized_client`: the registration is gone
    /// or its secret is wrong.
    #[error("the client registration was rejected ({description})")]
    ClientRejected { description: String },
    /// The server issued no refresh token.
    #[error("the server gave no refresh token; the access token cannot be renewed")]
    NoRefreshToken,
    /// The config names another client than the one the grant belongs to.
    #[error("{0}")]
    Superseded(&'static str),
    /// The MCP server refused a token refreshed a moment ago (the proxy's
    /// verdict after its one retry).
    #[error("the server refused a freshly refreshed token")]
    FreshTokenRefused,
}

/// Where new tokens the keychain could not take are kept meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeptIn {
    #[error("new tokens kept in the agent's file and memory; they go to the keychain as soon as it can take them")]
    AgentFileAndMemory,
    #[error("new tokens kept in memory; they go to the keychain as soon as it can take them")]
    Memory,
    /// Those of an earlier refresh, while the keychain still cannot be read.
    #[error("new tokens of an earlier refresh are still kept outside the keychain")]
    EarlierRefresh,
}

impl RefreshError {
    /// Worth retrying later: nothing says the grant is gone.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_)
            | Self::Fence(_)
            | Self::TokensKept { .. }
            | Self::AgentFileBehind(_)
            | Self::PartialResponse(_) => true,
            Self::Vault(e) => vault_transient(e),
            Self::NotConnected
            | Self::NeedsReauth(_)
            | Self::Token(_)
            | Self::Export(_)
            | Self::NoTokenEndpoint { .. }
            | Self::Task(_) => false,
        }
    }

    /// The reason a new sign-in is needed, when it is.
    pub fn reauth_reason(&self) -> Option<&ReauthReason> {
        match self {
            Self::NeedsReauth(reason) => Some(reason),
            _ => None,
        }
    }

    /// The failure in words for the vault record, the status and the tray:
    /// the reason alone when a sign-in is needed (the front ends say "sign
    /// in again" their own way), else the whole chain.
    pub fn note(&self) -> String {
        match self {
            Self::NeedsReauth(reason) => reason.to_string(),
            other => error_text(other),
        }
    }
}

/// The keychain is locked, absent or busy, as opposed to broken.
fn vault_transient(e: &VaultError) -> bool {
    matches!(e, VaultError::Unavailable(_) | VaultError::Busy { .. })
}

impl From<VaultError> for RefreshError {
    fn from(e: VaultError) -> Self {
        Self::Vault(e)
    }
}

impl From<FenceError> for RefreshError {
    fn from(e: FenceError) -> Self {
        Self::Fence(Arc::new(e))
    }
}

impl From<ExportError> for RefreshError {
    fn from(e: ExportError) -> Self {
        Self::Export(Arc::new(e))
    }
}

impl From<tokio::task::JoinError> for RefreshError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Task(Arc::new(e))
    }
}

/// A token endpoint's refusal, sorted: what only a new sign-in mends, what
/// is retried, what failed. `PartialResponse` is the caller's (it must keep
/// the new refresh token first).
fn from_token_error(e: TokenError) -> RefreshError {
    match e {
        TokenError::Rejected { description } => RefreshError::NeedsReauth(ReauthReason::GrantRejected { description }),
        TokenError::ClientRejected { description } => {
            RefreshError::NeedsReauth(ReauthReason::ClientRejected { description })
        }
        e if e.is_transient() => RefreshError::Network(Arc::new(e)),
        e => RefreshError::Token(Arc::new(e)),
    }
}

#[derive(Default)]
struct Slot {
    lock: tokio::sync::Mutex<()>,
    /// Bumped by every finished transaction, with its result.
    last: Mutex<(u64, Option<Result<RefreshOutcome, RefreshError>>)>,
    /// New tokens a refresh received that the vault could not store yet.
    pending: Pending,
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
    /// refreshed, or signed in by itself), writes the agent's file again when
    /// ours is newer (an earlier write failed), and stores tokens a refresh
    /// could not store — without any network request. Serialised with this
    /// server's refreshes.
    #[tracing::instrument(skip_all, fields(server = %server.name), err)]
    pub async fn sync(&self, vault: &Vault, server: &OAuthServer) -> Result<SyncOutcome, RefreshError> {
        let slot = self.slot(server.vault_key());
        let _turn = slot.lock.lock().await;
        let (vault, server, exporter, pending) =
            (vault.clone(), server.clone(), self.exporter.clone(), slot.pending.clone());
        tokio::spawn(async move {
            let _lock = vault.lock(&server.vault_key()).await?;
            sync_locked(&vault, exporter.as_ref(), &server, &pending).await
        })
        .await
        .unwrap_or_else(|e| Err(e.into()))
    }

    /// Refreshes `server` now (see the module docs for the steps).
    #[tracing::instrument(skip_all, fields(server = %server.name), err)]
    pub async fn refresh(&self, vault: &Vault, server: &OAuthServer) -> Result<RefreshOutcome, RefreshError> {
        self.run(vault, server, None).await
    }

    /// Refreshes `server` only if the vault still holds `stale` (the access
    /// token a caller found due or saw rejected), in the same transaction:
    /// when another process replaced it meanwhile with a token that is still
    /// valid, that one is the answer ([`RefreshOutcome::AlreadyRenewed`]) and
    /// no refresh token is spent. Many processes holding one token (several
    /// proxies, the tray) thus make one token request per rotation: the first
    /// through the fence refreshes, the others find its result.
    #[tracing::instrument(skip_all, fields(server = %server.name), err)]
    pub async fn refresh_replacing(
        &self,
        vault: &Vault,
        server: &OAuthServer,
        stale: &SecretString,
    ) -> Result<RefreshOutcome, RefreshError> {
        self.run(vault, server, Some(stale.clone())).await
    }

    /// Notes in the vault record that `server` must be signed in again (or
    /// why its credentials failed), under the server's lock, exactly as a
    /// failed refresh is noted: the status, the tray's notice and the next
    /// run see it; the next success clears it.
    pub async fn note_rejected(&self, vault: &Vault, server: &OAuthServer, error: &RefreshError) {
        let (vault, server, error) = (vault.clone(), server.clone(), error.clone());
        let noted = tokio::spawn(async move {
            match vault.lock(&server.vault_key()).await {
                Ok(_lock) => note_failure(&vault, &server, &error).await,
                Err(e) => tracing::debug!(error = %e, "cannot note the failure in the vault"),
            }
        })
        .await;
        if let Err(e) = noted {
            tracing::debug!(error = %e, "noting the failure failed");
        }
    }

    async fn run(
        &self,
        vault: &Vault,
        server: &OAuthServer,
        stale: Option<SecretString>,
    ) -> Result<RefreshOutcome, RefreshError> {
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
        let (exporter, pending) = (self.exporter.clone(), slot.pending.clone());
        let result = tokio::spawn(async move {
            let _fence = match server.agent_fence() {
                Some(path) => Some(acquire_async(path, timeout).await?),
                None => None,
            };
            let _lock = vault.lock(&server.vault_key()).await?;
            let result = transaction(&http, &vault, exporter.as_ref(), &server, &pending, stale.as_ref()).await;
            if let Err(e) = &result {
                note_failure(&vault, &server, e).await;
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(e.into()));
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
    /// The agent's file was older than the vault (an earlier write of it
    /// failed); it has the vault's tokens again.
    Exported,
    /// New tokens an earlier refresh could not store are now in the vault.
    Stored,
    /// The vault's record was unreadable; it was rebuilt from the agent's files.
    Recovered,
    /// The agent removed its files: its decision, nothing is restored.
    AgentSignedOut,
    /// Neither side has credentials.
    NotConnected,
}

/// The note a recovered record carries, so every front end says what happened.
pub const RECOVERED_NOTE: &str = "the keychain record was unreadable; recovered from the agent's files";

/// The record for `server`, or `None`. A corrupt record is rebuilt from the
/// agent's files when they are whole (tokens and registration): the
/// agent's copy is as good as ours, and a damaged record must not wedge
/// every later sync and refresh. Call with the server's lock held.
async fn load_or_recover(
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
) -> Result<(Option<CredentialRecord>, bool), RefreshError> {
    let key = server.vault_key();
    let loaded = vault.load_async(&key).await;
    match loaded {
        Ok(record) => Ok((record, false)),
        Err(corrupt @ VaultError::Corrupt { .. }) => {
            let Some(mut record) = from_agent_files(exporter, server) else { return Err(corrupt.into()) };
            tracing::warn!(error = %corrupt, "recovering the keychain record from the agent's files");
            record.last_error =
                Some(RefreshFailure { message: RECOVERED_NOTE.to_owned(), needs_reauth: false, at: now() });
            store(vault, &key, &record).await?;
            Ok((Some(record), true))
        }
        Err(e) => Err(e.into()),
    }
}

/// A whole record from the agent's files (its own sign-in, or our export):
/// tokens, registration and metadata together, never one without the others.
fn from_agent_files(exporter: &dyn Exporter, server: &OAuthServer) -> Option<CredentialRecord> {
    let target = server.export_target();
    let file = exporter.agent_tokens(&target)?;
    let (client, metadata) = exporter.agent_registration(&target)?;
    let issuer = file.issuer.clone().or_else(|| metadata_issuer(metadata.as_ref()));
    Some(CredentialRecord {
        server: server.name.clone(),
        url: server.url.to_string(),
        profile: server.home.profile.clone(),
        tokens: StoredTokens::from_agent(&file),
        issuer,
        client,
        metadata,
        obtained_at: now(),
        last_error: None,
    })
}

fn metadata_issuer(metadata: Option<&serde_json::Value>) -> Option<String> {
    metadata.and_then(|m| m.get("issuer")).and_then(|i| i.as_str()).map(str::to_owned)
}

async fn store(vault: &Vault, key: &VaultKey, record: &CredentialRecord) -> Result<(), VaultError> {
    vault.store_async(key, record).await
}

fn take_pending(pending: &Pending) -> Option<CredentialRecord> {
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
}

fn keep_pending(pending: &Pending, record: &CredentialRecord) {
    *pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record.clone());
}

/// Stores tokens an earlier refresh could not store, when they still belong
/// to this record (same client) and are newer than it. `Some(record)` when
/// they were stored. A vault that still cannot take them keeps them pending.
async fn flush_pending(
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
    record: &CredentialRecord,
    pending: &Pending,
) -> Result<Option<CredentialRecord>, RefreshError> {
    let Some(kept) = take_pending(pending) else { return Ok(None) };
    if kept.client.client_id != record.client.client_id || !tokens_newer(&kept.tokens, &record.tokens) {
        // A new sign-in (or an adoption) superseded them.
        return Ok(None);
    }
    if let Err(source) = store(vault, &server.vault_key(), &kept).await {
        keep_pending(pending, &kept);
        return Err(RefreshError::TokensKept {
            kept: kept_in(exporter.agent_tokens(&server.export_target()).is_some()),
            source,
        });
    }
    tracing::info!("stored the tokens of an earlier refresh the keychain could not take then");
    if let Err(e) = exporter.update_tokens(&server.export_target(), &kept) {
        return Err(RefreshError::AgentFileBehind(Arc::new(e)));
    }
    Ok(Some(kept))
}

/// `ours` is a newer pair than `theirs`.
fn tokens_newer(ours: &StoredTokens, theirs: &StoredTokens) -> bool {
    if ours.access_token == theirs.access_token {
        return false;
    }
    match (ours.expires_at, theirs.expires_at) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

/// Where tokens the keychain refused wait: in memory, and in the agent's
/// file when it took them.
fn kept_in(in_agent_file: bool) -> KeptIn {
    if in_agent_file { KeptIn::AgentFileAndMemory } else { KeptIn::Memory }
}

async fn sync_locked(
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
    pending: &Pending,
) -> Result<SyncOutcome, RefreshError> {
    let key = server.vault_key();
    let target = server.export_target();
    let (record, recovered) = load_or_recover(vault, exporter, server).await?;
    if recovered {
        return Ok(SyncOutcome::Recovered);
    }
    let file = exporter.agent_tokens(&target);
    match (record, file) {
        (None, None) => {
            take_pending(pending);
            Ok(SyncOutcome::NotConnected)
        }
        (Some(record), None) => {
            if flush_pending(vault, exporter, server, &record, pending).await?.is_some() {
                return Ok(SyncOutcome::Stored);
            }
            Ok(SyncOutcome::AgentSignedOut)
        }
        (Some(mut record), Some(file)) => {
            if let Some(outcome) = adopt_if_newer(vault, exporter, &target, &key, &mut record, Some(&file)).await? {
                take_pending(pending);
                return Ok(match outcome {
                    RefreshOutcome::Adopted { .. }
                    | RefreshOutcome::Refreshed { .. }
                    | RefreshOutcome::AlreadyRenewed { .. } => SyncOutcome::Adopted,
                });
            }
            if flush_pending(vault, exporter, server, &record, pending).await?.is_some() {
                return Ok(SyncOutcome::Stored);
            }
            if tokens_newer(&record.tokens, &StoredTokens::from_agent(&file)) {
                // An earlier write of the agent's file failed: the agent holds
                // a spent refresh token. Give it ours again.
                exporter.update_tokens(&target, &record).map_err(|e| RefreshError::AgentFileBehind(Arc::new(e)))?;
                if record.last_error.as_ref().is_some_and(|f| !f.needs_reauth) {
                    record.last_error = None;
                    store(vault, &key, &record).await?;
                }
                tracing::info!("the agent's token file was behind the keychain; written again");
                return Ok(SyncOutcome::Exported);
            }
            Ok(SyncOutcome::InSync)
        }
        (None, Some(_)) => {
            // The agent's own sign-in: its registration and metadata come along.
            let Some(record) = from_agent_files(exporter, server) else {
                return Ok(SyncOutcome::NotConnected);
            };
            take_pending(pending);
            store(vault, &key, &record).await?;
            Ok(SyncOutcome::AdoptedNew)
        }
    }
}

/// The agent's tokens, when they are a newer pair than ours.
fn newer_in_file(file: Option<&TokenRecord>, ours: &StoredTokens) -> bool {
    file.is_some_and(|file| tokens_newer(&StoredTokens::from_agent(file), ours))
}

/// Notes a failed refresh in the vault record (the reason, and whether
/// sign-in is needed), for every front end and the next run; the next
/// success or adoption clears it. A record that is gone has nothing to note.
/// Call with the server's lock held.
async fn note_failure(vault: &Vault, server: &OAuthServer, error: &RefreshError) {
    if matches!(error, RefreshError::NotConnected) {
        return;
    }
    let needs_reauth = error.reauth_reason().is_some();
    let failure = RefreshFailure { message: error.note(), needs_reauth, at: now() };
    let (vault, key) = (vault.clone(), server.vault_key());
    let noted = crate::vault::blocking(move || match vault.load(&key)? {
        Some(mut record) => {
            record.last_error = Some(failure);
            vault.store(&key, &record)?;
            if needs_reauth {
                // Another process (a proxy) may be the one that found out:
                // the tray must show it and raise its notice.
                vault.announce_change();
            }
            Ok(())
        }
        None => Ok(()),
    })
    .await;
    if let Err(e) = noted {
        tracing::debug!(error = %e, "cannot note the failure in the vault");
    }
}

/// Steps 3–5; the caller holds the fence and the server's lock.
async fn transaction(
    http: &Http,
    vault: &Vault,
    exporter: &dyn Exporter,
    server: &OAuthServer,
    pending: &Pending,
    stale: Option<&SecretString>,
) -> Result<RefreshOutcome, RefreshError> {
    let key = server.vault_key();
    let target = server.export_target();
    let mut record = match load_or_recover(vault, exporter, server).await {
        Ok((Some(record), _)) => record,
        Ok((None, _)) => {
            // Signed out meanwhile: nothing kept may come back.
            take_pending(pending);
            return Err(RefreshError::NotConnected);
        }
        Err(RefreshError::Vault(source))
            if vault_transient(&source)
                && pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some() =>
        {
            return Err(RefreshError::TokensKept { kept: KeptIn::EarlierRefresh, source });
        }
        Err(e) => return Err(e),
    };
    if let Some(kept) = flush_pending(vault, exporter, server, &record, pending).await? {
        // That refresh's tokens are fresh: no need to spend its refresh token.
        return Ok(RefreshOutcome::Refreshed { expires_at: kept.tokens.expires_at });
    }
    let file = exporter.agent_tokens(&target);
    if let Some(outcome) = adopt_if_newer(vault, exporter, &target, &key, &mut record, file.as_ref()).await? {
        return Ok(outcome);
    }
    if let Some(stale) = stale
        && record.tokens.access_token.expose() != stale.expose()
        && record.tokens.expires_at.is_none_or(|at| at > now() + RENEWED_MARGIN_SECS)
        && record.last_error.as_ref().is_none_or(|f| !f.needs_reauth)
    {
        // Someone else rotated it while we waited for the fence.
        return Ok(RefreshOutcome::AlreadyRenewed { expires_at: record.tokens.expires_at });
    }
    // A grant of a client the config no longer names is dead to the agent
    // (it deletes its files); it must not be spent or handed back either.
    if let Some(reason) = crate::hermes::client_identity::superseded(&record.client, &server.oauth) {
        return Err(RefreshError::NeedsReauth(ReauthReason::Superseded(reason)));
    }
    let refresh_token =
        record.tokens.refresh_token.clone().ok_or(RefreshError::NeedsReauth(ReauthReason::NoRefreshToken))?;
    let endpoint = token_endpoint(&record, server)?;
    let http = http.with_token_user_agent(server.oauth.user_agent.as_deref());
    let tokens = match endpoint.refresh(&http, &refresh_token, None).await {
        Ok(tokens) => tokens,
        Err(e @ TokenError::Rejected { .. }) => {
            // The agent may have rotated it under us (older agents take no fence).
            let file = exporter.agent_tokens(&target);
            if let Some(outcome) = adopt_if_newer(vault, exporter, &target, &key, &mut record, file.as_ref()).await? {
                return Ok(outcome);
            }
            return Err(from_token_error(e));
        }
        // A rotating server has spent the token we sent: the new one is the
        // only live one, so it is kept before the failure is reported.
        Err(e @ TokenError::PartialResponse { .. }) => {
            record.tokens.refresh_token = e.kept_refresh_token().cloned();
            persist(vault, exporter, &target, &key, &record, pending).await?;
            return Err(RefreshError::PartialResponse(Arc::new(e)));
        }
        Err(e) => return Err(from_token_error(e)),
    };
    let previous_scope = record.tokens.scope.take();
    record.tokens = StoredTokens::from_response(&tokens);
    record.tokens.scope = record.tokens.scope.take().or(previous_scope);
    record.obtained_at = tokens.received_at;
    record.last_error = None;
    persist(vault, exporter, &target, &key, &record, pending).await?;
    Ok(RefreshOutcome::Refreshed { expires_at: record.tokens.expires_at })
}

/// Adopts the agent's newer pair, restoring our refresh token if the agent's
/// write-back dropped it (mcp 1.26 does when a response omits it). When the
/// agent signed in again by itself (another `client_id` in its client file),
/// its registration and metadata come along: new tokens are never paired
/// with an old client.
async fn adopt_if_newer(
    vault: &Vault,
    exporter: &dyn Exporter,
    target: &ExportTarget,
    key: &VaultKey,
    record: &mut CredentialRecord,
    file: Option<&TokenRecord>,
) -> Result<Option<RefreshOutcome>, RefreshError> {
    if !newer_in_file(file, &record.tokens) {
        return Ok(None);
    }
    let Some(file) = file else { return Ok(None) };
    let mut tokens = StoredTokens::from_agent(file);
    let new_client =
        exporter.agent_registration(target).filter(|(client, _)| client.client_id != record.client.client_id);
    let restore = match new_client {
        Some((client, metadata)) => {
            tracing::info!("the agent signed in again by itself; adopting its registration with its tokens");
            record.issuer = file.issuer.clone().or_else(|| metadata_issuer(metadata.as_ref())).or(record.issuer.take());
            record.client = client;
            if metadata.is_some() {
                record.metadata = metadata;
            }
            // Our refresh token belongs to the old client: never restore it.
            false
        }
        None => {
            let restore = tokens.refresh_token.is_none() && record.tokens.refresh_token.is_some();
            if restore {
                tokens.refresh_token = record.tokens.refresh_token.clone();
            }
            restore
        }
    };
    record.tokens = tokens;
    record.obtained_at = now();
    record.last_error = None;
    tracing::info!("the agent had refreshed; adopting its tokens");
    store(vault, key, record).await?;
    if restore {
        exporter.update_tokens(target, record)?;
    }
    Ok(Some(RefreshOutcome::Adopted { expires_at: record.tokens.expires_at }))
}

/// Vault first, then the agent's file; whichever fails, the new pair is kept
/// by the other (and in memory when the vault failed) — see the module docs.
async fn persist(
    vault: &Vault,
    exporter: &dyn Exporter,
    target: &ExportTarget,
    key: &VaultKey,
    record: &CredentialRecord,
    pending: &Pending,
) -> Result<(), RefreshError> {
    let stored = store(vault, key, record).await;
    let exported = exporter.update_tokens(target, record);
    match (stored, exported) {
        (Ok(()), Ok(true)) => Ok(()),
        (Ok(()), Ok(false)) => {
            tracing::info!("the agent has no token file for this server (it signed out); not recreating it");
            Ok(())
        }
        (Ok(()), Err(e)) => Err(RefreshError::AgentFileBehind(Arc::new(e))),
        (Err(source), exported) => {
            keep_pending(pending, record);
            let in_file = matches!(exported, Ok(true));
            tracing::warn!(error = %source, in_file, "the keychain did not take the new tokens; keeping them");
            Err(RefreshError::TokensKept { kept: kept_in(in_file), source })
        }
    }
}

fn token_endpoint(record: &CredentialRecord, server: &OAuthServer) -> Result<TokenEndpoint, RefreshError> {
    let field = |k: &str| record.metadata.as_ref().and_then(|m| m.get(k)).and_then(|v| v.as_str()).map(str::to_owned);
    let token_url = match field("token_endpoint") {
        Some(u) => u,
        // 2025-03-26 servers without metadata: the default endpoint at the origin.
        None => server
            .url
            .join("/token")
            .map_err(|source| RefreshError::NoTokenEndpoint { url: server.url.to_string(), source })?
            .to_string(),
    };
    Ok(TokenEndpoint {
        token_url,
        revocation_url: field("revocation_endpoint"),
        client: record.client.clone(),
        // As the agent does: the configured URL.
        resource: (!server.oauth.omit_resource).then(|| server.url.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use pretty_assertions::assert_eq;
    use rstest::rstest;

    use super::*;

    fn described(description: &str) -> String {
        description.to_owned()
    }

    /// What a token endpoint's answer becomes: (sign-in reason, transient).
    #[rstest]
    #[case::invalid_grant(
        TokenError::Rejected { description: described("revoked") },
        Some(ReauthReason::GrantRejected { description: described("revoked") }),
        false
    )]
    #[case::invalid_client(
        TokenError::ClientRejected { description: described("unknown client") },
        Some(ReauthReason::ClientRejected { description: described("unknown client") }),
        false
    )]
    #[case::network(TokenError::Transport(described("HTTP 503 from https://as.example/token")), None, true)]
    #[case::other_refusal(
        TokenError::Refused { error: described("invalid_scope"), description: None },
        None,
        false
    )]
    #[case::unreadable(TokenError::BadResponse(described("not JSON")), None, false)]
    fn token_errors_are_sorted(
        #[case] error: TokenError,
        #[case] reauth: Option<ReauthReason>,
        #[case] transient: bool,
    ) {
        let e = from_token_error(error);
        assert_eq!(e.reauth_reason(), reauth.as_ref());
        assert_eq!(e.is_transient(), transient, "{e:?}");
    }

    fn locked() -> VaultError {
        VaultError::Unavailable(described("the keychain is locked"))
    }

    fn fence_timeout() -> FenceError {
        FenceError::Timeout { path: PathBuf::from("/t/x.json.refresh.lock"), waited: Duration::from_secs(60) }
    }

    /// Every kind, its class and its text: each cause printed once.
    #[rstest]
    #[case::not_connected(RefreshError::NotConnected, false, "not signed in (no credentials in the vault)")]
    #[case::reauth(
        RefreshError::NeedsReauth(ReauthReason::NoRefreshToken),
        false,
        "sign in again: the server gave no refresh token; the access token cannot be renewed"
    )]
    #[case::keychain_locked(RefreshError::Vault(locked()), true, "keychain unavailable: the keychain is locked")]
    #[case::keychain_broken(
        RefreshError::Vault(VaultError::Backend(described("no such collection"))),
        false,
        "keychain error: no such collection"
    )]
    #[case::kept(
        RefreshError::TokensKept { kept: KeptIn::AgentFileAndMemory, source: locked() },
        true,
        "new tokens kept in the agent's file and memory; they go to the keychain as soon as it can take them: keychain unavailable: the keychain is locked"
    )]
    #[case::kept_earlier(
        RefreshError::TokensKept { kept: KeptIn::EarlierRefresh, source: locked() },
        true,
        "new tokens of an earlier refresh are still kept outside the keychain: keychain unavailable: the keychain is locked"
    )]
    #[case::fence(
        RefreshError::from(fence_timeout()),
        true,
        "another process holds the refresh lock /t/x.json.refresh.lock (waited 60 s); not refreshing"
    )]
    #[case::network(
        from_token_error(TokenError::Transport(described("HTTP 503"))),
        true,
        "token request failed: HTTP 503"
    )]
    #[case::no_endpoint(
        RefreshError::NoTokenEndpoint { url: described("mailto:x"), source: url::ParseError::RelativeUrlWithCannotBeABaseBase },
        false,
        "no token endpoint for mailto:x: relative URL with a cannot-be-a-base base"
    )]
    fn kinds_and_their_text(#[case] error: RefreshError, #[case] transient: bool, #[case] text: &str) {
        assert_eq!(error.is_transient(), transient, "{error:?}");
        assert_eq!(error_text(&error), text);
    }

    #[test]
    fn the_note_of_a_sign_in_is_its_reason() {
        let e = RefreshError::NeedsReauth(ReauthReason::GrantRejected { description: described("revoked") });
        assert_eq!(e.note(), "the refresh token was rejected (revoked)");
        let e = RefreshError::TokensKept { kept: KeptIn::Memory, source: locked() };
        assert_eq!(
            e.note(),
            "new tokens kept in memory; they go to the keychain as soon as it can take them: keychain unavailable: the keychain is locked"
        );
    }
}

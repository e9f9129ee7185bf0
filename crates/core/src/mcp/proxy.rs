//! `mcp-auth proxy`: a stdio MCP server that relays every message to one
//! remote Streamable HTTP server, adding the vault's bearer token; and the
//! token source `mcp-auth headers` prints from.
//!
//! Any MCP client that can start a command uses it (as people use
//! `npx mcp-remote <url>`), but the credentials are the vault's and the
//! refreshes are ours:
//! - **A relay, not a re-implementation.** The stdio side is rmcp's
//!   line-framed server transport, the HTTP side rmcp's Streamable HTTP
//!   client transport (sessions, SSE streams, protocol-version headers,
//!   session re-initialisation). Requests, responses, errors, notifications,
//!   progress and cancellation go through unchanged in both directions;
//!   nothing is answered here except what the remote cannot answer (see
//!   below). rmcp 3.11 has no legacy HTTP+SSE client transport (2024-11-05),
//!   so neither does the proxy.
//! - **Tokens only in memory and the vault.** The proxy reads the access
//!   token from the vault and keeps it in memory; it never writes a token
//!   file. A refresh goes through [`Refresher::refresh_replacing`], the same
//!   transaction as the tray's and the CLI's (in-process single flight, the
//!   agent's file fence, the vault lock, re-read): when another process (the
//!   tray, the daemon, another proxy) already replaced the token, its result
//!   is taken and no refresh token is spent, so one rotation is one token
//!   request however many proxies notice it. The agent's token file is
//!   written by that transaction only when the agent already has one.
//! - **A 401 mid-session**: one refresh, the request sent again once; if the
//!   server still refuses (or the refresh needs a new sign-in), the failure
//!   is noted in the vault record the way a failed refresh is (so the status
//!   and the tray's notice show it) and the client gets an MCP error saying
//!   "sign in to <server> again (tray or `mcp-auth connect <server>`)". The
//!   proxy never opens a browser by itself.
//! - **Not signed in**: the relay still speaks MCP, answering every request
//!   with that reason, so the client shows it instead of "connection closed".

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use serde_json::Value;

use crate::hermes::export::{ExportError, ExportTarget, Exporter, HermesExporter};
use crate::hermes::files::TokenRecord;
use crate::hermes::snapshot::Snapshot;
use crate::oauth::client::ClientRecord;
use crate::oauth::http::Http;
use crate::refresh::transaction::{RefreshError, Refresher};
use crate::sign_in::connect::{ConnectError, OAuthServer, find_oauth_server, oauth_servers};
use crate::util::secret::SecretString;
use crate::util::time::now_secs as now;
use crate::vault::{CredentialRecord, Vault, VaultError};

/// The JSON-RPC error code of the answers the proxy gives itself
/// (implementation-defined server errors are -32000 to -32099).
pub const PROXY_ERROR_CODE: i32 = -32001;

/// A token with less than this left is refreshed before it is sent, unless
/// its whole lifetime is short (then a quarter of it): the tray refreshes at
/// 60–75 % of the lifetime, so a proxy refreshes only what nobody else did.
const DUE_MARGIN_SECS: f64 = 30.0;

/// Why the proxy (or `headers`) has no token to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("not signed in to {server} yet: sign in (tray or `{connect}`)")]
    NotSignedIn { server: String, connect: String },
    #[error("sign in to {server} again (tray or `{connect}`): {reason}")]
    SignInAgain { server: String, connect: String, reason: String },
    #[error("cannot get a token for {server} now: {reason}")]
    Unavailable { server: String, reason: String },
}

/// The command that signs in to `server`.
pub fn connect_command(server: &OAuthServer) -> String {
    match &server.home.profile {
        // Ours (our list, a bare URL): `mcp-auth connect` knows only the agent's servers.
        Some(profile) if profile == crate::clients::OWN_PROFILE => {
            format!("mcp-auth proxy {} --connect", server.name)
        }
        Some(profile) => format!("mcp-auth connect {} --profile {profile}", server.name),
        None => format!("mcp-auth connect {}", server.name),
    }
}

/// Finds the server `spec` names: a server name of the agent's config
/// (`profile/name`, or `profile` given, when several profiles have it), or
/// the URL of a configured OAuth server. The one place servers are looked up
/// for the proxy and `headers`; other server lists (other clients' configs,
/// our own list) extend it here.
pub fn resolve_server(snapshot: &Snapshot, spec: &str, profile: Option<&str>) -> Result<OAuthServer, ConnectError> {
    let spec = spec.trim();
    if let Ok(url) = url::Url::parse(spec)
        && matches!(url.scheme(), "http" | "https")
    {
        return resolve_url(snapshot, &url, profile);
    }
    match find_oauth_server(snapshot, spec, profile) {
        Err(ConnectError::NotFound { .. }) if profile.is_none() && spec.contains('/') => {
            let (profile, name) = spec.split_once('/').unwrap_or((spec, ""));
            find_oauth_server(snapshot, name, Some(profile))
        }
        other => other,
    }
}

/// The server a proxy or `headers` serves, and where its tokens may go.
#[derive(Debug, Clone)]
pub struct ProxyServer {
    pub server: OAuthServer,
    /// A server of the agent's config (its files are kept in step when the
    /// agent has them); else ours or a bare URL: nothing is ever written.
    pub agents: bool,
}

impl ProxyServer {
    /// The exporter of refreshes: the agent's files (only when it has them)
    /// for its servers, nothing for ours.
    pub fn refresh_exporter(&self) -> Arc<dyn Exporter> {
        if self.agents { Arc::new(HermesExporter) } else { Arc::new(crate::clients::NoExport) }
    }

    /// The exporter of a sign-in through the proxy: never creates the
    /// agent's files (see [`AgentFilesIfPresent`]).
    pub fn sign_in_exporter(&self) -> Arc<dyn Exporter> {
        if self.agents { Arc::new(AgentFilesIfPresent) } else { Arc::new(crate::clients::NoExport) }
    }
}

/// Why `spec` names no server.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Config(#[from] ConnectError),
    #[error(transparent)]
    Grant(#[from] crate::clients::GrantError),
}

/// The server `spec` (a name or URL) names, through the grant lookup of
/// [`crate::find_grant`] (one grant per URL, shared by every client: the
/// agent's servers in any profile, our list, bare URLs), and with `profile`
/// (or a `profile/name` spec) within the agent's config. Blocking (keychain).
pub fn resolve_grant(
    snapshot: &Snapshot,
    own: &crate::clients::OwnList,
    own_home: &std::path::Path,
    vault: &Vault,
    spec: &str,
    profile: Option<&str>,
) -> Result<ProxyServer, ResolveError> {
    use crate::clients::{GrantError, GrantSource};
    let hermes = |server| ProxyServer { server, agents: true };
    if profile.is_some() {
        return Ok(hermes(resolve_server(snapshot, spec, profile)?));
    }
    match crate::clients::find_grant(snapshot, own, own_home, vault, spec) {
        Ok((grant, _)) => Ok(ProxyServer { agents: grant.source == GrantSource::Hermes, server: grant.server }),
        Err(GrantError::NotFound { .. }) if !spec.contains("://") && spec.contains('/') => {
            Ok(hermes(resolve_server(snapshot, spec, None)?))
        }
        Err(e) => Err(e.into()),
    }
}

/// A URL as compared: without a trailing `/` and fragment.
fn comparable(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.as_str().trim_end_matches('/').to_owned()
}

fn resolve_url(snapshot: &Snapshot, url: &url::Url, profile: Option<&str>) -> Result<OAuthServer, ConnectError> {
    let wanted = comparable(url);
    let mut matches: Vec<OAuthServer> = oauth_servers(snapshot)
        .into_iter()
        .filter(|s| comparable(&s.url) == wanted)
        .filter(|s| profile.is_none_or(|p| s.home.display_profile() == p))
        .collect();
    let shown = crate::view::status::redact_url(url.as_str());
    match matches.len() {
        0 => Err(ConnectError::NotFound { name: shown, profile: profile.map(str::to_owned) }),
        1 => Ok(matches.remove(0)),
        _ => {
            // The default home wins, as for names.
            if let Some(i) = matches.iter().position(|s| s.home.profile.is_none()) {
                return Ok(matches.remove(i));
            }
            let profiles = matches.iter().map(|s| s.home.display_profile().to_owned()).collect::<Vec<_>>().join(", ");
            Err(ConnectError::Ambiguous { name: shown, profiles })
        }
    }
}

/// Whether a token expiring at `expires_at`, obtained at `obtained_at`,
/// should be refreshed before it is sent at `now` (epoch seconds). Without
/// an expiry it is used until the server refuses it.
pub fn refresh_due(expires_at: Option<f64>, obtained_at: f64, now: f64) -> bool {
    let Some(expires_at) = expires_at else { return false };
    let lifetime = (expires_at - obtained_at).max(0.0);
    expires_at - now <= DUE_MARGIN_SECS.min(lifetime / 4.0)
}

/// The token in use.
#[derive(Debug, Clone)]
struct Current {
    token: SecretString,
    expires_at: Option<f64>,
    obtained_at: f64,
}

impl Current {
    fn of(record: &CredentialRecord) -> Self {
        Self {
            token: record.tokens.access_token.clone(),
            expires_at: record.tokens.expires_at,
            obtained_at: record.obtained_at,
        }
    }
}

/// One server's bearer token, from the vault, refreshed through the shared
/// transaction when due or refused. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Credentials {
    vault: Vault,
    refresher: Refresher,
    server: OAuthServer,
    current: tokio::sync::Mutex<Current>,
    /// Why the last attempt to get a usable token failed (for the MCP error
    /// of the request that failed with it); cleared by the next success.
    failure: Mutex<Option<ProxyError>>,
    /// Set when only a new sign-in helps: no request goes out (and no dead
    /// refresh token is presented again for each one) until the vault holds
    /// new credentials — a sign-in in the tray revives a running proxy.
    gone: Mutex<Option<ProxyError>>,
}

impl Credentials {
    /// The vault's credentials for `server`; refuses when there are none or
    /// the vault says a new sign-in is needed.
    pub async fn open(vault: Vault, refresher: Refresher, server: OAuthServer) -> Result<Self, ProxyError> {
        let record = load(&vault, &server).await?;
        let Some(record) = record else { return Err(not_signed_in(&server)) };
        if let Some(failure) = record.last_error.as_ref().filter(|f| f.needs_reauth) {
            return Err(sign_in_again(&server, &failure.message));
        }
        let current = tokio::sync::Mutex::new(Current::of(&record));
        Ok(Self { vault, refresher, server, current, failure: Mutex::new(None), gone: Mutex::new(None) })
    }

    /// The server these credentials are for.
    pub fn server(&self) -> &OAuthServer {
        &self.server
    }

    /// The token to send now, refreshed first when due.
    pub async fn bearer(&self) -> Result<SecretString, ProxyError> {
        let mut current = self.current.lock().await;
        if let Some(gone) = self.gone() {
            match load(&self.vault, &self.server).await? {
                Some(record)
                    if record.tokens.access_token != current.token
                        && record.last_error.as_ref().is_none_or(|f| !f.needs_reauth) =>
                {
                    tracing::info!(server = %self.server.name, "signed in again; using the new credentials");
                    *current = Current::of(&record);
                    self.set_gone(None);
                }
                _ => {
                    self.set_failure(Some(gone.clone()));
                    return Err(gone);
                }
            }
        }
        if refresh_due(current.expires_at, current.obtained_at, now()) {
            self.renew(&mut current).await?;
        }
        Ok(current.token.clone())
    }

    /// The server refused `token`: the token to try once more (another
    /// task's or process's renewal, or a refresh now).
    pub async fn refused(&self, token: &SecretString) -> Result<SecretString, ProxyError> {
        let mut current = self.current.lock().await;
        if current.token != *token {
            return Ok(current.token.clone());
        }
        self.renew(&mut current).await?;
        Ok(current.token.clone())
    }

    /// The server refused a freshly renewed token too: only a new sign-in
    /// helps. Notes it in the vault (the tray raises its notice) and returns
    /// the error for the client.
    pub async fn give_up(&self) -> ProxyError {
        let reason = "the server refused a freshly refreshed token".to_owned();
        self.refresher.note_rejected(&self.vault, &self.server, &RefreshError::NeedsReauth(reason.clone())).await;
        let error = sign_in_again(&self.server, &reason);
        self.set_failure(Some(error.clone()));
        self.set_gone(Some(error.clone()));
        error
    }

    async fn renew(&self, current: &mut Current) -> Result<(), ProxyError> {
        let result = self.refresher.refresh_replacing(&self.vault, &self.server, &current.token).await;
        let error = match result {
            Ok(_) => match load(&self.vault, &self.server).await {
                Ok(Some(record)) => {
                    *current = Current::of(&record);
                    return Ok(());
                }
                Ok(None) => not_signed_in(&self.server),
                Err(e) => e,
            },
            Err(RefreshError::NotConnected) => not_signed_in(&self.server),
            // Noted in the vault by the refresh transaction.
            Err(RefreshError::NeedsReauth(reason)) => sign_in_again(&self.server, &reason),
            Err(RefreshError::Transient(reason) | RefreshError::Failed(reason)) => {
                ProxyError::Unavailable { server: self.server.name.clone(), reason }
            }
        };
        if matches!(error, ProxyError::NotSignedIn { .. } | ProxyError::SignInAgain { .. }) {
            self.set_gone(Some(error.clone()));
        }
        self.set_failure(Some(error.clone()));
        Err(error)
    }

    fn gone(&self) -> Option<ProxyError> {
        self.gone.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_gone(&self, gone: Option<ProxyError>) {
        *self.gone.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = gone;
    }

    fn set_failure(&self, failure: Option<ProxyError>) {
        *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = failure;
    }

    /// Why the last attempt failed, if it did.
    pub fn failure(&self) -> Option<ProxyError> {
        self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn not_signed_in(server: &OAuthServer) -> ProxyError {
    ProxyError::NotSignedIn { server: server.name.clone(), connect: connect_command(server) }
}

fn sign_in_again(server: &OAuthServer, reason: &str) -> ProxyError {
    ProxyError::SignInAgain { server: server.name.clone(), connect: connect_command(server), reason: reason.to_owned() }
}

async fn load(vault: &Vault, server: &OAuthServer) -> Result<Option<CredentialRecord>, ProxyError> {
    let (v, key) = (vault.clone(), server.vault_key());
    crate::vault::blocking(move || v.load(&key)).await.map_err(|e| match e {
        VaultError::Corrupt { .. } => sign_in_again(server, &e.to_string()),
        other => ProxyError::Unavailable { server: server.name.clone(), reason: other.to_string() },
    })
}

/// The Streamable HTTP client of the relay: reqwest (our [`Http`] client,
/// with its timeouts and redirect rules), with the vault's token on every
/// request instead of a fixed header, and one renewal and retry on 401.
#[derive(Clone)]
pub struct VaultAuthClient {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
}

impl std::fmt::Debug for VaultAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultAuthClient").field("server", &self.credentials.server.name).finish_non_exhaustive()
    }
}

type HttpError = StreamableHttpError<reqwest::Error>;

impl VaultAuthClient {
    /// Requests through `http` with `credentials`' token.
    pub fn new(http: &Http, credentials: Arc<Credentials>) -> Self {
        Self { http: http.reqwest().clone(), credentials }
    }

    /// Runs `call` with the current token; on 401, once more with a renewed one.
    async fn authorized<T, F, Fut>(&self, call: F) -> Result<T, HttpError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let no_token = |e: ProxyError| HttpError::UnexpectedServerResponse(e.to_string().into());
        let token = self.credentials.bearer().await.map_err(no_token)?;
        match call(token.expose().to_owned()).await {
            Err(HttpError::AuthRequired(_)) => {
                tracing::info!(server = %self.credentials.server.name, "the server refused the token; renewing it once");
                let fresh = self.credentials.refused(&token).await.map_err(no_token)?;
                match call(fresh.expose().to_owned()).await {
                    Err(HttpError::AuthRequired(_)) => Err(no_token(self.credentials.give_up().await)),
                    other => {
                        self.credentials.set_failure(None);
                        other
                    }
                }
            }
            other => other,
        }
    }
}

type Headers = HashMap<http::HeaderName, http::HeaderValue>;

impl StreamableHttpClient for VaultAuthClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.authorized(|token| {
            let (uri, message, session_id, headers) =
                (uri.clone(), message.clone(), session_id.clone(), custom_headers.clone());
            async move { self.http.post_message(uri, message, session_id, Some(token), headers).await }
        })
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.authorized(|token| {
            let (uri, message, session_id, headers) =
                (uri.clone(), message.clone(), session_id.clone(), custom_headers.clone());
            async move {
                self.http
                    .post_message_with_max_sse_event_size(
                        uri,
                        message,
                        session_id,
                        Some(token),
                        headers,
                        max_sse_event_size,
                    )
                    .await
            }
        })
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.authorized(|token| {
            let (uri, message, session_id, headers) =
                (uri.clone(), message.clone(), session_id.clone(), custom_headers.clone());
            async move {
                self.http
                    .post_message_with_response_limits(uri, message, session_id, Some(token), headers, limits)
                    .await
            }
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<(), HttpError> {
        self.authorized(|token| {
            let (uri, session_id, headers) = (uri.clone(), session_id.clone(), custom_headers.clone());
            async move { self.http.delete_session(uri, session_id, Some(token), headers).await }
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>, HttpError> {
        self.authorized(|token| {
            let (uri, session_id, last, headers) =
                (uri.clone(), session_id.clone(), last_event_id.clone(), custom_headers.clone());
            async move { self.http.get_stream(uri, session_id, last, Some(token), headers).await }
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>, HttpError> {
        self.authorized(|token| {
            let (uri, session_id, last, headers) =
                (uri.clone(), session_id.clone(), last_event_id.clone(), custom_headers.clone());
            async move {
                self.http
                    .get_stream_with_max_sse_event_size(uri, session_id, last, Some(token), headers, max_sse_event_size)
                    .await
            }
        })
        .await
    }
}

/// Where the relay sends what the client says.
#[derive(Debug)]
pub enum Upstream {
    /// The remote server, with these credentials.
    Remote(Arc<Credentials>),
    /// No usable credentials: every request is answered with this reason.
    Refused(ProxyError),
}

/// The answer the proxy gives itself to request `id`.
fn error_answer(id: RequestId, message: String) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::error(ErrorData::new(ErrorCode(PROXY_ERROR_CODE), message, None), Some(id))
}

fn request_id(message: &ClientJsonRpcMessage) -> Option<RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request) => Some(request.id.clone()),
        _ => None,
    }
}

async fn next_from<T: Transport<rmcp::RoleClient>>(remote: &mut Option<T>) -> Option<ServerJsonRpcMessage> {
    match remote {
        Some(remote) => remote.receive().await,
        None => std::future::pending().await,
    }
}

/// Relays MCP between the client on `read`/`write` (newline-delimited
/// JSON-RPC, as MCP's stdio transport) and `upstream`, until the client
/// closes its side. Requests run concurrently: a long `tools/call` does not
/// hold back a `notifications/cancelled` for it.
pub async fn relay<R, W>(upstream: Upstream, http: &Http, read: R, write: W) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use futures_util::StreamExt;

    let mut local = AsyncRwTransport::<RoleServer, R, W>::new_server(read, write);
    let (mut remote, credentials, mut closed) = match upstream {
        Upstream::Remote(credentials) => {
            let config = StreamableHttpClientTransportConfig::with_uri(credentials.server.url.as_str().to_owned());
            let client = VaultAuthClient::new(http, credentials.clone());
            (Some(StreamableHttpClientTransport::with_client(client, config)), Some(credentials), None)
        }
        Upstream::Refused(reason) => (None, None, Some(reason.to_string())),
    };
    let failure = |e: &dyn std::fmt::Display| {
        credentials
            .as_ref()
            .and_then(|c| c.failure())
            .map_or_else(|| format!("the remote MCP server failed: {e}"), |f| f.to_string())
    };
    // Messages handed to the HTTP side, each until its POST is done. rmcp's
    // transport queues a message when its send future is first polled, so
    // they are polled in this task, first (`biased`), before the next
    // message is read: the remote gets them in the client's order.
    let mut sending = futures_util::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some((id, result)) = sending.next(), if !sending.is_empty() => {
                let result: Result<(), HttpError> = result;
                if let (Err(e), Some(id)) = (result, id) {
                    local.send(error_answer(id, failure(&e))).await?;
                }
            }
            outgoing = next_from(&mut remote) => match outgoing {
                Some(message) => local.send(message).await?,
                None => {
                    // The HTTP side ended (its session could not start or was lost).
                    let reason = credentials
                        .as_ref()
                        .and_then(|c| c.failure())
                        .map_or_else(|| "the remote MCP server closed the connection".to_owned(), |f| f.to_string());
                    tracing::warn!(%reason, "the remote side of the proxy ended");
                    closed = Some(reason);
                    remote = None;
                }
            },
            incoming = local.receive() => {
                let Some(message) = incoming else { break };
                let id = request_id(&message);
                match (&mut remote, &closed) {
                    (Some(remote), None) => {
                        let send = remote.send(message);
                        sending.push(async move { (id, send.await) });
                    }
                    _ => {
                        if let Some(id) = id {
                            local.send(error_answer(id, closed.clone().unwrap_or_default())).await?;
                        }
                    }
                }
            }
        }
    }
    // What the client sent last still reaches the remote.
    while let Some((id, result)) = sending.next().await {
        if let (Err(e), Some(_)) = (result, id) {
            tracing::debug!(error = %e, "a last message to the remote failed");
        }
    }
    if let Some(mut remote) = remote {
        // Ends the remote session (DELETE) before the process exits.
        let _ = remote.close().await;
    }
    Ok(())
}

/// The agent's files for a server used through the proxy: written only when
/// the agent already has this server's token file (it uses the server too,
/// and must not be left holding a spent refresh token); otherwise nothing is
/// written, so the tokens of a proxy-only server never touch the disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentFilesIfPresent;

impl Exporter for AgentFilesIfPresent {
    fn check(&self, target: &ExportTarget) -> Result<(), ExportError> {
        HermesExporter.check(target)
    }

    fn export(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<(), ExportError> {
        if HermesExporter.agent_tokens(target).is_some() {
            HermesExporter.export(target, record)?;
        }
        Ok(())
    }

    fn update_tokens(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<bool, ExportError> {
        HermesExporter.update_tokens(target, record)
    }

    fn remove(&self, target: &ExportTarget) -> Result<(), ExportError> {
        HermesExporter.remove(target)
    }

    fn agent_tokens(&self, target: &ExportTarget) -> Option<TokenRecord> {
        HermesExporter.agent_tokens(target)
    }

    fn agent_registration(&self, target: &ExportTarget) -> Option<(ClientRecord, Option<Value>)> {
        HermesExporter.agent_registration(target)
    }
}

/// `{"Authorization": "Bearer …"}` for `credentials`, refreshed first when
/// due: what `mcp-auth headers` prints for a client's headers helper.
pub async fn authorization_headers(credentials: &Credentials) -> Result<serde_json::Value, ProxyError> {
    let token = credentials.bearer().await?;
    Ok(serde_json::json!({ "Authorization": format!("Bearer {}", token.expose()) }))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::fresh(Some(4000.0), 400.0, 1000.0, false)]
    #[case::last_30_s_of_an_hour(Some(4000.0), 400.0, 3971.0, true)]
    #[case::expired(Some(4000.0), 400.0, 5000.0, true)]
    #[case::short_token_fresh(Some(1012.0), 1000.0, 1005.0, false)]
    #[case::short_token_last_quarter(Some(1012.0), 1000.0, 1009.5, true)]
    #[case::no_expiry(None, 0.0, 1e12, false)]
    #[case::expiry_before_obtained(Some(10.0), 20.0, 5.0, false)]
    #[case::expiry_before_obtained_past(Some(10.0), 20.0, 10.0, true)]
    fn when_a_refresh_is_due(
        #[case] expires_at: Option<f64>,
        #[case] obtained_at: f64,
        #[case] now: f64,
        #[case] due: bool,
    ) {
        assert_eq!(refresh_due(expires_at, obtained_at, now), due);
    }

    /// A root with `linear` and `notion` in the default home, `linear` and
    /// `jira` in profile `work` (`jira` at the same URL as `notion` in the
    /// default home), and `notes` (stdio) in the default home.
    fn snapshot() -> (tempfile::TempDir, Snapshot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |home: &std::path::Path, yaml: &str| {
            std::fs::create_dir_all(home).expect("mkdir");
            std::fs::write(home.join("config.yaml"), yaml).expect("write");
        };
        write(
            dir.path(),
            "mcp_servers:\n  linear:\n    url: https://mcp.linear.app/mcp\n    auth: oauth\n  notion:\n    url: https://mcp.notion.com/mcp\n    auth: oauth\n  notes:\n    command: notes-mcp\n",
        );
        write(
            &dir.path().join("profiles/work"),
            "mcp_servers:\n  linear:\n    url: https://linear.work.example/mcp\n    auth: oauth\n  jira:\n    url: https://mcp.notion.com/mcp/\n    auth: oauth\n",
        );
        let snapshot =
            crate::hermes::snapshot::SnapshotLoader::new().load(&crate::hermes::home::HermesRoot::at(dir.path()));
        (dir, snapshot)
    }

    #[rstest]
    #[case::name_in_the_default_home("linear", None, Ok(("linear", None)))]
    #[case::name_with_profile("linear", Some("work"), Ok(("linear", Some("work"))))]
    #[case::profile_qualified_name("work/linear", None, Ok(("linear", Some("work"))))]
    #[case::name_only_in_a_profile("jira", None, Ok(("jira", Some("work"))))]
    #[case::url("https://mcp.linear.app/mcp", None, Ok(("linear", None)))]
    #[case::url_with_trailing_slash("https://mcp.linear.app/mcp/", None, Ok(("linear", None)))]
    #[case::url_of_a_profile("https://linear.work.example/mcp", None, Ok(("linear", Some("work"))))]
    #[case::url_in_two_homes_default_wins("https://mcp.notion.com/mcp", None, Ok(("notion", None)))]
    #[case::url_in_two_homes_with_profile("https://mcp.notion.com/mcp", Some("work"), Ok(("jira", Some("work"))))]
    #[case::unknown_url(
        "https://elsewhere.example/mcp?key=secret",
        None,
        Err("no server `https://elsewhere.example/mcp?key=[redacted]` in the agent's config")
    )]
    #[case::unknown_name("github", None, Err("no server `github` in the agent's config"))]
    #[case::not_oauth("notes", None, Err("server `notes` does not use OAuth (`auth: oauth`); nothing to sign in to"))]
    fn resolving_a_server(
        #[case] spec: &str,
        #[case] profile: Option<&str>,
        #[case] want: Result<(&str, Option<&str>), &str>,
    ) {
        let (_dir, snapshot) = snapshot();
        let got = resolve_server(&snapshot, spec, profile).map(|s| (s.name, s.home.profile)).map_err(|e| e.to_string());
        let want = want.map(|(n, p)| (n.to_owned(), p.map(str::to_owned))).map_err(str::to_owned);
        assert_eq!(got, want);
    }

    #[test]
    fn errors_name_the_command_that_helps() {
        let error = ProxyError::SignInAgain {
            server: "linear".into(),
            connect: "mcp-auth connect linear".into(),
            reason: "the refresh token was rejected (invalid_grant)".into(),
        };
        assert_eq!(
            error.to_string(),
            "sign in to linear again (tray or `mcp-auth connect linear`): the refresh token was rejected (invalid_grant)"
        );
    }
}

//! The MCP authorization flow for one server, from the first 401 to tokens.
//!
//! Built on rmcp's `AuthorizationManager` (discovery, PRM/issuer checks,
//! registration, PKCE S256, `state`, RFC 9207 `iss`, scope selection, code
//! exchange), with every request going through our [`Http`] client, and with
//! our own rules on top where rmcp is too lenient for us:
//! - S256 must be advertised: discovered metadata without it is refused
//!   (rmcp only warns when the field is absent). The 2025-03-26 legacy
//!   fallback (no metadata at all) is the one exception: there is nothing to
//!   check, and those servers must keep working;
//! - only Bearer tokens are accepted (the agent cannot use DPoP tokens);
//! - the browser step goes through our [`CallbackRouter`], so a loopback
//!   redirect and a deep link are checked the same way;
//! - registrations are reused when they belong to the same issuer and name
//!   our redirect URI, and redone once if the server no longer knows them.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::auth::{AuthorizationMetadata, AuthorizationMetadataSource, OAuthClientConfig};
use rmcp::transport::{AuthError, AuthorizationManager, OAuthHttpClient};
use url::Url;

use super::browser::{Browser, BrowserError};
use super::callback::{CallbackError, CallbackRouter, IssCheck};
use super::endpoint::{UnsafeUrl, check_endpoint, unsafe_metadata_endpoint};
use super::http::Http;
use super::omit_resource::OmitResource;
use super::tokens::{TokenError, TokenSet};
use super::www_authenticate::{BearerChallenge, bearer_challenge};
use crate::mcp::client::{McpError, McpSession, Wire};
use crate::oauth::client::ClientRecord;
use crate::util::secret::SecretString;
use crate::util::text::error_text;
use crate::util::text::server_text;

/// Authorizations allowed per session (sign-in plus step-ups): a server
/// that keeps asking for more scope must not make us loop.
pub const MAX_AUTHORIZATIONS: u32 = 3;

/// The MCP protocol version we speak in `initialize` (the newest that has an
/// `initialize` handshake, understood by 2025-06-18+ servers).
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// One server to authorize against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name in the agent's config (for messages).
    pub name: String,
    /// The MCP endpoint.
    pub url: Url,
    /// Pre-registered client id (from the agent's config).
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// The issuer `client_secret` belongs to (config `oauth.issuer`). Without
    /// it, the issuer the secret was first used with (kept in the vault
    /// record) binds it. See [`check_secret_binding`].
    pub issuer: Option<String>,
    /// Scope to request when neither the challenge nor the PRM names one.
    pub scope: Option<String>,
    /// Scope asked for on top of whatever is selected: a step-up after a
    /// check found the server wanting more access (the union of what was
    /// granted and what it asks for).
    pub extra_scope: Option<String>,
    /// `client_name` for registration.
    pub client_name: String,
    /// A Client ID Metadata Document URL, used when the server supports CIMD.
    pub client_metadata_url: Option<String>,
    /// Leave out `resource` (servers that reject it, e.g. Microsoft Entra).
    pub omit_resource: bool,
    /// How long to wait for the browser step.
    pub timeout: Duration,
    /// `oauth.user_agent`: the `User-Agent` of token requests only.
    pub user_agent: Option<String>,
    /// `oauth.application_type` and `oauth.token_endpoint_auth_method` for a
    /// new registration.
    pub registration: super::registration_options::RegistrationOptions,
}

/// Steps of a sign-in, for progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Probing,
    Discovering,
    Registering,
    /// The browser was sent to the authorization page.
    WaitingForBrowser {
        url: String,
        timeout: Duration,
    },
    ExchangingCode,
    /// Device flow (RFC 8628): the user opens `verification_uri` anywhere and
    /// enters `user_code` (shown to them by design; not a credential on its own).
    WaitingForDevice {
        user_code: String,
        verification_uri: String,
        /// The same URL with the code filled in, when the server offers one.
        verification_uri_complete: Option<String>,
        timeout: Duration,
    },
}

/// Everything a successful sign-in produced.
pub struct Authorized {
    pub tokens: TokenSet,
    pub client: ClientRecord,
    /// What discovery found (metadata, issuer, endpoints).
    pub discovered: Discovered,
    /// Authorizations made for this session so far (the sign-in and step-ups).
    pub authorizations: u32,
    /// rmcp's manager, configured and holding the tokens (for MCP calls and step-up).
    pub manager: AuthorizationManager,
}

impl std::fmt::Debug for Authorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("tokens", &self.tokens)
            .field("client", &self.client)
            .field("issuer", &self.discovered.issuer)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{url} answered without asking for authorization (HTTP {status}); no sign-in needed")]
    NoAuthNeeded { url: String, status: u16 },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error(
        "the authorization server {issuer} does not advertise PKCE S256 (code_challenge_methods_supported: {advertised}); refusing to sign in without it"
    )]
    NoS256 { issuer: String, advertised: String },
    /// An endpoint the server named fails [`check_endpoint`]: nothing was
    /// opened or sent to it.
    #[error("refusing the authorization server's {field} `{url}`: {reason}; nothing was opened or sent")]
    UnsafeEndpoint { field: &'static str, url: String, reason: UnsafeUrl },
    /// The resource's metadata names another authorization server than the
    /// one the pre-registered client secret belongs to.
    #[error(
        "refusing to send the client secret configured for `{server}` to {found}: it belongs to the authorization server {bound} ({why}). If the server really moved, set `oauth.issuer: {found}` in its config (or sign out and connect again)"
    )]
    SecretIssuerMismatch { server: String, bound: String, found: String, why: &'static str },
    #[error("the protected resource metadata is not for this server: {0}")]
    ResourceMismatch(String),
    #[error("the authorization server metadata names issuer `{received}`, expected `{expected}`")]
    IssuerMismatch { expected: String, received: String },
    #[error(
        "the authorization server {issuer} offers no device authorization (no device_authorization_endpoint in its metadata); sign in with the browser instead (--no-browser or --paste work over SSH)"
    )]
    NoDeviceEndpoint { issuer: String },
    #[error("client registration failed: {0}")]
    Registration(String),
    /// Every [`BrowserError`] says that it is about the browser; transparent,
    /// so its own source is printed once by the chain.
    #[error(transparent)]
    Browser(#[from] BrowserError),
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error("the authorization code exchange failed: {0}")]
    Exchange(String),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    fn from_auth(e: AuthError) -> Self {
        match e {
            AuthError::AuthorizationServerMismatch { expected_issuer, received_issuer } => Self::IssuerMismatch {
                expected: server_text(&expected_issuer),
                received: server_text(&received_issuer),
            },
            AuthError::AuthorizationServerMissingIssuer { expected_issuer } => {
                Self::Callback(CallbackError::IssuerMissing { expected: expected_issuer })
            }
            AuthError::ProtectedResourceMetadataInvalid { url, reason } => {
                Self::ResourceMismatch(server_text(&format!("{url}: {reason:?}")))
            }
            AuthError::PkceUnsupported => {
                Self::NoS256 { issuer: "the server".to_owned(), advertised: "no S256".to_owned() }
            }
            // rmcp's messages quote the server's answer: made safe here, once.
            AuthError::RegistrationFailed(m) => Self::Registration(registration_refusal(&m)),
            AuthError::TokenExchangeFailed(m) => Self::Exchange(server_text(&m)),
            AuthError::DiscoveryRequestFailed { url, source } => {
                Self::Unreachable { url: url.to_string(), reason: error_text(&*source) }
            }
            AuthError::AuthorizationServersUnavailable { resource_metadata_url, authorization_servers } => {
                Self::Discovery(format!(
                    "none of the authorization servers named by {resource_metadata_url} answered with usable metadata: {}",
                    authorization_servers.join(", ")
                ))
            }
            AuthError::MetadataError(m) | AuthError::OAuthError(m) => Self::Discovery(server_text(&m)),
            AuthError::NoAuthorizationSupport => {
                Self::Discovery("the server does not support OAuth authorization".to_owned())
            }
            other => Self::Other(server_text(&other.to_string())),
        }
    }
}

/// rmcp's registration failure (`HTTP 403 Forbidden: <body>`) in words: an
/// RFC 7591 §3.2.2 error body as its `error` and `error_description`, decoded
/// and made safe; anything else made safe as it is.
fn registration_refusal(message: &str) -> String {
    let parsed = message.split_once(": ").and_then(|(status, body)| {
        let body: serde_json::Value = serde_json::from_str(body).ok()?;
        let error = body.get("error")?.as_str()?;
        let description = body.get("error_description").and_then(serde_json::Value::as_str);
        Some(match description {
            Some(d) => format!("{status}: {} ({})", server_text(error), server_text(d)),
            None => format!("{status}: {}", server_text(error)),
        })
    });
    parsed.unwrap_or_else(|| server_text(message))
}

impl From<AuthError> for EngineError {
    fn from(e: AuthError) -> Self {
        Self::from_auth(e)
    }
}

/// What the unauthenticated `initialize` told us.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// 401 with a Bearer challenge (raw header values and the parsed one).
    Challenge { headers: Vec<String>, bearer: BearerChallenge },
    /// 401 without a usable challenge, or another status: discovery must guess.
    NoChallenge { status: u16 },
    /// The server answered without asking for authorization.
    Open { status: u16 },
}

/// The engine: shared by all flows of the process.
#[derive(Clone)]
pub struct Engine {
    http: Http,
    router: CallbackRouter,
    browser: Arc<dyn Browser>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("router", &self.router).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine using `http` for every request, `router` for redirects, and
    /// `browser` to show authorization pages.
    pub fn new(http: Http, router: CallbackRouter, browser: Arc<dyn Browser>) -> Self {
        Self { http, router, browser }
    }

    /// The HTTP client.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Sends an unauthenticated MCP `initialize` to `url` and reads the answer.
    #[tracing::instrument(skip_all, fields(url = %crate::view::status::redact_url(url.as_str())))]
    pub async fn probe(&self, url: &Url) -> Result<Probe, EngineError> {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-auth-tray", "version": env!("CARGO_PKG_VERSION")}
            }
        });
        let request = self
            .http
            .reqwest_no_redirects()
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
            .header("MCP-Protocol-Version", PROTOCOL_VERSION)
            .json(&body)
            .build()
            .map_err(|e| EngineError::Other(format!("cannot build the probe request: {e}")))?;
        let response = self
            .http
            .send(request, false)
            .await
            .map_err(|e| EngineError::Unreachable { url: url.to_string(), reason: error_text(&e) })?;
        let status = response.status.as_u16();
        let headers: Vec<String> = response
            .headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        if status == 401 {
            return Ok(match bearer_challenge(headers.iter().map(String::as_str)) {
                Some(bearer) => Probe::Challenge { headers, bearer },
                None => Probe::NoChallenge { status },
            });
        }
        if response.status.is_success() {
            return Ok(Probe::Open { status });
        }
        Ok(Probe::NoChallenge { status })
    }

    /// Lists tools without a token; `Some(challenge)` when that is refused.
    pub async fn probe_tools(&self, target: &Target) -> Result<Option<Probe>, EngineError> {
        let outcome = async {
            let session = McpSession::connect(&self.http, target.url.as_str(), None, Wire::Initialize).await?;
            let listed = session.list_tools().await;
            session.close().await;
            listed
        }
        .await;
        match outcome {
            Ok(_) => Ok(None),
            Err(McpError::Auth { challenge, raw }) => {
                Ok(Some(Probe::Challenge { headers: vec![raw], bearer: challenge }))
            }
            Err(McpError::Other(reason)) => Err(EngineError::Unreachable { url: target.url.to_string(), reason }),
        }
    }

    /// The client rmcp's requests for `target` go through.
    pub fn oauth_http(&self, target: &Target) -> Arc<dyn OAuthHttpClient> {
        let http = self.http.with_token_user_agent(target.user_agent.as_deref());
        let inner: Arc<dyn OAuthHttpClient> =
            if target.omit_resource { Arc::new(OmitResource(http)) } else { Arc::new(http) };
        Arc::new(super::registration_options::WithRegistrationOptions(inner, target.registration.clone()))
    }

    /// The unauthenticated probe, and `tools/list` when `initialize` is let
    /// through (some servers guard only the tools).
    pub async fn probe_guarded(&self, target: &Target) -> Result<Probe, EngineError> {
        let probe = self.probe(&target.url).await?;
        let Probe::Open { status } = probe else { return Ok(probe) };
        self.probe_tools(target).await?.ok_or_else(|| EngineError::NoAuthNeeded { url: target.url.to_string(), status })
    }

    /// Discovers the authorization server for `target`, starting from a
    /// probe's challenge. Returns rmcp's manager with the metadata set.
    pub async fn discover(
        &self,
        target: &Target,
        probe: &Probe,
    ) -> Result<(AuthorizationManager, Discovered), EngineError> {
        self.discover_via(target, probe, self.oauth_http(target)).await
    }

    /// [`Engine::discover`] with rmcp's requests going through `client`
    /// (which wraps [`Engine::oauth_http`]): the device flow adjusts its
    /// registration there, and `doctor` watches every request.
    #[tracing::instrument(skip_all, fields(server = %target.name), err)]
    pub async fn discover_via(
        &self,
        target: &Target,
        probe: &Probe,
        client: Arc<dyn OAuthHttpClient>,
    ) -> Result<(AuthorizationManager, Discovered), EngineError> {
        let challenge = match probe {
            Probe::Challenge { headers, .. } => {
                headers.iter().find(|h| h.to_ascii_lowercase().contains("bearer")).cloned()
            }
            _ => None,
        };
        let mut manager = AuthorizationManager::new_with_oauth_http_client(target.url.as_str(), client).await?;
        let resolution = manager.resolve_metadata_from_challenge(challenge.as_deref()).await?;
        let legacy = resolution.source == AuthorizationMetadataSource::LegacyEndpointFallback;
        let metadata = resolution.metadata;
        // Before anything is opened or sent: every endpoint must be safe.
        let json = serde_json::to_value(&metadata).unwrap_or(serde_json::Value::Null);
        if let Some((field, url, reason)) = unsafe_metadata_endpoint(&json) {
            return Err(EngineError::UnsafeEndpoint { field, url, reason });
        }
        if !legacy {
            require_s256(&metadata)?;
        }
        let discovered = Discovered::from_metadata(&metadata, legacy);
        manager.set_metadata(metadata);
        Ok((manager, discovered))
    }

    /// Runs the whole flow: probe, discovery, client identity, browser,
    /// code exchange. `stored` is a registration kept from an earlier sign-in.
    #[tracing::instrument(skip_all, fields(server = %target.name), err)]
    pub async fn authorize(
        &self,
        target: &Target,
        redirect_uri: &str,
        stored: Option<(ClientRecord, Option<String>)>,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Authorized, EngineError> {
        let (manager, discovered) = self.find_authorization_server(target, self.oauth_http(target), progress).await?;
        self.authorize_discovered(target, manager, discovered, redirect_uri, stored, progress).await
    }

    /// The probe, then discovery with rmcp's requests through `client`.
    pub async fn find_authorization_server(
        &self,
        target: &Target,
        client: Arc<dyn OAuthHttpClient>,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<(AuthorizationManager, Discovered), EngineError> {
        progress(Step::Probing);
        let probe = self.probe_guarded(target).await?;
        progress(Step::Discovering);
        self.discover_via(target, &probe, client).await
    }

    /// The flow after discovery (used directly for re-authorization).
    pub async fn authorize_discovered(
        &self,
        target: &Target,
        mut manager: AuthorizationManager,
        discovered: Discovered,
        redirect_uri: &str,
        stored: Option<(ClientRecord, Option<String>)>,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Authorized, EngineError> {
        let scopes = initial_scopes(&manager, target).await;
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();

        progress(Step::Registering);
        check_secret_binding(target, stored.as_ref(), &discovered)?;
        let reusable = reusable_registration(stored, &discovered, redirect_uri);
        let (client, source) =
            self.client_identity(&mut manager, target, &discovered, redirect_uri, &scope_refs, reusable).await?;
        match self.browser_step(&manager, target, &discovered, &scope_refs, progress).await {
            Ok(tokens) => Ok(Authorized { tokens, client, discovered, authorizations: 1, manager }),
            // A kept registration the server no longer knows: register anew, once.
            Err(e) if source == ClientSource::Kept && rejects_client(&e) => {
                tracing::info!(error = %e, "the stored registration was rejected; registering again");
                progress(Step::Registering);
                let (client, _) =
                    self.client_identity(&mut manager, target, &discovered, redirect_uri, &scope_refs, None).await?;
                let tokens = self.browser_step(&manager, target, &discovered, &scope_refs, progress).await?;
                Ok(Authorized { tokens, client, discovered, authorizations: 1, manager })
            }
            Err(e) => Err(e),
        }
    }

    /// Pre-registered client, else CIMD, else a kept registration, else DCR
    /// (through `manager`'s HTTP client). Configures `manager` with it and
    /// returns the registration and where it came from.
    pub async fn client_identity(
        &self,
        manager: &mut AuthorizationManager,
        target: &Target,
        discovered: &Discovered,
        redirect_uri: &str,
        scopes: &[&str],
        stored: Option<ClientRecord>,
    ) -> Result<(ClientRecord, ClientSource), EngineError> {
        let record = |client_id: String, secret: Option<SecretString>, redirect_uris: Vec<String>| ClientRecord {
            token_endpoint_auth_method: discovered.auth_method_for(secret.is_some()).to_owned(),
            client_id,
            client_secret: secret,
            redirect_uris,
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
            client_name: Some(target.client_name.clone()),
            client_id_issued_at: Some(crate::util::time::now_secs() as i64),
        };
        if let Some(id) = &target.client_id {
            let mut config = OAuthClientConfig::new(id.clone(), redirect_uri);
            if let Some(secret) = &target.client_secret {
                config = config.with_client_secret(secret.expose().to_owned());
            }
            manager.configure_client(config)?;
            let client = record(id.clone(), target.client_secret.clone(), vec![redirect_uri.to_owned()]);
            return Ok((client, ClientSource::Configured));
        }
        if let (Some(cimd), true) = (&target.client_metadata_url, discovered.supports_cimd) {
            // The server fetches it; CIMD requires https, and so do we.
            if let Err(reason) = check_endpoint(cimd) {
                let url = super::endpoint::shown(cimd);
                return Err(EngineError::UnsafeEndpoint { field: "client_metadata_url", url, reason });
            }
            manager.configure_client(OAuthClientConfig::new(cimd.clone(), redirect_uri))?;
            let mut r = record(cimd.clone(), None, vec![redirect_uri.to_owned()]);
            r.token_endpoint_auth_method = "none".to_owned();
            return Ok((r, ClientSource::MetadataDocument));
        }
        if let Some(client) = stored {
            steer_auth_method(manager, discovered, &client.token_endpoint_auth_method)?;
            let mut config = OAuthClientConfig::new(client.client_id.clone(), redirect_uri);
            if let Some(secret) = &client.client_secret {
                config = config.with_client_secret(secret.expose().to_owned());
            }
            manager.configure_client(config)?;
            return Ok((client, ClientSource::Kept));
        }
        if !discovered.can_register {
            return Err(EngineError::Registration(format!(
                "the authorization server offers no dynamic client registration; configure `oauth.client_id` for `{}` in the agent's config",
                target.name
            )));
        }
        let mut config = manager.register_client(&target.client_name, redirect_uri, scopes).await?;
        // A configured method is what we registered for: rmcp must use it too.
        let configured_method = target.registration.token_endpoint_auth_method.as_deref();
        if let Some(method) = configured_method {
            // rmcp builds its token client when a client is configured: again, after steering.
            steer_auth_method(manager, discovered, method)?;
            manager.configure_client(config.clone())?;
        }
        // Servers that only do `none` sometimes hand out a secret anyway; sending it
        // would be using a method they don't offer.
        if discovered.only_public_clients() && config.client_secret.is_some() {
            config.client_secret = None;
            manager.configure_client(config.clone())?;
        }
        let secret = config.client_secret.clone().filter(|s| !s.is_empty()).map(SecretString::new);
        let mut registered = record(config.client_id, secret, vec![redirect_uri.to_owned()]);
        if let (Some(method), Some(_)) = (configured_method, &registered.client_secret) {
            method.clone_into(&mut registered.token_endpoint_auth_method);
        }
        Ok((registered, ClientSource::Registered))
    }

    /// Opens the authorization page, waits for the redirect, exchanges the code.
    async fn browser_step(
        &self,
        manager: &AuthorizationManager,
        target: &Target,
        discovered: &Discovered,
        scopes: &[&str],
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<TokenSet, EngineError> {
        let url = manager.get_authorization_url(scopes).await?;
        self.complete_authorization_url(manager, target, discovered, &url, progress).await
    }

    /// Sends the browser to an authorization URL made by `manager` (a first
    /// sign-in or a step-up) and exchanges the code that comes back.
    pub async fn complete_authorization_url(
        &self,
        manager: &AuthorizationManager,
        target: &Target,
        discovered: &Discovered,
        url: &str,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<TokenSet, EngineError> {
        let mut url = Url::parse(url).map_err(|e| EngineError::Other(format!("bad authorization URL: {e}")))?;
        if target.omit_resource {
            strip_query_param(&mut url, "resource");
        }
        ask_consent_for_offline_access(&mut url);
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| SecretString::new(v.into_owned()))
            .ok_or_else(|| EngineError::Other("the authorization URL has no state".to_owned()))?;
        let iss =
            discovered.issuer.clone().map(|issuer| IssCheck { issuer, required: discovered.iss_parameter_supported });
        let pending = self.router.register(&state, iss);
        // Discovery checked the endpoint; this is the URL the browser really gets.
        super::browser::check_browser_url(url.as_str())?;
        progress(Step::WaitingForBrowser { url: url.to_string(), timeout: target.timeout });
        self.browser.open(url.as_str()).await?;
        let code = pending.wait(target.timeout).await?;
        progress(Step::ExchangingCode);
        let response = manager
            .exchange_code_for_token_with_issuer(code.code.expose(), state.expose(), code.iss.as_deref())
            .await?;
        Ok(TokenSet::from_response(&response)?)
    }
}

impl Engine {
    /// Step-up after a 403 `insufficient_scope`: authorizes again for the
    /// union of the scopes granted so far and `needed` (rmcp computes the
    /// union), and replaces the tokens. At most [`MAX_AUTHORIZATIONS`] per session.
    #[tracing::instrument(skip_all, fields(server = %target.name, needed = %needed), err)]
    pub async fn step_up(
        &self,
        auth: &mut Authorized,
        target: &Target,
        needed: &str,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<(), EngineError> {
        if auth.authorizations >= MAX_AUTHORIZATIONS {
            return Err(EngineError::Other(format!(
                "step-up refused: already authorized {} times for this session and the server still wants more scope ({needed})",
                auth.authorizations
            )));
        }
        auth.authorizations += 1;
        let url = auth.manager.request_scope_upgrade(needed).await.map_err(|e| match e {
            AuthError::InvalidScope(m) => EngineError::Other(format!("step-up refused: {m}")),
            other => other.into(),
        })?;
        auth.tokens = self.complete_authorization_url(&auth.manager, target, &auth.discovered, &url, progress).await?;
        Ok(())
    }
}

/// Where a sign-in's client identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    /// `oauth.client_id` in the agent's config (pre-registered).
    Configured,
    /// A Client ID Metadata Document URL.
    MetadataDocument,
    /// A registration kept from an earlier sign-in.
    Kept,
    /// Registered just now (RFC 7591).
    Registered,
}

/// The scopes a first authorization asks for: the spec's order (challenge,
/// PRM `scopes_supported`), else the configured `oauth.scope`; plus any
/// step-up scope ([`Target::extra_scope`]).
pub async fn initial_scopes(manager: &AuthorizationManager, target: &Target) -> Vec<String> {
    let defaults: Vec<&str> = target.scope.as_deref().map(|s| s.split_whitespace().collect()).unwrap_or_default();
    let mut scopes = manager.select_initial_scopes(&defaults).await;
    for extra in target.extra_scope.as_deref().map(str::split_whitespace).into_iter().flatten() {
        if !scopes.iter().any(|s| s == extra) {
            scopes.push(extra.to_owned());
        }
    }
    scopes
}

/// A pre-registered client secret goes only to the authorization server it
/// belongs to: `oauth.issuer` when configured, else the issuer it was first
/// used with (`stored`, the kept registration, when it is that client). A
/// resource's metadata can name any authorization server, so without this a
/// compromised or hostile resource could collect the secret. Call after
/// discovery, before the client identity is used.
pub fn check_secret_binding(
    target: &Target,
    stored: Option<&(ClientRecord, Option<String>)>,
    discovered: &Discovered,
) -> Result<(), EngineError> {
    let (Some(client_id), Some(_)) = (&target.client_id, &target.client_secret) else {
        return Ok(());
    };
    let (bound, why) = match (&target.issuer, stored) {
        (Some(issuer), _) => (issuer.clone(), "oauth.issuer"),
        (None, Some((client, Some(issuer)))) if client.client_id == *client_id => {
            (issuer.clone(), "the issuer it was first used with")
        }
        _ => return Ok(()),
    };
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    let found = discovered.issuer.as_deref().unwrap_or("");
    if same(&bound, found) {
        return Ok(());
    }
    let found = if found.is_empty() { "a server without an issuer".to_owned() } else { server_text(found) };
    Err(EngineError::SecretIssuerMismatch { server: target.name.clone(), bound, found, why })
}

/// A kept registration is reused only for the issuer that made it and when it
/// names our redirect URI exactly.
pub fn reusable_registration(
    stored: Option<(ClientRecord, Option<String>)>,
    discovered: &Discovered,
    redirect_uri: &str,
) -> Option<ClientRecord> {
    stored
        .filter(|(client, issuer)| {
            same_issuer(issuer.as_deref(), discovered.issuer.as_deref())
                && client.redirect_uris.iter().any(|u| u == redirect_uri)
        })
        .map(|(client, _)| client)
}

/// Issuers compared as the agent compares them: without a trailing `/`
/// (its `meta.json` is written by pydantic, which adds one to a bare origin).
pub fn same_issuer(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(|a| a.trim_end_matches('/')) == b.map(|b| b.trim_end_matches('/'))
}

/// Whether an error means the server does not know our client (any more).
pub(crate) fn rejects_client(e: &EngineError) -> bool {
    match e {
        EngineError::Callback(CallbackError::Denied { error, .. }) => {
            matches!(error.as_str(), "invalid_client" | "unauthorized_client")
        }
        EngineError::Exchange(m) => m.contains("invalid_client") || m.contains("unauthorized_client"),
        EngineError::Token(TokenError::ClientRejected { .. }) => true,
        EngineError::Browser(BrowserError::Rejected { status: 400 | 401, .. }) => true,
        _ => false,
    }
}

/// rmcp picks the token endpoint auth method from the metadata alone
/// (Basic when both are offered). A kept registration names its own method;
/// narrowing the advertised list to it makes rmcp use exactly that one.
fn steer_auth_method(
    manager: &mut AuthorizationManager,
    discovered: &Discovered,
    method: &str,
) -> Result<(), EngineError> {
    if !matches!(method, "client_secret_post" | "client_secret_basic")
        || !discovered.auth_methods.iter().any(|m| m == method)
    {
        return Ok(());
    }
    let mut json = discovered.metadata_json.clone();
    json["token_endpoint_auth_methods_supported"] = serde_json::json!([method]);
    let metadata: AuthorizationMetadata =
        serde_json::from_value(json).map_err(|e| EngineError::Other(format!("cannot adjust the metadata: {e}")))?;
    manager.set_metadata(metadata);
    Ok(())
}

/// OpenID Connect Core §11: a provider ignores `offline_access` (issues no
/// refresh token) unless the request also has `prompt=consent`. Without it a
/// certified provider at its defaults makes the user sign in again whenever
/// the access token expires. rmcp adds `offline_access` when it is offered;
/// this adds the prompt it needs (a `prompt` already there is left alone).
fn ask_consent_for_offline_access(url: &mut Url) {
    let (mut offline, mut prompt) = (false, false);
    for (k, v) in url.query_pairs() {
        offline |= k == "scope" && v.split(' ').any(|s| s == "offline_access");
        prompt |= k == "prompt";
    }
    if offline && !prompt {
        url.query_pairs_mut().append_pair("prompt", "consent");
    }
}

fn strip_query_param(url: &mut Url, name: &str) {
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != name).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
}

/// Refuses metadata that does not advertise PKCE S256.
fn require_s256(metadata: &AuthorizationMetadata) -> Result<(), EngineError> {
    let methods = metadata.code_challenge_methods_supported.as_deref().unwrap_or_default();
    if methods.iter().any(|m| m == "S256") {
        return Ok(());
    }
    Err(EngineError::NoS256 {
        issuer: metadata.issuer.clone().unwrap_or_else(|| metadata.authorization_endpoint.clone()),
        advertised: if methods.is_empty() { "absent".to_owned() } else { methods.join(", ") },
    })
}

/// What discovery found that the rest of the flow needs.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub issuer: Option<String>,
    pub iss_parameter_supported: bool,
    pub supports_cimd: bool,
    pub can_register: bool,
    pub token_endpoint: String,
    /// RFC 8628 `device_authorization_endpoint`, when offered.
    pub device_authorization_endpoint: Option<String>,
    pub auth_methods: Vec<String>,
    /// The metadata as JSON (kept for the agent's `meta.json`).
    pub metadata_json: serde_json::Value,
    /// No metadata was found; endpoints are the 2025-03-26 defaults.
    pub legacy: bool,
}

impl Discovered {
    fn from_metadata(metadata: &AuthorizationMetadata, legacy: bool) -> Self {
        let field = |k: &str| metadata.additional_fields.get(k);
        let flag = |k: &str| field(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
        let auth_methods = field("token_endpoint_auth_methods_supported")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Self {
            issuer: metadata.issuer.clone(),
            iss_parameter_supported: flag("authorization_response_iss_parameter_supported"),
            supports_cimd: flag("client_id_metadata_document_supported"),
            can_register: metadata.registration_endpoint.is_some(),
            token_endpoint: metadata.token_endpoint.clone(),
            device_authorization_endpoint: field("device_authorization_endpoint")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            auth_methods,
            metadata_json: serde_json::to_value(metadata).unwrap_or(serde_json::Value::Null),
            legacy,
        }
    }

    /// The server advertises only the `none` token endpoint auth method.
    pub fn only_public_clients(&self) -> bool {
        !self.auth_methods.is_empty() && self.auth_methods.iter().all(|m| m == "none")
    }

    /// The token endpoint auth method rmcp will use: `none` without a secret;
    /// with one, `client_secret_basic` unless only `client_secret_post` is offered.
    pub fn auth_method_for(&self, has_secret: bool) -> &'static str {
        if !has_secret {
            return "none";
        }
        let offers = |m: &str| self.auth_methods.iter().any(|x| x == m);
        if offers("client_secret_post") && !offers("client_secret_basic") {
            "client_secret_post"
        } else {
            "client_secret_basic"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_is_asked_with_offline_access() {
        let cases = [
            ("https://as.example/a?scope=mcp%3Aread+offline_access&state=s", Some("consent")),
            ("https://as.example/a?scope=offline_access", Some("consent")),
            ("https://as.example/a?scope=mcp%3Aread&state=s", None),
            ("https://as.example/a?scope=offline_accessx", None),
            ("https://as.example/a?state=s", None),
            ("https://as.example/a?scope=offline_access&prompt=login", Some("login")),
        ];
        for (url, want) in cases {
            let mut url = Url::parse(url).unwrap_or_else(|e| panic!("{e}"));
            ask_consent_for_offline_access(&mut url);
            let prompts: Vec<String> =
                url.query_pairs().filter(|(k, _)| k == "prompt").map(|(_, v)| v.into_owned()).collect();
            assert_eq!(prompts, want.map(str::to_owned).into_iter().collect::<Vec<_>>(), "{url}");
        }
    }
}

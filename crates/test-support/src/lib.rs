//! An OAuth 2.1 authorization server and an MCP resource server, in process,
//! on 127.0.0.1, for tests and benchmarks.
//!
//! It follows the MCP authorization spec where the client needs it to (401
//! with `resource_metadata`, RFC 9728 / 8414 metadata, RFC 7591 registration,
//! PKCE S256, RFC 8707 `resource`, RFC 9207 `iss`, refresh with rotation,
//! RFC 7009 revocation, step-up via 403 `insufficient_scope`), and every
//! [`Behaviour`] knob turns one answer hostile or unusual so the client's
//! refusal can be tested. [`FakeServer::log`] records what clients did.
//!
//! The "browser" step is instant: `/authorize` answers 302 to the redirect
//! URI with a code, as the MCP conformance suite's server does.

mod mcp;
mod oauth;
mod sse;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::oneshot;

/// How the `iss` authorization response parameter behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssMode {
    /// Advertised in metadata and sent correctly.
    Correct,
    /// Not advertised and not sent.
    Absent,
    /// Advertised, but a different issuer is sent (mix-up attack).
    Wrong,
    /// Advertised, but not sent.
    Missing,
}

/// Knobs for the server's answers. [`Behaviour::default`] is a well-behaved
/// modern server.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Lifetime of access tokens, seconds.
    pub access_token_lifetime: u64,
    /// Issue a new refresh token on every refresh and invalidate the old one.
    pub rotate_refresh_tokens: bool,
    /// Answer refreshes without a `refresh_token`.
    pub omit_refresh_token_on_refresh: bool,
    /// Serve Protected Resource Metadata at all.
    pub serve_prm: bool,
    /// Put this `resource` in the PRM instead of the real one.
    pub prm_resource_override: Option<String>,
    /// Put this `issuer` in the AS metadata instead of the real one.
    pub metadata_issuer_override: Option<String>,
    /// `code_challenge_methods_supported` (empty: field omitted).
    pub code_challenge_methods: Vec<String>,
    /// How `iss` is advertised and sent.
    pub iss: IssMode,
    /// Offer dynamic client registration.
    pub registration: bool,
    /// `scopes_supported` in PRM and AS metadata (`None`: omitted).
    pub scopes_supported: Option<Vec<String>>,
    /// `scope` in the 401 challenge.
    pub challenge_scope: Option<String>,
    /// Scope needed to call `test-tool`; without it: 403 `insufficient_scope`.
    pub tool_scope: Option<String>,
    /// Offer a revocation endpoint.
    pub revocation: bool,
    /// Pad the AS metadata to this many bytes (to test body limits).
    pub pad_metadata_to: Option<usize>,
    /// Wait this long before answering metadata requests (to test timeouts).
    pub metadata_delay: Option<Duration>,
    /// Token endpoint auth methods offered.
    pub token_endpoint_auth_methods: Vec<String>,
    /// A pre-registered confidential client: (id, secret).
    pub preregistered_client: Option<(String, String)>,
    /// Redirect back with this `state` instead of the client's (a forgery).
    pub forged_state: Option<String>,
    /// Advertise a registration endpoint that refuses every registration (403 `access_denied`).
    pub refuse_registration: bool,
    /// Offer the device authorization grant (RFC 8628) at `/device_authorization`;
    /// codes are approved with [`FakeServer::approve_device`].
    pub device_flow: bool,
    /// The `interval` of device authorization answers, seconds.
    pub device_interval: u64,
    /// Fields merged into the AS metadata (a `null` removes one): hostile
    /// endpoints (`javascript:`, `file:`, plain `http://` elsewhere), ...
    pub metadata_patch: serde_json::Map<String, serde_json::Value>,
    /// `authorization_servers` of the PRM instead of this server's issuer
    /// (a resource that points at another authorization server).
    pub authorization_servers: Option<Vec<String>>,
    /// Fields merged into every successful token response (a `null` removes
    /// one): `expires_in: "3600"`, `1e20`, a missing `access_token`, ...
    pub token_response_patch: serde_json::Map<String, serde_json::Value>,
    /// This `error_description` in every OAuth error answer (hostile text).
    pub error_description: Option<String>,
    /// OpenID Connect Core §11: `offline_access` yields a refresh token only
    /// when the authorization request had `prompt=consent`; without
    /// `offline_access`, none either.
    pub oidc_offline_access: bool,
    /// RFC 7009 §2.2.1: revoking an access token answers 400
    /// `unsupported_token_type` (a JWT access token cannot be revoked).
    pub unsupported_access_token_revocation: bool,
    /// How `tools/list` pages (a hostile server can page forever).
    pub tool_paging: ToolPaging,
    /// RFC 9700 §4.14.2 refresh token reuse detection: a spent (rotated-out)
    /// refresh token presented again revokes every token of that client's grant.
    pub reuse_detection: bool,
    /// Scope every MCP request needs (not only `test-tool`); without it:
    /// 403 `insufficient_scope` naming it (a server that now requires more).
    pub mcp_scope: Option<String>,
    /// Answer every MCP request with this HTTP status before looking at
    /// the token (`503`: a server that is down behind its proxy).
    pub mcp_status: Option<u16>,
    /// Speak the legacy HTTP+SSE transport (MCP 2024-11-05) at the MCP URL
    /// instead of Streamable HTTP: `GET` opens the event stream, `POST`
    /// with a valid token answers 405 (see `sse.rs`).
    pub legacy_sse: bool,
    /// With `legacy_sse`: `POST /mcp` answers 405 before looking at the
    /// token (a server that routes only `GET` there), so only the event
    /// stream says whether a token is still good.
    pub sse_post_unrouted: bool,
    /// The data of the legacy stream's `endpoint` event instead of
    /// `/messages?sessionId=<id>` (another origin, to test the client's refusal).
    pub sse_endpoint: Option<String>,
}

/// The `nextCursor` of `tools/list` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolPaging {
    /// One page, no cursor.
    #[default]
    Single,
    /// Every page names a new cursor (`page-1`, `page-2`, …) and holds one
    /// more tool: the listing never ends.
    Endless,
    /// Every page names the same cursor again.
    Repeated,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            access_token_lifetime: 3600,
            rotate_refresh_tokens: true,
            omit_refresh_token_on_refresh: false,
            serve_prm: true,
            prm_resource_override: None,
            metadata_issuer_override: None,
            code_challenge_methods: vec!["S256".to_owned()],
            iss: IssMode::Correct,
            registration: true,
            scopes_supported: Some(vec!["mcp:read".to_owned(), "mcp:write".to_owned(), "offline_access".to_owned()]),
            challenge_scope: None,
            tool_scope: None,
            revocation: true,
            pad_metadata_to: None,
            metadata_delay: None,
            token_endpoint_auth_methods: vec![
                "none".to_owned(),
                "client_secret_post".to_owned(),
                "client_secret_basic".to_owned(),
            ],
            preregistered_client: None,
            forged_state: None,
            refuse_registration: false,
            device_flow: false,
            device_interval: 1,
            metadata_patch: serde_json::Map::new(),
            authorization_servers: None,
            token_response_patch: serde_json::Map::new(),
            error_description: None,
            oidc_offline_access: false,
            unsupported_access_token_revocation: false,
            tool_paging: ToolPaging::Single,
            reuse_detection: false,
            mcp_scope: None,
            mcp_status: None,
            legacy_sse: false,
            sse_post_unrouted: false,
            sse_endpoint: None,
        }
    }
}

/// What clients did, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Every request, as "METHOD /path".
    pub requests: Vec<String>,
    /// Bodies of registration requests.
    pub registrations: Vec<serde_json::Value>,
    /// Query parameters of authorization requests.
    pub authorizations: Vec<HashMap<String, String>>,
    /// Form parameters of token requests (secrets included: test data).
    pub token_requests: Vec<HashMap<String, String>>,
    /// Tokens revoked.
    pub revocations: Vec<String>,
    /// JSON-RPC methods called with a valid token.
    pub mcp_calls: Vec<String>,
    /// Every `refresh_token` grant and how it ended, in order.
    pub refreshes: Vec<RefreshResult>,
    /// Spent refresh tokens presented again (each revoked its grant, with
    /// [`Behaviour::reuse_detection`]).
    pub reuse_events: usize,
    /// The `User-Agent` of each token request, in order.
    pub token_user_agents: Vec<Option<String>>,
    /// Legacy SSE event streams opened (with a valid token).
    pub sse_streams: usize,
}

/// One refresh at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshResult {
    /// The refresh token presented (test data).
    pub presented: String,
    /// `ok`, `invalid_grant` (unknown or revoked) or `reuse` (a spent one).
    pub outcome: &'static str,
}

impl Log {
    /// Token requests with this `grant_type`.
    pub fn grants(&self, grant_type: &str) -> usize {
        self.token_requests.iter().filter(|r| r.get("grant_type").map(String::as_str) == Some(grant_type)).count()
    }

    /// Refreshes that ended with `outcome` (`ok`, `invalid_grant`, `reuse`).
    pub fn refreshes_ending(&self, outcome: &str) -> usize {
        self.refreshes.iter().filter(|r| r.outcome == outcome).count()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub redirect_uris: Vec<String>,
    pub secret: Option<String>,
    pub auth_method: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
    /// The authorization request's `prompt`.
    pub prompt: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub expires_at: u64,
    pub scope: Option<String>,
    /// The authorization this token descends from.
    pub family: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub client_id: String,
    pub scope: Option<String>,
    /// The authorization this token descends from.
    pub family: u64,
}

/// A device authorization waiting for (or given) the user's approval.
#[derive(Debug, Clone)]
pub(crate) struct DeviceGrant {
    pub client_id: String,
    pub user_code: String,
    pub scope: Option<String>,
    pub approved: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    /// By device code.
    pub devices: HashMap<String, DeviceGrant>,
    pub log: Log,
    pub clients: HashMap<String, Client>,
    pub codes: HashMap<String, Grant>,
    pub access: HashMap<String, Access>,
    pub refresh: HashMap<String, Refresh>,
    /// Rotated-out refresh tokens, with the grant they belonged to.
    pub spent: HashMap<String, u64>,
    pub counter: u64,
    /// Open legacy SSE streams, by session id: where their answers go.
    pub sse_sessions: HashMap<String, tokio::sync::mpsc::Sender<String>>,
}

/// Shared state of one fake server.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub base: String,
    pub behaviour: Arc<Mutex<Behaviour>>,
    pub inner: Arc<Mutex<Inner>>,
    pub salt: u64,
    /// `true` while refresh answers are held back ([`FakeServer::hold_refreshes`]).
    pub hold: tokio::sync::watch::Sender<bool>,
    /// How many refresh answers are waiting for [`FakeServer::release_refreshes`].
    pub held: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A fresh opaque value.
    pub fn token(&self, kind: &str) -> String {
        let n = self.with(|i| {
            i.counter += 1;
            i.counter
        });
        format!("{kind}-{:x}-{n}", self.salt)
    }

    pub fn issuer(&self) -> String {
        self.base.clone()
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub fn record(&self, what: String) {
        self.with(|i| i.log.requests.push(what));
    }
}

/// The running servers; they stop when this is dropped.
#[derive(Debug)]
pub struct FakeServer {
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeServer {
    /// Starts a server on a free loopback port.
    pub async fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let base = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let salt = SystemTime::now().duration_since(UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64);
        let shared = Shared {
            base,
            behaviour: Arc::new(Mutex::new(behaviour.clone())),
            inner: Arc::new(Mutex::new(Inner::default())),
            salt,
            hold: tokio::sync::watch::Sender::new(false),
            held: tokio::sync::watch::Sender::new(0),
        };
        if let Some((id, secret)) = &behaviour.preregistered_client {
            shared.with(|i| {
                i.clients.insert(
                    id.clone(),
                    Client {
                        redirect_uris: Vec::new(),
                        secret: Some(secret.clone()),
                        auth_method: "client_secret_basic".to_owned(),
                    },
                )
            });
        }
        let app = Router::new()
            .route("/mcp", post(mcp::handle).get(sse::stream).delete(mcp::method_not_allowed))
            .route("/messages", post(sse::message))
            .route("/.well-known/oauth-protected-resource/mcp", get(oauth::protected_resource))
            .route("/.well-known/oauth-protected-resource", get(oauth::protected_resource))
            .route("/.well-known/oauth-authorization-server", get(oauth::authorization_server))
            .route("/.well-known/openid-configuration", get(oauth::not_found))
            .route("/register", post(oauth::register))
            .route("/authorize", get(oauth::authorize))
            .route("/token", post(oauth::token))
            .route("/device_authorization", post(oauth::device_authorization))
            .route("/revoke", post(oauth::revoke))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { shared, stop: Some(stop) })
    }

    /// `http://127.0.0.1:PORT` (also the issuer).
    pub fn base_url(&self) -> &str {
        &self.shared.base
    }

    /// The MCP endpoint, `<base>/mcp`.
    pub fn mcp_url(&self) -> String {
        self.shared.mcp_url()
    }

    /// A copy of what clients did so far.
    pub fn log(&self) -> Log {
        self.shared.with(|i| i.log.clone())
    }

    /// Changes behaviour while running.
    pub fn set_behaviour(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.shared.behaviour.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Sets how a registered client must authenticate at the token endpoint.
    pub fn set_client_auth_method(&self, client_id: &str, method: &str) {
        self.shared.with(|i| {
            if let Some(c) = i.clients.get_mut(client_id) {
                c.auth_method = method.to_owned();
            }
        });
    }

    /// Forgets every registered client (the AS "deleted" registrations).
    pub fn forget_clients(&self) {
        self.shared.with(|i| i.clients.clear());
    }

    /// Invalidates every refresh token (revoked, or the grant expired).
    pub fn forget_refresh_tokens(&self) {
        self.shared.with(|i| i.refresh.clear());
    }

    /// Holds back the answers to refresh requests from now on: the server
    /// issues the tokens (the old refresh token is spent) but the response
    /// waits until [`FakeServer::release_refreshes`] — a refresh in flight.
    pub fn hold_refreshes(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Lets every held refresh answer go, and stops holding.
    pub fn release_refreshes(&self) {
        self.shared.hold.send_replace(false);
    }

    /// Waits until `n` refresh answers are held (the requests arrived and
    /// were processed); `false` if that did not happen within `timeout`.
    pub async fn wait_for_held_refreshes(&self, n: usize, timeout: Duration) -> bool {
        let mut held = self.shared.held.subscribe();
        tokio::time::timeout(timeout, held.wait_for(|h| *h >= n)).await.is_ok_and(|r| r.is_ok())
    }

    /// Revokes every grant at the server: all access and refresh tokens
    /// stop working (a user removed the app's access in their account).
    pub fn revoke_grants(&self) {
        self.shared.with(|i| {
            i.access.clear();
            i.refresh.clear();
        });
    }

    /// Ends every open legacy SSE stream (a server restart, a proxy in
    /// between timing out): clients must open a new one.
    pub fn end_sse_streams(&self) {
        self.shared.with(|i| i.sse_sessions.clear());
    }

    /// Expires every access token now.
    pub fn expire_access_tokens(&self) {
        self.shared.with(|i| i.access.values_mut().for_each(|a| a.expires_at = 0));
    }

    /// Approves the device authorization with `user_code`, as the user would
    /// on the verification page. `false` when no such code is pending.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.shared
            .with(|i| i.devices.values_mut().find(|d| d.user_code == user_code).map(|d| d.approved = true).is_some())
    }

    /// A valid access token issued without a sign-in, for tests of the MCP
    /// half alone.
    pub fn mint_access_token(&self) -> String {
        let lifetime = self.shared.behaviour().access_token_lifetime;
        let token = self.shared.token("access");
        // A family of its own (0: no authorization ever gets it).
        self.shared
            .with(|i| i.access.insert(token.clone(), Access { expires_at: now() + lifetime, scope: None, family: 0 }));
        token
    }

    /// Whether `token` is a currently valid access token.
    pub fn is_valid_access_token(&self, token: &str) -> bool {
        let now = now();
        self.shared.with(|i| i.access.get(token).is_some_and(|a| a.expires_at > now))
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

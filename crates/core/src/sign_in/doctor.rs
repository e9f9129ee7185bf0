//! `doctor`: why a server will not connect, step by step.
//!
//! [`examine`] runs the steps of a sign-in against the live server with the
//! engine's own code — the probe, discovery (through a [`Recorder`], so every
//! request it made is seen with its URL, status and body), the client
//! identity (which may register a throwaway client, as `connect` would) —
//! then checks the redirect port and the vault. It never opens a browser
//! and never writes credentials. [`diagnose`] turns what was observed into
//! one [`StepReport`] per step, with the evidence and a hint; it does no
//! I/O, so every rule has a table test.
//!
//! The JSON form of [`Diagnosis`] is the stable output of
//! `mcp-auth doctor --json`: add fields, never rename or remove them.

use std::sync::Arc;

use serde::Serialize;

use crate::app::settings::AppSettings;
use crate::oauth::callback::CallbackRouter;
use crate::oauth::engine::{
    ClientSource, Discovered, Engine, EngineError, Probe, Target, check_secret_binding, initial_scopes,
    reusable_registration,
};
use crate::oauth::loopback::{ListenerError, LoopbackListener, redirect_uri};
use crate::oauth::recorder::{Exchange, Recorder};
use crate::sign_in::connect::{ConnectError, OAuthServer, kept_registration};
use crate::util::text::error_text;
use crate::util::text::server_text;
use crate::vault::{Vault, VaultError};
use crate::view::status::{VaultView, time_left};

/// The steps, in the order a sign-in takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// The entry in the agent's config.
    Config,
    /// The unauthenticated request and its `WWW-Authenticate` challenge.
    Probe,
    /// Protected Resource Metadata (RFC 9728).
    ResourceMetadata,
    /// Authorization server metadata (RFC 8414 / OpenID discovery).
    AuthorizationServer,
    /// A client identity: pre-registered, CIMD, kept, or registered (RFC 7591).
    Registration,
    /// The loopback redirect port.
    RedirectPort,
    /// What the vault holds.
    Vault,
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Signing in fails (or will) because of this step.
    Fail,
    /// Not run: an earlier step it needs failed.
    Skipped,
}

/// One step's finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    pub step: StepName,
    pub status: Outcome,
    /// What was found, in words.
    pub summary: String,
    /// The URL the step asked, when it asked one.
    pub url: Option<String>,
    /// The HTTP status of that answer.
    pub http_status: Option<u16>,
    /// The relevant header or metadata fields (`name: value`), and the URLs tried.
    pub evidence: Vec<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl StepReport {
    fn new(step: StepName, status: Outcome, summary: impl Into<String>) -> Self {
        Self { step, status, summary: summary.into(), url: None, http_status: None, evidence: Vec::new(), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn at(mut self, exchange: Option<&Exchange>) -> Self {
        if let Some(e) = exchange {
            self.url = Some(e.url.clone());
            self.http_status = e.outcome.as_ref().ok().copied();
        }
        self
    }

    fn skipped(step: StepName, why: &str) -> Self {
        Self::new(step, Outcome::Skipped, why)
    }
}

/// Every step for one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub profile: Option<String>,
    pub name: String,
    pub url: Option<String>,
    /// No step failed.
    pub ok: bool,
    pub steps: Vec<StepReport>,
}

impl Diagnosis {
    fn new(profile: Option<String>, name: String, url: Option<String>, steps: Vec<StepReport>) -> Self {
        let ok = steps.iter().all(|s| s.status != Outcome::Fail);
        Self { profile, name, url, ok, steps }
    }

    /// A server that cannot even be looked at: not found, not OAuth, disabled, invalid.
    pub fn config_failure(name: &str, profile: Option<&str>, error: &ConnectError) -> Self {
        let hint = match error {
            ConnectError::NotFound { .. } => "check the name with `mcp-auth status` (and --profile)",
            ConnectError::NotOAuth { .. } => "doctor checks servers with `auth: oauth` in the agent's config",
            ConnectError::Disabled { .. } => "remove `enabled: false` from the entry to use it",
            _ => "fix the entry in config.yaml",
        };
        let step = StepReport::new(StepName::Config, Outcome::Fail, error_text(&error)).hint(hint);
        Self::new(profile.map(str::to_owned), name.to_owned(), None, vec![step])
    }
}

/// The redirect port as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortCheck {
    /// Free to listen on (`configured`: the server's own `redirect_port`).
    Free {
        port: u16,
        configured: bool,
    },
    InUse {
        port: u16,
        configured: bool,
    },
    Error {
        port: u16,
        reason: String,
    },
    /// No port chosen yet (the first sign-in picks and keeps one).
    NotChosen,
}

/// Everything [`examine`] saw, for [`diagnose`].
#[derive(Debug)]
pub struct Observations {
    pub target: Target,
    /// The probe (`tools/list` too when `initialize` was let through).
    pub probe: Result<Probe, EngineError>,
    /// Discovery, when the probe allowed it.
    pub discovery: Option<Result<Discovered, EngineError>>,
    /// The client identity, when discovery succeeded.
    pub registration: Option<Result<(ClientSource, String), EngineError>>,
    /// Every request discovery and registration made, in order.
    pub exchanges: Vec<Exchange>,
    pub port: PortCheck,
    pub vault: VaultView,
    /// Epoch seconds.
    pub now: f64,
}

/// Runs every step against `server` (see the module docs).
#[tracing::instrument(skip_all, fields(server = %server.name))]
pub async fn examine(
    engine: &Engine,
    server: &OAuthServer,
    settings: &AppSettings,
    vault: &Result<Vault, VaultError>,
) -> Diagnosis {
    let target = server.target();
    let (port, redirect) = check_port(server.oauth.redirect_port, settings.redirect_port).await;
    let loaded = match vault {
        Ok(vault) => vault.load_async(&server.vault_key()).await,
        Err(e) => Err(VaultError::Unavailable(error_text(&e))),
    };
    let record = loaded.as_ref().ok().and_then(Option::clone);
    let vault_view = VaultView::of(loaded);

    let probe = engine.probe_guarded(&target).await;
    let recorder = Recorder::new(engine.oauth_http(&target));
    let mut discovery = None;
    let mut registration = None;
    if let Ok(probe) = &probe {
        match engine.discover_via(&target, probe, Arc::new(recorder.clone())).await {
            Ok((mut manager, discovered)) => {
                let scopes = initial_scopes(&manager, &target).await;
                let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
                let stored = kept_registration(record, &server.paths());
                registration = Some(match check_secret_binding(&target, stored.as_ref(), &discovered) {
                    Err(e) => Err(e),
                    Ok(()) => {
                        let kept = reusable_registration(stored, &discovered, &redirect);
                        let identity =
                            engine.client_identity(&mut manager, &target, &discovered, &redirect, &scopes, kept);
                        identity.await.map(|(client, source)| (source, client.client_id))
                    }
                });
                discovery = Some(Ok(discovered));
            }
            Err(e) => discovery = Some(Err(e)),
        }
    }
    let observed = Observations {
        target,
        probe,
        discovery,
        registration,
        exchanges: recorder.exchanges(),
        port,
        vault: vault_view,
        now: crate::util::time::now_secs(),
    };
    let mut steps = vec![config_step(server)];
    steps.extend(diagnose(&observed));
    Diagnosis::new(server.home.profile.clone(), server.name.clone(), Some(server.url.to_string()), steps)
}

/// Whether the port a sign-in would listen on is free, and the redirect URI
/// a registration made now would name (a free port when none is chosen yet).
async fn check_port(configured: Option<u16>, persisted: Option<u16>) -> (PortCheck, String) {
    let Some(port) = configured.or(persisted) else {
        let free = LoopbackListener::bind(0, CallbackRouter::new()).await.map(|l| l.port()).unwrap_or(0);
        return (PortCheck::NotChosen, redirect_uri(free));
    };
    let configured = configured.is_some();
    let check = match LoopbackListener::bind(port, CallbackRouter::new()).await {
        Ok(_listener) => PortCheck::Free { port, configured },
        Err(ListenerError::PortInUse { .. }) => PortCheck::InUse { port, configured },
        Err(e) => PortCheck::Error { port, reason: error_text(&e) },
    };
    (check, redirect_uri(port))
}

fn config_step(server: &OAuthServer) -> StepReport {
    let mut step = StepReport::new(StepName::Config, Outcome::Ok, format!("auth: oauth, url {}", server.url));
    if let Some(id) = &server.oauth.client_id {
        step.evidence.push(format!("oauth.client_id: {id}"));
    }
    if let Some(port) = server.oauth.redirect_port {
        step.evidence.push(format!("oauth.redirect_port: {port}"));
    }
    step
}

/// What kind of document a discovery request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    ResourceMetadata,
    ServerMetadata,
    Other,
}

fn asked(exchange: &Exchange, advertised_prm: Option<&str>) -> Asked {
    let url = exchange.url.as_str();
    if url.contains("/.well-known/oauth-protected-resource") || Some(url) == advertised_prm {
        Asked::ResourceMetadata
    } else if url.contains("/.well-known/oauth-authorization-server")
        || url.contains("/.well-known/openid-configuration")
    {
        Asked::ServerMetadata
    } else {
        Asked::Other
    }
}

/// "GET <url> → 404" lines for the evidence.
fn tried(exchanges: &[&Exchange]) -> Vec<String> {
    exchanges
        .iter()
        .map(|e| match &e.outcome {
            Ok(status) => format!("{} {} → {status}", e.method, e.url),
            Err(reason) => format!("{} {} → {reason}", e.method, e.url),
        })
        .collect()
}

/// The first successful answer whose JSON body has `field`.
fn found<'a>(exchanges: &[&'a Exchange], field: &str) -> Option<&'a Exchange> {
    exchanges
        .iter()
        .copied()
        .find(|e| matches!(e.outcome, Ok(200..=299)) && e.body.as_ref().is_some_and(|b| b.get(field).is_some()))
}

/// `name: value` of a JSON field (arrays joined), or `name: absent`.
fn field(body: Option<&serde_json::Value>, name: &str) -> String {
    let value = match body.and_then(|b| b.get(name)) {
        None | Some(serde_json::Value::Null) => "absent".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect::<Vec<_>>().join(" ")
        }
        Some(other) => other.to_string(),
    };
    // The server's words, on the user's terminal: made safe.
    format!("{name}: {}", server_text(&value))
}

/// The steps after `config`, from what was observed (pure).
pub fn diagnose(o: &Observations) -> Vec<StepReport> {
    let advertised_prm = match &o.probe {
        Ok(Probe::Challenge { bearer, .. }) => bearer.resource_metadata.as_deref(),
        _ => None,
    };
    let by = |kind| o.exchanges.iter().filter(|e| asked(e, advertised_prm) == kind).collect::<Vec<_>>();
    let (prm, asm, other) = (by(Asked::ResourceMetadata), by(Asked::ServerMetadata), by(Asked::Other));
    let discovery_error = o.discovery.as_ref().and_then(|d| d.as_ref().err());
    let mut steps = vec![probe_step(o)];
    match &o.discovery {
        None => {
            for step in [StepName::ResourceMetadata, StepName::AuthorizationServer, StepName::Registration] {
                steps.push(StepReport::skipped(step, "needs a probe that asks for authorization"));
            }
        }
        Some(discovery) => {
            steps.push(resource_metadata_step(o, &prm, discovery_error));
            steps.push(server_metadata_step(discovery, &prm, &asm));
            steps.push(registration_step(o, &other));
        }
    }
    steps.push(port_step(&o.port, &o.target.name));
    steps.push(vault_step(o));
    steps
}

fn probe_step(o: &Observations) -> StepReport {
    let url = Some(o.target.url.to_string());
    let mut step = match &o.probe {
        Ok(Probe::Challenge { headers, bearer }) => {
            let mut step = StepReport::new(StepName::Probe, Outcome::Ok, "401 with a Bearer challenge");
            step.http_status = Some(401);
            step.evidence = headers.iter().map(|h| format!("WWW-Authenticate: {h}")).collect();
            match &bearer.resource_metadata {
                Some(url) => step.summary.push_str(&format!(" naming its resource metadata ({url})")),
                None => step.summary.push_str(" without resource_metadata (the well-known URLs are tried)"),
            }
            if let Some(scope) = &bearer.scope {
                step.summary.push_str(&format!("; scope {scope}"));
            }
            step
        }
        Ok(Probe::NoChallenge { status }) => {
            let mut step = StepReport::new(
                StepName::Probe,
                Outcome::Warn,
                format!("HTTP {status} without a Bearer challenge (WWW-Authenticate)"),
            )
            .hint("an MCP server that needs sign-in answers 401 with `WWW-Authenticate: Bearer resource_metadata=…`; discovery falls back to the well-known URLs");
            if *status == 404 {
                step.hint = Some("HTTP 404: is the server's url in config.yaml right?".to_owned());
            }
            step.http_status = Some(*status);
            step
        }
        Ok(Probe::Open { status }) | Err(EngineError::NoAuthNeeded { status, .. }) => {
            let mut step = StepReport::new(
                StepName::Probe,
                Outcome::Fail,
                format!("the server answered HTTP {status} without asking for authorization"),
            )
            .hint("this server does not ask for a sign-in: check its url, or drop `auth: oauth` from its entry");
            step.http_status = Some(*status);
            step
        }
        Err(e) => StepReport::new(StepName::Probe, Outcome::Fail, error_text(&e))
            .hint("check the server's url in config.yaml, the network, and any proxy"),
    };
    step.url = url;
    step
}

fn resource_metadata_step(o: &Observations, prm: &[&Exchange], error: Option<&EngineError>) -> StepReport {
    let document = found(prm, "authorization_servers").or_else(|| found(prm, "resource"));
    let mut step = match (document, error) {
        (Some(doc), Some(EngineError::ResourceMismatch(reason))) => {
            StepReport::new(StepName::ResourceMetadata, Outcome::Fail, format!("the document is for another resource: {reason}"))
                .hint(format!(
                    "its `resource` must be this server's URL ({}) or a prefix of it: the server is misconfigured, or config.yaml names the wrong URL",
                    o.target.url
                ))
                .at(Some(doc))
        }
        (Some(doc), _) => StepReport::new(
            StepName::ResourceMetadata,
            Outcome::Ok,
            format!("found; {}", field(doc.body.as_ref(), "authorization_servers")),
        )
        .at(Some(doc)),
        (None, Some(e @ EngineError::Unreachable { .. })) => {
            StepReport::new(StepName::ResourceMetadata, Outcome::Fail, error_text(&e)).at(prm.last().copied())
        }
        (None, _) => {
            let fallback = if matches!(&o.discovery, Some(Ok(d)) if !d.legacy) {
                " Signing in still works through the older fallback (authorization server metadata at the server's origin), but clients that follow the current spec fail."
            } else {
                ""
            };
            StepReport::new(StepName::ResourceMetadata, Outcome::Fail, "no Protected Resource Metadata (RFC 9728) found")
                .hint(format!(
                    "the server publishes no RFC 9728 document (MCP servers must, since the 2025-06-18 revision of the spec): serve it at /.well-known/oauth-protected-resource and name it in the 401's WWW-Authenticate `resource_metadata`.{fallback}"
                ))
                .at(prm.last().copied())
        }
    };
    if let Some(doc) = document {
        for name in ["resource", "authorization_servers", "scopes_supported"] {
            step.evidence.push(field(doc.body.as_ref(), name));
        }
    }
    step.evidence.extend(tried(prm));
    step
}

fn server_metadata_step(
    discovery: &Result<Discovered, EngineError>,
    prm: &[&Exchange],
    asm: &[&Exchange],
) -> StepReport {
    let document = found(asm, "authorization_endpoint").or_else(|| found(asm, "issuer"));
    let expected = found(prm, "authorization_servers")
        .and_then(|d| d.body.as_ref()?.get("authorization_servers")?.get(0)?.as_str().map(str::to_owned));
    let received = document.and_then(|d| d.body.as_ref()?.get("issuer")?.as_str().map(str::to_owned));
    // rmcp reports a wrong issuer either as such or as "no usable metadata".
    let mismatch = match (&expected, received) {
        (Some(expected), Some(received)) if *expected != received => Some((expected.clone(), received)),
        _ => None,
    };
    let name = StepName::AuthorizationServer;
    let issuer_mismatch = |expected: &str, received: &str| {
        StepReport::new(name, Outcome::Fail, format!("the metadata names issuer `{received}`, expected `{expected}`"))
            .hint(format!(
                "the authorization server's `issuer` must be exactly the URL its metadata was asked for ({expected}), RFC 8414 §3.3 (a defence against mix-up attacks): the authorization server is misconfigured"
            ))
    };
    let mut step = match discovery {
        Ok(d) if d.legacy => StepReport::new(name, Outcome::Warn, "no authorization server metadata (RFC 8414 / OpenID) found")
            .hint("the 2025-03-26 defaults (/authorize, /token, /register at the server's origin) will be tried; current servers publish metadata"),
        Ok(d) => StepReport::new(
            name,
            Outcome::Ok,
            format!("issuer {}; PKCE S256 supported", d.issuer.as_deref().unwrap_or("(none)")),
        ),
        Err(EngineError::ResourceMismatch(_)) => {
            StepReport::skipped(name, "the resource metadata is not for this server")
        }
        Err(EngineError::IssuerMismatch { expected, received }) => issuer_mismatch(expected, received),
        Err(e @ EngineError::UnsafeEndpoint { field, .. }) => StepReport::new(name, Outcome::Fail, error_text(&e))
            .hint(unsafe_endpoint_hint(field)),
        Err(EngineError::NoS256 { advertised, .. }) => StepReport::new(
            name,
            Outcome::Fail,
            format!("PKCE S256 is not advertised (code_challenge_methods_supported: {advertised})"),
        )
        .hint("the authorization server does not advertise S256; MCP clients must refuse to sign in without it. Its operator must add \"S256\" to code_challenge_methods_supported"),
        Err(e) => match &mismatch {
            Some((expected, received)) => issuer_mismatch(expected, received),
            None => StepReport::new(name, Outcome::Fail, error_text(&e)),
        },
    };
    if step.status != Outcome::Skipped {
        step = step.at(document.or(asm.last().copied()));
        if let Some(expected) = expected {
            step.evidence.push(format!("expected issuer (from the resource metadata): {expected}"));
        }
        if let Some(doc) = document {
            for f in [
                "issuer",
                "code_challenge_methods_supported",
                "authorization_endpoint",
                "token_endpoint",
                "registration_endpoint",
                "device_authorization_endpoint",
                "client_id_metadata_document_supported",
            ] {
                step.evidence.push(field(doc.body.as_ref(), f));
            }
        }
        step.evidence.extend(tried(asm));
    }
    step
}

/// What to do about an endpoint refused by the endpoint rule.
fn unsafe_endpoint_hint(field: &str) -> String {
    if field == "client_metadata_url" {
        return "a Client ID Metadata Document must be served over https://; fix `mcp_auth_tray.client_metadata_url` in config.yaml".to_owned();
    }
    format!(
        "endpoints are only used over https:// (or http:// on this machine); `{field}` names another kind of address, so nothing is opened or sent there. If you trust this server, its operator must publish https:// endpoints; otherwise it may be trying to run something on your machine (a `javascript:`, `file:` or `smb:` URL)"
    )
}

fn registration_step(o: &Observations, other: &[&Exchange]) -> StepReport {
    let name = StepName::Registration;
    let Some(registration) = &o.registration else {
        return StepReport::skipped(name, "needs the authorization server metadata");
    };
    let register = other.iter().copied().rfind(|e| e.method == "POST");
    match registration {
        Ok((source, client_id)) => {
            let summary = match source {
                ClientSource::Configured => format!("pre-registered client `{client_id}` (oauth.client_id)"),
                ClientSource::MetadataDocument => format!("Client ID Metadata Document {client_id}"),
                ClientSource::Kept => format!("a registration kept from an earlier sign-in (client `{client_id}`)"),
                ClientSource::Registered => {
                    format!("dynamic client registration works (a test client `{client_id}` was registered)")
                }
            };
            StepReport::new(name, Outcome::Ok, summary).at(register)
        }
        Err(e @ EngineError::UnsafeEndpoint { field, .. }) => {
            StepReport::new(name, Outcome::Fail, error_text(&e)).hint(unsafe_endpoint_hint(field))
        }
        Err(e @ EngineError::SecretIssuerMismatch { found, .. }) => StepReport::new(name, Outcome::Fail, error_text(&e))
            .hint(format!("the resource now names another authorization server than the one `oauth.client_secret` was made for; the secret was not sent. If that is expected, set `oauth.issuer: {found}` (and the matching client_id and client_secret)")),
        Err(e) => {
            let configure = format!(
                "configure `oauth.client_id` (and `client_secret` if it has one) for `{}` in config.yaml, with a client made in the server's developer settings",
                o.target.name
            );
            let Some(refused) = register.filter(|r| !matches!(r.outcome, Ok(200..=299))) else {
                return StepReport::new(name, Outcome::Fail, error_text(&e)).hint(configure);
            };
            let body = refused.body.as_ref();
            let error = body.and_then(|b| b["error"].as_str()).map_or_else(|| "no error code".to_owned(), server_text);
            let status = refused.outcome.as_ref().map_or_else(|e| server_text(e), |s| format!("HTTP {s}"));
            let description =
                body.and_then(|b| b["error_description"].as_str()).map(|d| format!(": {}", server_text(d)));
            let mut step = StepReport::new(
                name,
                Outcome::Fail,
                format!(
                    "the server refused dynamic client registration ({status} {error}{})",
                    description.as_deref().unwrap_or("")
                ),
            )
            .hint(format!("it may only accept clients registered by hand: {configure}"))
            .at(Some(refused));
            step.evidence = vec![field(body, "error"), field(body, "error_description")];
            step
        }
    }
}

fn port_step(port: &PortCheck, server: &str) -> StepReport {
    let name = StepName::RedirectPort;
    let owner = |configured: bool| if configured { "redirect_port" } else { "the app's redirect port" };
    match port {
        PortCheck::Free { port, configured } => {
            StepReport::new(name, Outcome::Ok, format!("{} {port} on 127.0.0.1 is free", owner(*configured)))
        }
        PortCheck::InUse { port, configured: true } => StepReport::new(
            name,
            Outcome::Fail,
            format!("redirect_port {port} is in use by another program"),
        )
        .hint(format!(
            "redirect_port {port} is in use by another program: stop it (`ss -ltnp 'sport = :{port}'` shows which), or choose another `oauth.redirect_port` for `{server}` and sign in again"
        )),
        PortCheck::InUse { port, configured: false } => StepReport::new(
            name,
            Outcome::Warn,
            format!("the app's redirect port {port} is in use by another program"),
        )
        .hint("the next sign-in chooses a new port and registers the client again (if the tray app is running, it may be the one listening)"),
        PortCheck::Error { port, reason } => {
            StepReport::new(name, Outcome::Fail, format!("cannot listen on 127.0.0.1:{port}: {reason}"))
        }
        PortCheck::NotChosen => StepReport::new(
            name,
            Outcome::Ok,
            "no redirect port chosen yet: the first sign-in picks a free one and keeps it",
        ),
    }
}

fn vault_step(o: &Observations) -> StepReport {
    let name = StepName::Vault;
    let connect = format!("sign in with `mcp-auth connect {}`", o.target.name);
    match &o.vault {
        VaultView::NotConsulted => StepReport::skipped(name, "the vault was not consulted"),
        VaultView::Missing => StepReport::new(name, Outcome::Ok, "not signed in: no tokens stored").hint(connect),
        VaultView::Unavailable(reason) => StepReport::new(name, Outcome::Fail, format!("keychain unavailable: {reason}"))
            .hint("start a Secret Service (e.g. gnome-keyring), or opt in to a plain file with \"credential_store\": \"file\" in ~/.config/mcp-auth-tray/settings.json"),
        VaultView::Unreadable(reason) => {
            StepReport::new(name, Outcome::Fail, format!("the stored record cannot be read: {reason}"))
                .hint(format!("{connect} to replace it"))
        }
        VaultView::Present(tokens) => {
            let refresh = if tokens.has_refresh_token { "a refresh token" } else { "no refresh token" };
            let (status, expiry) = match tokens.expires_at {
                Some(at) if at > o.now => (Outcome::Ok, format!("access token valid for {}", time_left(at - o.now))),
                Some(at) if tokens.has_refresh_token => {
                    (Outcome::Ok, format!("access token expired {} ago", time_left(o.now - at)))
                }
                Some(at) => (Outcome::Warn, format!("access token expired {} ago", time_left(o.now - at))),
                None => (Outcome::Ok, "access token expiry unknown".to_owned()),
            };
            let mut step = StepReport::new(name, status, format!("tokens stored; {expiry}; {refresh}"));
            if status == Outcome::Warn {
                step.hint = Some(connect.clone());
            }
            let now_issuer = o.discovery.as_ref().and_then(|d| d.as_ref().ok()).and_then(|d| d.issuer.as_deref());
            if let (Some(kept), Some(now_issuer)) = (tokens.issuer.as_deref(), now_issuer)
                && kept != now_issuer
            {
                step.status = Outcome::Warn;
                step.hint = Some(format!(
                    "the tokens were issued by {kept}, but the server now names {now_issuer}: {connect}"
                ));
            }
            step.evidence = vec![format!("issuer: {}", tokens.issuer.as_deref().unwrap_or("unknown"))];
            if let Some(scope) = &tokens.scope {
                step.evidence.push(format!("scope: {scope}"));
            }
            step
        }
    }
}

#[cfg(test)]
mod tests;

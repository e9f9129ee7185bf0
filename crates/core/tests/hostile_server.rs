//! A hostile or sloppy authorization server, answer by answer, against the
//! real engine, refresher and vault: endpoints that are not web addresses or
//! would carry secrets in clear, a resource that points its client secret
//! at another authorization server, token responses real servers get wrong,
//! the OpenID Connect `offline_access` rule, RFC 7009 `unsupported_token_type`,
//! and text full of terminal escape sequences.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth_core::CallbackRouter;
use mcp_auth_core::HermesExporter;
use mcp_auth_core::Http;
use mcp_auth_core::LoopbackListener;
use mcp_auth_core::{Browser, BrowserFuture, HeadlessBrowser};
use mcp_auth_core::{Engine, EngineError, Target};
use mcp_auth_core::{MAX_LIFETIME_SECS, TokenEndpoint};
use mcp_auth_core::{MemoryBackend, Vault};
use mcp_auth_core::{OAuthServer, connect, disconnect, find_oauth_server};
use mcp_auth_core::{RefreshError, Refresher};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// A browser that notes every URL it is given, then follows it like the
/// headless one (so a flow that should succeed does).
#[derive(Debug)]
struct WatchedBrowser {
    opened: Arc<Mutex<Vec<String>>>,
    inner: HeadlessBrowser,
}

impl Browser for WatchedBrowser {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        self.opened.lock().expect("lock").push(url.to_owned());
        self.inner.open(url)
    }
}

struct Rig {
    engine: Engine,
    listener: LoopbackListener,
    opened: Arc<Mutex<Vec<String>>>,
}

async fn rig() -> Rig {
    let http = Http::with_timeout(Duration::from_secs(10)).expect("http");
    let router = CallbackRouter::new();
    let listener = LoopbackListener::bind(0, router.clone()).await.expect("listener");
    let opened = Arc::new(Mutex::new(Vec::new()));
    let browser = WatchedBrowser { opened: opened.clone(), inner: HeadlessBrowser::new(http.clone()) };
    Rig { engine: Engine::new(http, router, Arc::new(browser)), listener, opened }
}

fn target(server: &FakeServer) -> Target {
    Target {
        name: "fake".to_owned(),
        url: server.mcp_url().parse().expect("url"),
        client_id: None,
        client_secret: None,
        issuer: None,
        scope: None,
        extra_scope: None,
        client_name: "Hermes Agent".to_owned(),
        client_metadata_url: None,
        omit_resource: false,
        timeout: Duration::from_secs(10),
        user_agent: None,
        registration: Default::default(),
    }
}

fn patch(fields: Value) -> serde_json::Map<String, Value> {
    fields.as_object().cloned().expect("an object")
}

/// What nothing may receive from us once an endpoint was refused.
fn sent_anything(server: &FakeServer) -> Vec<String> {
    server
        .log()
        .requests
        .into_iter()
        .filter(|r| ["POST /token", "POST /register", "GET /authorize", "POST /revoke"].contains(&r.as_str()))
        .collect()
}

#[tokio::test]
async fn unsafe_endpoints_in_metadata_are_refused_before_any_browser_or_request() {
    let corpus: &[(&str, &str)] = &[
        ("authorization_endpoint", "javascript:alert(document.cookie)"),
        ("authorization_endpoint", "JavaScript:alert(1)//https://as.example/authorize"),
        ("authorization_endpoint", "file:///etc/passwd"),
        ("authorization_endpoint", "FILE:///C:/Windows/System32/calc.exe"),
        ("authorization_endpoint", "smb://evil.example/share/payload.exe"),
        ("authorization_endpoint", "data:text/html,<script>alert(1)</script>"),
        ("authorization_endpoint", "vbscript:msgbox(1)"),
        ("authorization_endpoint", "ms-msdt:/id PCWDiagnostic"),
        ("authorization_endpoint", "http://evil.example/authorize"),
        ("authorization_endpoint", "HtTp://EVIL.example/authorize"),
        ("authorization_endpoint", "http://localhost.evil.example/authorize"),
        ("authorization_endpoint", "http://127.0.0.1.evil.example/authorize"),
        ("authorization_endpoint", "http://127.0.0.1@evil.example/authorize"),
        ("authorization_endpoint", "https://login.trusted.example@evil.example/authorize"),
        ("token_endpoint", "http://evil.example/token"),
        ("token_endpoint", "file:///tmp/token"),
        ("registration_endpoint", "http://evil.example/register"),
        ("registration_endpoint", "smb://evil.example/register"),
        ("device_authorization_endpoint", "http://evil.example/device"),
        ("revocation_endpoint", "http://evil.example/revoke"),
        ("jwks_uri", "file:///etc/shadow"),
    ];
    for (field, value) in corpus {
        let behaviour = Behaviour { metadata_patch: patch(json!({ *field: value })), ..Behaviour::default() };
        let server = FakeServer::start(behaviour).await.expect("server");
        let rig = rig().await;
        let result = rig.engine.authorize(&target(&server), &rig.listener.redirect_uri(), None, &|_| {}).await;
        match &result {
            Err(EngineError::UnsafeEndpoint { field: refused, .. }) => assert_eq!(refused, field, "{value}"),
            other => panic!("{field} = {value}: expected a refusal, got {other:?}"),
        }
        assert_eq!(rig.opened.lock().expect("lock").clone(), Vec::<String>::new(), "{value} reached the browser");
        assert_eq!(sent_anything(&server), Vec::<String>::new(), "{field} = {value}: something was sent");
    }
}

#[tokio::test]
async fn an_unsafe_client_metadata_document_url_is_refused() {
    let behaviour = Behaviour {
        metadata_patch: patch(json!({"client_id_metadata_document_supported": true})),
        ..Behaviour::default()
    };
    let server = FakeServer::start(behaviour).await.expect("server");
    let rig = rig().await;
    let mut t = target(&server);
    t.client_metadata_url = Some("http://evil.example/client.json".to_owned());
    let result = rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &|_| {}).await;
    assert!(matches!(&result, Err(EngineError::UnsafeEndpoint { field: "client_metadata_url", .. })), "{result:?}");
    assert!(rig.opened.lock().expect("lock").is_empty());
    assert_eq!(sent_anything(&server), Vec::<String>::new());
}

#[tokio::test]
async fn a_kept_record_with_an_unsafe_token_endpoint_is_not_sent_anything() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let endpoint = TokenEndpoint {
        token_url: "http://evil.example/token".to_owned(),
        revocation_url: Some("smb://evil.example/revoke".to_owned()),
        client: mcp_auth_core::ClientRecord {
            client_id: "c".to_owned(),
            client_secret: None,
            redirect_uris: vec![],
            grant_types: vec![],
            response_types: vec![],
            scope: None,
            client_name: None,
            client_id_issued_at: None,
            token_endpoint_auth_method: "none".to_owned(),
        },
        resource: None,
    };
    let http = Http::new().expect("http");
    let token = mcp_auth_core::SecretString::new("rt");
    let refresh = endpoint.refresh(&http, &token, None).await.expect_err("refused");
    assert!(refresh.to_string().contains("refusing to send to the token endpoint"), "{refresh}");
    let revoke = endpoint.revoke(&http, &token, true).await.expect_err("refused");
    assert!(revoke.to_string().contains("refusing to send to the revocation endpoint"), "{revoke}");
    assert!(server.log().requests.is_empty());
}

/// The pre-registered client, known to both authorization servers (so that
/// without the binding the second one would get the secret and answer).
fn preregistered() -> Behaviour {
    Behaviour {
        preregistered_client: Some(("pre-client".to_owned(), "pre-secret-value".to_owned())),
        registration: false,
        ..Behaviour::default()
    }
}

fn preregistered_target(server: &FakeServer) -> Target {
    let mut t = target(server);
    t.client_id = Some("pre-client".to_owned());
    t.client_secret = Some(mcp_auth_core::SecretString::new("pre-secret-value"));
    t
}

#[tokio::test]
async fn a_client_secret_stays_with_the_issuer_it_was_first_used_with() {
    let first = FakeServer::start(preregistered()).await.expect("server");
    let other = FakeServer::start(preregistered()).await.expect("other server");
    let rig = rig().await;
    let t = preregistered_target(&first);
    let signed_in = rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &|_| {}).await.expect("first sign-in");
    let stored = Some((signed_in.client.clone(), signed_in.discovered.issuer.clone()));
    assert_eq!(first.log().grants("authorization_code"), 1);

    // The resource now names another authorization server.
    first.set_behaviour(|b| b.authorization_servers = Some(vec![other.base_url().to_owned()]));
    rig.opened.lock().expect("lock").clear();
    let result = rig.engine.authorize(&t, &rig.listener.redirect_uri(), stored, &|_| {}).await;
    let Err(e @ EngineError::SecretIssuerMismatch { .. }) = &result else {
        panic!("expected a refusal, got {result:?}");
    };
    let message = e.to_string();
    assert!(message.contains(first.base_url()) && message.contains(other.base_url()), "{message}");
    assert!(!message.contains("pre-secret-value"), "{message}");
    assert!(rig.opened.lock().expect("lock").is_empty(), "the browser was sent to the other server");
    assert_eq!(sent_anything(&other), Vec::<String>::new(), "the other server saw the client");
    assert!(other.log().token_requests.is_empty());
}

#[tokio::test]
async fn a_client_secret_stays_with_the_configured_issuer() {
    let configured = FakeServer::start(preregistered()).await.expect("server");
    let other = FakeServer::start(preregistered()).await.expect("other server");
    configured.set_behaviour(|b| b.authorization_servers = Some(vec![other.base_url().to_owned()]));
    let rig = rig().await;
    let mut t = preregistered_target(&configured);
    t.issuer = Some(format!("{}/", configured.base_url()));
    let result = rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &|_| {}).await;
    assert!(matches!(&result, Err(EngineError::SecretIssuerMismatch { why: "oauth.issuer", .. })), "{result:?}");
    assert_eq!(sent_anything(&other), Vec::<String>::new());

    // The configured issuer itself (trailing `/` or not) is fine.
    configured.set_behaviour(|b| b.authorization_servers = None);
    rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &|_| {}).await.expect("the configured issuer");
}

/// `(patch of the token response, expires_in we keep)`.
fn lifetimes() -> Vec<(Value, Option<u64>)> {
    vec![
        (json!("3600"), Some(3600)),
        (json!(" 120 "), Some(120)),
        (json!(3600.9), Some(3600)),
        (json!("3600.5"), Some(3600)),
        (json!(1e20), Some(MAX_LIFETIME_SECS)),
        (json!("1e20"), Some(MAX_LIFETIME_SECS)),
        (json!(u64::MAX), Some(MAX_LIFETIME_SECS)),
        (json!(-5), None),
        (json!("-5"), None),
        (json!("NaN"), None),
        (json!("inf"), None),
        (json!("soon"), None),
        (json!(true), None),
        (json!({"seconds": 5}), None),
    ]
}

#[tokio::test]
async fn odd_lifetimes_in_the_code_exchange_are_read_leniently() {
    for (expires_in, want) in lifetimes() {
        let behaviour =
            Behaviour { token_response_patch: patch(json!({"expires_in": expires_in})), ..Behaviour::default() };
        let server = FakeServer::start(behaviour).await.expect("server");
        let rig = rig().await;
        let got = rig
            .engine
            .authorize(&target(&server), &rig.listener.redirect_uri(), None, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("expires_in {expires_in}: {e}"));
        assert_eq!(got.tokens.expires_in, want, "expires_in {expires_in}");
        assert!(got.tokens.refresh_token.is_some(), "expires_in {expires_in}");
        assert!(got.tokens.expires_at().is_none_or(f64::is_finite));
    }
}

struct Connected {
    server: FakeServer,
    _home: tempfile::TempDir,
    target: OAuthServer,
    vault: Vault,
    refresher: Refresher,
    http: Http,
    _listener: LoopbackListener,
}

async fn connected(behaviour: Behaviour) -> Connected {
    let server = FakeServer::start(behaviour).await.expect("server");
    let (home, snapshot) = common::home_with(&server.mcp_url(), &["s"]);
    let target = find_oauth_server(&snapshot, "s", None).expect("found");
    let (engine, listener, http) = common::engine().await;
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    connect(&engine, &vault, &HermesExporter, &target, &listener.redirect_uri(), &|_| {}).await.expect("connected");
    Connected {
        server,
        _home: home,
        target,
        vault,
        refresher: Refresher::new(http.clone(), Arc::new(HermesExporter)),
        http,
        _listener: listener,
    }
}

impl Connected {
    fn record(&self) -> mcp_auth_core::CredentialRecord {
        self.vault.load(&self.target.vault_key()).expect("vault").expect("record")
    }
}

#[tokio::test]
async fn odd_lifetimes_in_a_refresh_are_read_leniently() {
    let rig = connected(Behaviour::default()).await;
    for (expires_in, want) in lifetimes() {
        rig.server.set_behaviour(|b| b.token_response_patch = patch(json!({"expires_in": expires_in})));
        rig.refresher.refresh(&rig.vault, &rig.target).await.unwrap_or_else(|e| panic!("{expires_in}: {e}"));
        let tokens = rig.record().tokens;
        assert_eq!(tokens.expires_in, want, "expires_in {expires_in}");
        assert!(tokens.expires_at.is_none_or(f64::is_finite), "expires_in {expires_in}");
        assert!(rig.server.is_valid_access_token(tokens.access_token.expose()), "expires_in {expires_in}");
    }
}

#[tokio::test]
async fn a_refresh_answer_without_an_access_token_keeps_its_new_refresh_token() {
    let rig = connected(Behaviour::default()).await;
    let spent = rig.record().tokens.refresh_token.expect("a refresh token");
    for broken in [json!({"access_token": null}), json!({"access_token": 42}), json!({"token_type": 7})] {
        rig.server.set_behaviour(|b| b.token_response_patch = patch(broken.clone()));
        let failed = rig.refresher.refresh(&rig.vault, &rig.target).await;
        assert!(matches!(&failed, Err(RefreshError::Transient(m)) if m.contains("kept")), "{broken}: {failed:?}");
        let kept = rig.record().tokens.refresh_token.expect("kept");
        assert_ne!(kept, spent, "{broken}: the spent refresh token is still the one kept");
        // The agent's file has it too: whichever refreshes next uses the live one.
        let file = mcp_auth_core::read_tokens(&rig.target.paths()).expect("agent file");
        assert_eq!(file.refresh_token, Some(kept), "{broken}");
    }
    // The server rotated every time; only the kept token still works.
    rig.server.set_behaviour(|b| b.token_response_patch = serde_json::Map::new());
    rig.refresher.refresh(&rig.vault, &rig.target).await.expect("refresh with the kept token");
    assert!(rig.server.is_valid_access_token(rig.record().tokens.access_token.expose()));
    assert_eq!(rig.record().last_error, None);
}

#[tokio::test]
async fn offline_access_is_asked_with_prompt_consent() {
    let server =
        FakeServer::start(Behaviour { oidc_offline_access: true, ..Behaviour::default() }).await.expect("server");
    let rig = rig().await;
    let got =
        rig.engine.authorize(&target(&server), &rig.listener.redirect_uri(), None, &|_| {}).await.expect("authorized");
    let asked = server.log().authorizations.last().cloned().expect("an authorization request");
    assert!(asked.get("scope").is_some_and(|s| s.split(' ').any(|x| x == "offline_access")), "{asked:?}");
    assert_eq!(asked.get("prompt").map(String::as_str), Some("consent"));
    assert!(got.tokens.refresh_token.is_some(), "an OpenID provider gave no refresh token");
}

#[tokio::test]
async fn disconnect_counts_the_revoked_refresh_token_when_access_tokens_cannot_be_revoked() {
    let rig = connected(Behaviour { unsupported_access_token_revocation: true, ..Behaviour::default() }).await;
    let refresh = rig.record().tokens.refresh_token.expect("a refresh token");
    let done = disconnect(&rig.http, &rig.vault, &HermesExporter, &rig.target).await.expect("disconnected");
    assert!(done.revoked, "{done:?}");
    assert_eq!(done.revoke_note, None);
    assert_eq!(rig.server.log().revocations, vec![refresh.expose().to_owned()]);
}

#[tokio::test]
async fn a_revocation_refusal_names_the_revocation_endpoint() {
    let rig = connected(Behaviour { unsupported_access_token_revocation: true, ..Behaviour::default() }).await;
    let record = rig.record();
    let endpoint = TokenEndpoint {
        token_url: format!("{}/token", rig.server.base_url()),
        revocation_url: Some(format!("{}/revoke", rig.server.base_url())),
        client: record.client.clone(),
        resource: None,
    };
    let e = endpoint.revoke(&rig.http, &record.tokens.access_token, false).await.expect_err("unsupported");
    assert!(e.is_unsupported_token_type(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the revocation endpoint refused: unsupported_token_type (access tokens are JWTs; revoke the refresh token)"
    );
}

/// What a hostile server writes where we show its words.
fn hostile_text() -> String {
    format!(
        "\u{1b}]8;;https://evil.example/\u{7}click here\u{1b}]8;;\u{7} \u{1b}[2J\u{1b}[1;31m\rFAKE PROMPT \u{202e}exe.gnp\u{9b}2J {}",
        "A".repeat(10 * 1024)
    )
}

fn assert_clean(text: &str, what: &str) {
    for bad in ['\u{1b}', '\r', '\n', '\u{7}', '\u{202e}', '\u{9b}'] {
        assert!(!text.contains(bad), "{what} contains {bad:?}: {text:?}");
    }
    assert!(!text.contains("]8;;"), "{what} kept an OSC 8 link: {text:?}");
    assert!(text.len() < 1024, "{what} is {} bytes long", text.len());
}

#[tokio::test]
async fn a_hostile_error_description_never_reaches_the_vaults_last_error() {
    let rig = connected(Behaviour { error_description: Some(hostile_text()), ..Behaviour::default() }).await;
    rig.server.forget_refresh_tokens();
    let failed = rig.refresher.refresh(&rig.vault, &rig.target).await;
    let Err(RefreshError::NeedsReauth(message)) = &failed else { panic!("{failed:?}") };
    assert_clean(message, "the refresh error");
    assert!(message.contains("click here"), "{message}");
    let noted = rig.record().last_error.expect("noted");
    assert_clean(&noted.message, "last_error");
}

#[tokio::test]
async fn a_hostile_registration_refusal_is_made_safe() {
    let behaviour =
        Behaviour { refuse_registration: true, error_description: Some(hostile_text()), ..Behaviour::default() };
    let server = FakeServer::start(behaviour).await.expect("server");
    let rig = rig().await;
    let result = rig.engine.authorize(&target(&server), &rig.listener.redirect_uri(), None, &|_| {}).await;
    let Err(e @ EngineError::Registration(_)) = &result else { panic!("{result:?}") };
    assert_clean(&e.to_string(), "the registration error");
}

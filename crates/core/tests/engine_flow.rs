//! The authorization engine against the in-process authorization server and
//! MCP server on loopback: the happy path and every hostile answer.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth_core::HeadlessBrowser;
use mcp_auth_core::Http;
use mcp_auth_core::LoopbackListener;
use mcp_auth_core::{CallbackError, CallbackRouter};
use mcp_auth_core::{Engine, EngineError, Step, Target};
use mcp_auth_core::{McpError, McpSession, Wire};
use mcp_auth_core::{TokenEndpoint, TokenError};
use mcp_auth_test_support::{Behaviour, FakeServer, IssMode};
use pretty_assertions::assert_eq;

struct Rig {
    engine: Engine,
    listener: LoopbackListener,
}

async fn rig() -> Rig {
    rig_with_timeout(Duration::from_secs(10)).await
}

async fn rig_with_timeout(timeout: Duration) -> Rig {
    let http = Http::with_timeout(timeout).expect("http");
    let router = CallbackRouter::new();
    let listener = LoopbackListener::bind(0, router.clone()).await.expect("listener");
    let engine = Engine::new(http.clone(), router, Arc::new(HeadlessBrowser::new(http)));
    Rig { engine, listener }
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

fn no_progress() -> impl Fn(Step) + Send + Sync {
    |_| {}
}

#[tokio::test]
async fn full_flow_registers_authorizes_and_gets_tokens() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let rig = rig().await;
    let steps = Arc::new(Mutex::new(Vec::new()));
    let seen = steps.clone();
    let progress = move |s: Step| {
        if let Ok(mut v) = seen.lock() {
            v.push(match s {
                Step::WaitingForBrowser { .. } => "browser".to_owned(),
                other => format!("{other:?}"),
            });
        }
    };
    let got = rig
        .engine
        .authorize(&target(&server), &rig.listener.redirect_uri(), None, &progress)
        .await
        .expect("authorized");

    assert!(server.is_valid_access_token(got.tokens.access_token.expose()));
    assert!(got.tokens.refresh_token.is_some());
    assert_eq!(got.tokens.expires_in, Some(3600));
    assert_eq!(got.discovered.issuer.as_deref(), Some(server.base_url()));
    assert_eq!(got.client.redirect_uris, vec![rig.listener.redirect_uri()]);
    assert_eq!(got.client.token_endpoint_auth_method, "none");
    assert_eq!(
        steps.lock().expect("steps").clone(),
        ["Probing", "Discovering", "Registering", "browser", "ExchangingCode"]
    );

    let log = server.log();
    assert_eq!(log.registrations.len(), 1);
    let registration = &log.registrations[0];
    assert_eq!(registration["application_type"], "native");
    assert_eq!(registration["redirect_uris"], serde_json::json!([rig.listener.redirect_uri()]));
    assert_eq!(registration["client_name"], "Hermes Agent");
    let authorize = &log.authorizations[0];
    assert_eq!(authorize.get("code_challenge_method").map(String::as_str), Some("S256"));
    assert_eq!(authorize.get("resource"), Some(&server.mcp_url()));
    assert_eq!(authorize.get("scope").map(String::as_str), Some("mcp:read mcp:write offline_access"));
    let token = &log.token_requests[0];
    assert_eq!(token.get("resource"), Some(&server.mcp_url()));
    assert!(token.contains_key("code_verifier"));
    // Every request the spec needs, and none more.
    assert_eq!(
        log.requests,
        [
            "POST /mcp",
            "GET /.well-known/oauth-protected-resource",
            "GET /.well-known/oauth-authorization-server",
            "POST /register",
            "GET /authorize",
            "POST /token",
        ]
    );
}

#[tokio::test]
async fn a_kept_registration_is_reused_and_a_dead_one_heals() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let rig = rig().await;
    let t = target(&server);
    let first = rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &no_progress()).await.expect("first");
    let stored = Some((first.client.clone(), first.discovered.issuer.clone()));
    let second =
        rig.engine.authorize(&t, &rig.listener.redirect_uri(), stored.clone(), &no_progress()).await.expect("second");
    assert_eq!(second.client.client_id, first.client.client_id);
    assert_eq!(server.log().registrations.len(), 1, "the registration was reused");

    // The AS forgets the client: one new registration, no loop.
    server.forget_clients();
    let third = rig.engine.authorize(&t, &rig.listener.redirect_uri(), stored, &no_progress()).await.expect("healed");
    assert_ne!(third.client.client_id, first.client.client_id);
    assert_eq!(server.log().registrations.len(), 2);
}

#[tokio::test]
async fn a_registration_for_another_redirect_uri_is_not_reused() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let rig = rig().await;
    let t = target(&server);
    let first = rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &no_progress()).await.expect("first");
    let mut moved = first.client.clone();
    moved.redirect_uris = vec!["http://127.0.0.1:1/callback".to_owned()];
    rig.engine
        .authorize(&t, &rig.listener.redirect_uri(), Some((moved, first.discovered.issuer)), &no_progress())
        .await
        .expect("second");
    assert_eq!(server.log().registrations.len(), 2);
}

async fn expect_failure(behaviour: Behaviour) -> (EngineError, FakeServer) {
    let server = FakeServer::start(behaviour).await.expect("server");
    let rig = rig().await;
    let err = rig
        .engine
        .authorize(&target(&server), &rig.listener.redirect_uri(), None, &no_progress())
        .await
        .expect_err("must fail");
    (err, server)
}

#[tokio::test]
async fn refuses_servers_without_s256() {
    let (err, server) =
        expect_failure(Behaviour { code_challenge_methods: vec!["plain".to_owned()], ..Default::default() }).await;
    assert!(matches!(err, EngineError::NoS256 { .. }), "{err}");
    assert!(
        err.to_string().contains("does not advertise PKCE S256 (code_challenge_methods_supported: plain)"),
        "{err}"
    );
    assert!(server.log().authorizations.is_empty());

    let (err, server) = expect_failure(Behaviour { code_challenge_methods: vec![], ..Default::default() }).await;
    assert!(err.to_string().contains("code_challenge_methods_supported: absent"), "{err}");
    assert!(server.log().registrations.is_empty());
}

#[tokio::test]
async fn refuses_a_prm_for_another_resource() {
    let (err, server) = expect_failure(Behaviour {
        prm_resource_override: Some("https://evil.example/mcp".to_owned()),
        ..Default::default()
    })
    .await;
    assert!(matches!(err, EngineError::ResourceMismatch(_)), "{err}");
    assert!(server.log().authorizations.is_empty());
}

#[tokio::test]
async fn refuses_metadata_with_another_issuer() {
    let (err, server) = expect_failure(Behaviour {
        metadata_issuer_override: Some("https://attacker.example".to_owned()),
        ..Default::default()
    })
    .await;
    assert!(matches!(err, EngineError::IssuerMismatch { .. } | EngineError::Discovery(_)), "{err}");
    assert!(server.log().authorizations.is_empty() && server.log().registrations.is_empty());
}

#[tokio::test]
async fn iss_checks() {
    let (err, server) = expect_failure(Behaviour { iss: IssMode::Wrong, ..Default::default() }).await;
    assert!(matches!(err, EngineError::Callback(CallbackError::IssuerMismatch { .. })), "{err}");
    assert_eq!(server.log().grants("authorization_code"), 0, "no code exchange after a wrong iss");

    let (err, server) = expect_failure(Behaviour { iss: IssMode::Missing, ..Default::default() }).await;
    assert!(matches!(err, EngineError::Callback(CallbackError::IssuerMissing { .. })), "{err}");
    assert_eq!(server.log().grants("authorization_code"), 0);

    // Not advertised and not sent: fine.
    let server = FakeServer::start(Behaviour { iss: IssMode::Absent, ..Default::default() }).await.expect("server");
    let rig = rig().await;
    rig.engine
        .authorize(&target(&server), &rig.listener.redirect_uri(), None, &no_progress())
        .await
        .expect("ok without iss");
}

#[tokio::test]
async fn oversized_metadata_is_refused() {
    let (err, _server) =
        expect_failure(Behaviour { pad_metadata_to: Some(2 * 1024 * 1024), ..Default::default() }).await;
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = FakeServer::start(Behaviour { metadata_delay: Some(Duration::from_secs(30)), ..Default::default() })
        .await
        .expect("server");
    let rig = rig_with_timeout(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let err = rig
        .engine
        .authorize(&target(&server), &rig.listener.redirect_uri(), None, &no_progress())
        .await
        .expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(err.to_string().contains("no answer"), "{err}");
}

#[tokio::test]
async fn no_registration_endpoint_needs_a_client_id() {
    let (err, _server) = expect_failure(Behaviour { registration: false, ..Default::default() }).await;
    assert!(matches!(err, EngineError::Registration(_)), "{err}");
    assert!(err.to_string().contains("configure `oauth.client_id`"), "{err}");
}

#[tokio::test]
async fn pre_registered_confidential_client_uses_basic_auth() {
    let server = FakeServer::start(Behaviour {
        registration: false,
        preregistered_client: Some(("pre-id".to_owned(), "pre-secret".to_owned())),
        ..Default::default()
    })
    .await
    .expect("server");
    let rig = rig().await;
    let mut t = target(&server);
    t.client_id = Some("pre-id".to_owned());
    t.client_secret = Some(mcp_auth_core::SecretString::new("pre-secret"));
    let got = rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &no_progress()).await.expect("authorized");
    assert_eq!(got.client.token_endpoint_auth_method, "client_secret_basic");
    assert!(server.log().registrations.is_empty());
    assert!(!format!("{got:?}").contains("pre-secret"), "Debug leaked the secret");
}

#[tokio::test]
async fn refresh_rotation_and_invalid_grant() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let rig = rig().await;
    let got = rig
        .engine
        .authorize(&target(&server), &rig.listener.redirect_uri(), None, &no_progress())
        .await
        .expect("authorized");
    let endpoint = TokenEndpoint {
        token_url: format!("{}/token", server.base_url()),
        revocation_url: Some(format!("{}/revoke", server.base_url())),
        client: got.client.clone(),
        resource: Some(server.mcp_url()),
    };
    let first_refresh = got.tokens.refresh_token.clone().expect("refresh token");
    let renewed = endpoint.refresh(rig.engine.http(), &first_refresh, None).await.expect("refreshed");
    assert!(server.is_valid_access_token(renewed.access_token.expose()));
    let rotated = renewed.refresh_token.clone().expect("rotated");
    assert_ne!(rotated, first_refresh);

    // The spent refresh token is rejected: needs a new sign-in.
    let err = endpoint.refresh(rig.engine.http(), &first_refresh, None).await.expect_err("spent");
    assert!(matches!(err, TokenError::Rejected { .. }), "{err}");
    assert!(!err.is_transient());

    // Revocation reaches the server and kills the token.
    endpoint.revoke(rig.engine.http(), &rotated, true).await.expect("revoked");
    assert_eq!(server.log().revocations, vec![rotated.expose().to_owned()]);
    assert!(matches!(endpoint.refresh(rig.engine.http(), &rotated, None).await, Err(TokenError::Rejected { .. })));
}

#[tokio::test]
async fn refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let server = FakeServer::start(Behaviour {
        rotate_refresh_tokens: false,
        omit_refresh_token_on_refresh: true,
        ..Default::default()
    })
    .await
    .expect("server");
    let rig = rig().await;
    let got = rig
        .engine
        .authorize(&target(&server), &rig.listener.redirect_uri(), None, &no_progress())
        .await
        .expect("authorized");
    let endpoint = TokenEndpoint {
        token_url: format!("{}/token", server.base_url()),
        revocation_url: None,
        client: got.client.clone(),
        resource: Some(server.mcp_url()),
    };
    let old = got.tokens.refresh_token.clone().expect("refresh token");
    let renewed = endpoint.refresh(rig.engine.http(), &old, None).await.expect("refreshed");
    assert_eq!(renewed.refresh_token, Some(old));
}

#[tokio::test]
async fn concurrent_flows_through_one_listener_do_not_mix() {
    let servers = [
        FakeServer::start(Behaviour::default()).await.expect("server"),
        FakeServer::start(Behaviour::default()).await.expect("server"),
        FakeServer::start(Behaviour::default()).await.expect("server"),
    ];
    let rig = rig().await;
    let redirect = rig.listener.redirect_uri();
    let flows = servers.iter().map(|s| {
        let t = target(s);
        let engine = rig.engine.clone();
        let redirect = redirect.clone();
        async move { engine.authorize(&t, &redirect, None, &no_progress()).await }
    });
    let results = futures_join(flows).await;
    for (server, result) in servers.iter().zip(results) {
        let got = result.expect("authorized");
        assert!(server.is_valid_access_token(got.tokens.access_token.expose()), "token from the wrong server");
        assert_eq!(got.discovered.issuer.as_deref(), Some(server.base_url()));
    }
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::new();
    // Poll them together: a tiny join_all.
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
            if let Some(fut) = slot {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *result = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    for r in results {
        out.extend(r);
    }
    out
}

#[tokio::test]
async fn step_up_asks_for_the_union_of_scopes() {
    let server = FakeServer::start(Behaviour {
        scopes_supported: Some(vec!["mcp:read".to_owned(), "offline_access".to_owned()]),
        tool_scope: Some("mcp:admin".to_owned()),
        ..Default::default()
    })
    .await
    .expect("server");
    let rig = rig().await;
    let t = target(&server);
    let mut auth =
        rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &no_progress()).await.expect("authorized");
    assert_eq!(server.log().authorizations[0].get("scope").map(String::as_str), Some("mcp:read offline_access"));

    // The tool call is refused with 403 insufficient_scope ...
    let session =
        McpSession::connect(rig.engine.http(), t.url.as_str(), Some(&auth.tokens.access_token), Wire::Initialize)
            .await
            .expect("connected");
    let err = session.call_tool("test-tool").await.expect_err("needs more scope");
    session.close().await;
    let McpError::Auth { challenge, .. } = err else { panic!("not an auth error: {err}") };
    assert!(challenge.is_insufficient_scope());
    assert_eq!(challenge.scope.as_deref(), Some("mcp:admin"));

    // ... and the step-up asks for what we had plus what is needed.
    rig.engine.step_up(&mut auth, &t, "mcp:admin", &no_progress()).await.expect("stepped up");
    let scope = server.log().authorizations[1].get("scope").cloned().unwrap_or_default();
    let mut scopes: Vec<&str> = scope.split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["mcp:admin", "mcp:read", "offline_access"]);
    let session =
        McpSession::connect(rig.engine.http(), t.url.as_str(), Some(&auth.tokens.access_token), Wire::Initialize)
            .await
            .expect("connected");
    session.call_tool("test-tool").await.expect("allowed now");
    session.close().await;

    // Attempts are limited: sign-in + 2 step-ups, then no more.
    rig.engine.step_up(&mut auth, &t, "mcp:admin", &no_progress()).await.expect("second step-up");
    assert_eq!(auth.authorizations, 3);
    let err = rig.engine.step_up(&mut auth, &t, "mcp:admin", &no_progress()).await.expect_err("limit");
    assert!(err.to_string().contains("step-up refused"), "{err}");
}

#[tokio::test]
async fn offline_access_only_when_advertised_and_resource_can_be_omitted() {
    let server =
        FakeServer::start(Behaviour { scopes_supported: Some(vec!["mcp:read".to_owned()]), ..Default::default() })
            .await
            .expect("server");
    let rig = rig().await;
    let mut t = target(&server);
    t.omit_resource = true;
    rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &no_progress()).await.expect("authorized");
    let log = server.log();
    assert_eq!(log.authorizations[0].get("scope").map(String::as_str), Some("mcp:read"));
    assert_eq!(log.authorizations[0].get("resource"), None, "resource must be left out");
    assert_eq!(log.token_requests[0].get("resource"), None, "resource must be left out of the token request");
}

#[tokio::test]
async fn the_configured_scope_is_the_fallback() {
    // Neither the challenge nor the PRM names a scope.
    let server = FakeServer::start(Behaviour { scopes_supported: None, ..Default::default() }).await.expect("server");
    let rig = rig().await;
    let mut t = target(&server);
    t.scope = Some("custom:scope".to_owned());
    rig.engine.authorize(&t, &rig.listener.redirect_uri(), None, &no_progress()).await.expect("authorized");
    assert_eq!(server.log().authorizations[0].get("scope").map(String::as_str), Some("custom:scope"));
}

#[tokio::test]
async fn a_kept_registration_uses_its_own_auth_method() {
    // The AS offers both; the registration says post: post it is.
    let server = FakeServer::start(Behaviour {
        registration: false,
        preregistered_client: Some(("kept".to_owned(), "kept-secret".to_owned())),
        ..Default::default()
    })
    .await
    .expect("server");
    server.set_client_auth_method("kept", "client_secret_post");
    let rig = rig().await;
    let kept = mcp_auth_core::ClientRecord {
        client_id: "kept".to_owned(),
        client_secret: Some(mcp_auth_core::SecretString::new("kept-secret")),
        redirect_uris: vec![rig.listener.redirect_uri()],
        token_endpoint_auth_method: "client_secret_post".to_owned(),
        grant_types: vec![],
        response_types: vec![],
        scope: None,
        client_name: None,
        client_id_issued_at: None,
    };
    rig.engine
        .authorize(
            &target(&server),
            &rig.listener.redirect_uri(),
            Some((kept, Some(server.base_url().to_owned()))),
            &no_progress(),
        )
        .await
        .expect("authorized with client_secret_post");
    assert_eq!(server.log().token_requests[0].get("client_secret").map(String::as_str), Some("kept-secret"));
}

#[tokio::test]
async fn a_redirect_with_another_state_completes_nothing() {
    let server = FakeServer::start(Behaviour { forged_state: Some("forged".to_owned()), ..Default::default() })
        .await
        .expect("server");
    let rig = rig().await;
    let mut t = target(&server);
    t.timeout = Duration::from_millis(800);
    let err = rig
        .engine
        .authorize(&t, &rig.listener.redirect_uri(), None, &no_progress())
        .await
        .expect_err("must not complete");
    assert!(matches!(err, EngineError::Callback(CallbackError::TimedOut(_))), "{err}");
    assert_eq!(server.log().grants("authorization_code"), 0, "a forged redirect must never reach the token endpoint");
}

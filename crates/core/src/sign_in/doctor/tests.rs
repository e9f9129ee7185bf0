use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::TokenFileSummary;
use crate::oauth::www_authenticate::BearerChallenge;

const BASE: &str = "https://mcp.example";
const PRM: &str = "https://mcp.example/.well-known/oauth-protected-resource/mcp";
const ASM: &str = "https://auth.example/.well-known/oauth-authorization-server";

fn target() -> Target {
    Target {
        name: "linear".to_owned(),
        url: url::Url::parse(&format!("{BASE}/mcp")).unwrap_or_else(|e| panic!("{e}")),
        client_id: None,
        client_secret: None,
        issuer: None,
        scope: None,
        extra_scope: None,
        client_name: "Hermes Agent".to_owned(),
        client_metadata_url: None,
        omit_resource: false,
        timeout: Duration::from_secs(300),
        user_agent: None,
        registration: Default::default(),
    }
}

fn get(url: &str, status: u16, body: serde_json::Value) -> Exchange {
    Exchange { method: "GET".to_owned(), url: url.to_owned(), outcome: Ok(status), body: Some(body) }
}

fn prm_doc() -> serde_json::Value {
    json!({"resource": format!("{BASE}/mcp"), "authorization_servers": ["https://auth.example"]})
}

fn asm_doc(issuer: &str, methods: serde_json::Value) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": "https://auth.example/authorize",
        "token_endpoint": "https://auth.example/token",
        "registration_endpoint": "https://auth.example/register",
        "code_challenge_methods_supported": methods,
    })
}

fn discovered() -> Discovered {
    Discovered {
        issuer: Some("https://auth.example".to_owned()),
        iss_parameter_supported: true,
        supports_cimd: false,
        can_register: true,
        token_endpoint: "https://auth.example/token".to_owned(),
        device_authorization_endpoint: None,
        auth_methods: vec!["none".to_owned()],
        metadata_json: json!({}),
        legacy: false,
    }
}

/// A server where every step passes.
fn healthy() -> Observations {
    Observations {
        target: target(),
        probe: Ok(Probe::Challenge {
            headers: vec![format!("Bearer resource_metadata=\"{PRM}\", scope=\"read\"")],
            bearer: BearerChallenge {
                resource_metadata: Some(PRM.to_owned()),
                scope: Some("read".to_owned()),
                ..Default::default()
            },
        }),
        discovery: Some(Ok(discovered())),
        registration: Some(Ok((ClientSource::Registered, "client-1".to_owned()))),
        exchanges: vec![
            get(PRM, 200, prm_doc()),
            get(ASM, 200, asm_doc("https://auth.example", json!(["S256"]))),
            Exchange {
                method: "POST".to_owned(),
                url: "https://auth.example/register".to_owned(),
                outcome: Ok(201),
                body: None,
            },
        ],
        port: PortCheck::Free { port: 8080, configured: true },
        vault: VaultView::Missing,
        now: 1000.0,
    }
}

fn step(steps: &[StepReport], name: StepName) -> StepReport {
    steps.iter().find(|s| s.step == name).cloned().unwrap_or_else(|| panic!("no step {name:?} in {steps:#?}"))
}

fn failing(steps: &[StepReport]) -> Vec<StepName> {
    steps.iter().filter(|s| s.status == Outcome::Fail).map(|s| s.step).collect()
}

#[test]
fn a_healthy_server_passes_every_step_with_evidence() {
    let steps = diagnose(&healthy());
    assert_eq!(
        steps.iter().map(|s| (s.step, s.status)).collect::<Vec<_>>(),
        vec![
            (StepName::Probe, Outcome::Ok),
            (StepName::ResourceMetadata, Outcome::Ok),
            (StepName::AuthorizationServer, Outcome::Ok),
            (StepName::Registration, Outcome::Ok),
            (StepName::RedirectPort, Outcome::Ok),
            (StepName::Vault, Outcome::Ok),
        ]
    );
    let probe = step(&steps, StepName::Probe);
    assert_eq!(probe.http_status, Some(401));
    assert!(probe.summary.contains(PRM) && probe.summary.contains("scope read"), "{}", probe.summary);
    let prm = step(&steps, StepName::ResourceMetadata);
    assert_eq!((prm.url.as_deref(), prm.http_status), (Some(PRM), Some(200)));
    assert!(prm.evidence.contains(&"resource: https://mcp.example/mcp".to_owned()), "{:?}", prm.evidence);
    let asm = step(&steps, StepName::AuthorizationServer);
    assert_eq!(asm.summary, "issuer https://auth.example; PKCE S256 supported");
    assert!(asm.evidence.contains(&"code_challenge_methods_supported: S256".to_owned()), "{:?}", asm.evidence);
    assert!(asm.evidence.contains(&"device_authorization_endpoint: absent".to_owned()), "{:?}", asm.evidence);
    let registration = step(&steps, StepName::Registration);
    assert_eq!(registration.http_status, Some(201));
    assert!(registration.summary.contains("test client `client-1`"), "{}", registration.summary);
}

#[test]
fn no_protected_resource_metadata_fails_its_step_even_when_the_fallback_works() {
    let mut o = healthy();
    o.exchanges[0] = get(PRM, 404, json!(null));
    o.exchanges.insert(1, get("https://mcp.example/.well-known/oauth-protected-resource", 404, json!(null)));
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::ResourceMetadata]);
    let prm = step(&steps, StepName::ResourceMetadata);
    assert_eq!(prm.http_status, Some(404));
    assert!(prm.hint.as_deref().is_some_and(|h| h.contains("no RFC 9728 document") && h.contains("older fallback")));
    assert_eq!(prm.evidence.len(), 2, "each URL tried: {:?}", prm.evidence);
}

#[test]
fn a_document_for_another_resource_is_pinpointed() {
    let mut o = healthy();
    o.discovery = Some(Err(EngineError::ResourceMismatch("resource https://evil.example/mcp".to_owned())));
    o.registration = None;
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::ResourceMetadata]);
    assert_eq!(step(&steps, StepName::AuthorizationServer).status, Outcome::Skipped);
    assert_eq!(step(&steps, StepName::Registration).status, Outcome::Skipped);
}

#[test]
fn a_wrong_issuer_is_named_however_rmcp_reports_it() {
    for error in [
        EngineError::IssuerMismatch {
            expected: "https://auth.example".to_owned(),
            received: "https://attacker.example".to_owned(),
        },
        EngineError::Discovery("none of the authorization servers answered with usable metadata".to_owned()),
    ] {
        let mut o = healthy();
        o.exchanges[1] = get(ASM, 200, asm_doc("https://attacker.example", json!(["S256"])));
        o.discovery = Some(Err(error));
        o.registration = None;
        let steps = diagnose(&o);
        assert_eq!(failing(&steps), vec![StepName::AuthorizationServer]);
        let asm = step(&steps, StepName::AuthorizationServer);
        assert_eq!(
            asm.summary,
            "the metadata names issuer `https://attacker.example`, expected `https://auth.example`"
        );
        assert_eq!((asm.url.as_deref(), asm.http_status), (Some(ASM), Some(200)));
        assert!(asm.hint.as_deref().is_some_and(|h| h.contains("RFC 8414")));
    }
}

#[test]
fn missing_s256_is_pinpointed() {
    let mut o = healthy();
    o.exchanges[1] = get(ASM, 200, asm_doc("https://auth.example", json!(["plain"])));
    o.discovery =
        Some(Err(EngineError::NoS256 { issuer: "https://auth.example".to_owned(), advertised: "plain".to_owned() }));
    o.registration = None;
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::AuthorizationServer]);
    let asm = step(&steps, StepName::AuthorizationServer);
    assert!(asm.hint.as_deref().is_some_and(|h| h.starts_with("the authorization server does not advertise S256")));
    assert!(asm.evidence.contains(&"code_challenge_methods_supported: plain".to_owned()), "{:?}", asm.evidence);
}

#[test]
fn a_refused_registration_shows_status_and_error() {
    let mut o = healthy();
    o.exchanges[2] = Exchange {
        method: "POST".to_owned(),
        url: "https://auth.example/register".to_owned(),
        outcome: Ok(403),
        body: Some(json!({"error": "access_denied", "error_description": "registration is closed"})),
    };
    o.registration = Some(Err(EngineError::Registration("HTTP 403 Forbidden: …".to_owned())));
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::Registration]);
    let r = step(&steps, StepName::Registration);
    assert_eq!(
        r.summary,
        "the server refused dynamic client registration (HTTP 403 access_denied: registration is closed)"
    );
    assert_eq!(r.http_status, Some(403));
    assert!(r.hint.as_deref().is_some_and(|h| h.contains("`oauth.client_id`") && h.contains("`linear`")));
}

#[test]
fn no_registration_endpoint_asks_for_a_client_id() {
    let mut o = healthy();
    o.exchanges.pop();
    o.registration = Some(Err(EngineError::Registration("no dynamic client registration".to_owned())));
    let r = step(&diagnose(&o), StepName::Registration);
    assert_eq!(r.status, Outcome::Fail);
    assert!(r.hint.as_deref().is_some_and(|h| h.starts_with("configure `oauth.client_id`")));
}

#[test]
fn ports() {
    let check = |port: PortCheck| port_step(&port, "linear");
    let busy = check(PortCheck::InUse { port: 8080, configured: true });
    assert_eq!(
        (busy.status, busy.summary.as_str()),
        (Outcome::Fail, "redirect_port 8080 is in use by another program")
    );
    assert!(busy.hint.as_deref().is_some_and(|h| h.contains("`oauth.redirect_port` for `linear`")));
    assert_eq!(check(PortCheck::InUse { port: 8080, configured: false }).status, Outcome::Warn);
    assert_eq!(check(PortCheck::Free { port: 8080, configured: false }).status, Outcome::Ok);
    assert_eq!(check(PortCheck::NotChosen).status, Outcome::Ok);
}

#[test]
fn an_unreachable_server_skips_discovery_but_still_checks_port_and_vault() {
    let mut o = healthy();
    o.probe = Err(EngineError::Unreachable { url: format!("{BASE}/mcp"), reason: "connection refused".to_owned() });
    o.discovery = None;
    o.registration = None;
    o.exchanges.clear();
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::Probe]);
    for name in [StepName::ResourceMetadata, StepName::AuthorizationServer, StepName::Registration] {
        assert_eq!(step(&steps, name).status, Outcome::Skipped);
    }
    assert_eq!(step(&steps, StepName::RedirectPort).status, Outcome::Ok);
}

#[test]
fn a_server_that_asks_for_nothing_fails_the_probe() {
    let mut o = healthy();
    o.probe = Err(EngineError::NoAuthNeeded { url: format!("{BASE}/mcp"), status: 200 });
    o.discovery = None;
    let probe = step(&diagnose(&o), StepName::Probe);
    assert_eq!((probe.status, probe.http_status), (Outcome::Fail, Some(200)));
}

#[test]
fn vault_states() {
    let tokens = |expires_at: f64, refresh: bool, issuer: &str| {
        VaultView::Present(TokenFileSummary {
            expires_at: Some(expires_at),
            lifetime_secs: Some(3600),
            has_refresh_token: refresh,
            scope: Some("read".to_owned()),
            issuer: Some(issuer.to_owned()),
            note: None,
            last_failure: None,
            client: None,
        })
    };
    let run = |view: VaultView| {
        let mut o = healthy();
        o.vault = view;
        step(&diagnose(&o), StepName::Vault)
    };
    let valid = run(tokens(1000.0 + 3120.0, true, "https://auth.example"));
    assert_eq!(
        (valid.status, valid.summary.as_str()),
        (Outcome::Ok, "tokens stored; access token valid for 52 min; a refresh token")
    );
    assert_eq!(run(tokens(400.0, true, "https://auth.example")).status, Outcome::Ok);
    let dead = run(tokens(400.0, false, "https://auth.example"));
    assert_eq!(dead.status, Outcome::Warn);
    assert_eq!(dead.hint.as_deref(), Some("sign in with `mcp-auth connect linear`"));
    let moved = run(tokens(4000.0, true, "https://old-auth.example"));
    assert_eq!(moved.status, Outcome::Warn);
    assert!(moved.hint.as_deref().is_some_and(|h| h.contains("old-auth.example")));
    assert_eq!(run(VaultView::Unavailable("no D-Bus".to_owned())).status, Outcome::Fail);
}

#[test]
fn config_failures_stand_alone() {
    let d = Diagnosis::config_failure("local", None, &ConnectError::NotOAuth { name: "local".to_owned() });
    assert!(!d.ok);
    assert_eq!(d.steps.len(), 1);
    assert_eq!(d.steps[0].step, StepName::Config);
    let json = serde_json::to_value(&d).unwrap_or_default();
    assert_eq!(json["steps"][0]["status"], "fail");
    assert_eq!(json["steps"][0]["step"], "config");
}

#[test]
fn an_unsafe_endpoint_is_refused_with_a_hint() {
    use crate::oauth::endpoint::UnsafeUrl;
    let mut o = healthy();
    let mut doc = asm_doc("https://auth.example", json!(["S256"]));
    doc["authorization_endpoint"] = json!("javascript:alert(1)\u{1b}[2J");
    o.exchanges[1] = get(ASM, 200, doc);
    o.discovery = Some(Err(EngineError::UnsafeEndpoint {
        field: "authorization_endpoint",
        url: "javascript:alert(1)".to_owned(),
        reason: UnsafeUrl::Scheme("javascript".to_owned()),
    }));
    o.registration = None;
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::AuthorizationServer]);
    assert_eq!(step(&steps, StepName::Registration).status, Outcome::Skipped);
    let asm = step(&steps, StepName::AuthorizationServer);
    assert_eq!(
        asm.summary,
        "refusing the authorization server's authorization_endpoint `javascript:alert(1)`: the `javascript:` scheme is not a web address (only https://, or http:// on this machine); nothing was opened or sent"
    );
    assert!(asm.hint.as_deref().is_some_and(|h| h.contains("only used over https://")), "{:?}", asm.hint);
    // The server's value is evidence, made safe for the terminal.
    assert!(asm.evidence.contains(&"authorization_endpoint: javascript:alert(1)".to_owned()), "{:?}", asm.evidence);
}

#[test]
fn an_unsafe_client_metadata_document_is_refused_at_registration() {
    use crate::oauth::endpoint::UnsafeUrl;
    let mut o = healthy();
    o.registration = Some(Err(EngineError::UnsafeEndpoint {
        field: "client_metadata_url",
        url: "http://me.example/c.json".to_owned(),
        reason: UnsafeUrl::PlainHttp,
    }));
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::Registration]);
    let r = step(&steps, StepName::Registration);
    assert!(r.hint.as_deref().is_some_and(|h| h.contains("mcp_auth_tray.client_metadata_url")), "{:?}", r.hint);
}

#[test]
fn a_client_secret_for_another_issuer_is_refused_at_registration() {
    let mut o = healthy();
    o.registration = Some(Err(EngineError::SecretIssuerMismatch {
        server: "linear".to_owned(),
        bound: "https://old-auth.example".to_owned(),
        found: "https://auth.example".to_owned(),
        why: "the issuer it was first used with",
    }));
    let steps = diagnose(&o);
    assert_eq!(failing(&steps), vec![StepName::Registration]);
    let r = step(&steps, StepName::Registration);
    assert!(
        r.summary.starts_with("refusing to send the client secret configured for `linear` to https://auth.example")
    );
    assert!(r.hint.as_deref().is_some_and(|h| h.contains("`oauth.issuer: https://auth.example`")), "{:?}", r.hint);
}

#[test]
fn hostile_registration_text_is_made_safe() {
    let mut o = healthy();
    o.exchanges[2] = Exchange {
        method: "POST".to_owned(),
        url: "https://auth.example/register".to_owned(),
        outcome: Ok(403),
        body: Some(
            json!({"error": "access\u{1b}[2J_denied", "error_description": "\u{1b}]8;;https://evil.example\u{7}closed\u{1b}]8;;\u{7}\r\u{202e}"}),
        ),
    };
    o.registration = Some(Err(EngineError::Registration("HTTP 403 Forbidden: …".to_owned())));
    let steps = diagnose(&o);
    let r = step(&steps, StepName::Registration);
    assert_eq!(r.summary, "the server refused dynamic client registration (HTTP 403 access_denied: closed)");
    assert_eq!(r.evidence, vec!["error: access_denied".to_owned(), "error_description: closed".to_owned()]);
}

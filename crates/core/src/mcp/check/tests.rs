use pretty_assertions::assert_eq;
use rstest::rstest;

use super::*;

const SCOPE_403: &str =
    r#"Bearer error="insufficient_scope", scope="mcp:read mcp:admin", resource_metadata="https://x/.well-known/p""#;

#[rstest]
#[case::stream_opened(200, true, &[], Some(Probe::Accepted))]
#[case::a_page_is_no_stream(200, false, &[], None)]
#[case::unauthorized(401, false, &[r#"Bearer error="invalid_token""#], Some(Probe::Unauthorized))]
#[case::insufficient_scope(403, false, &[SCOPE_403], Some(Probe::InsufficientScope(Some("mcp:read mcp:admin".into()))))]
#[case::forbidden(403, false, &[], Some(Probe::Forbidden))]
#[case::no_stream_here(405, false, &[], None)]
#[case::not_found(404, false, &[], None)]
#[case::down(503, false, &[], None)]
fn legacy_event_stream_answers(
    #[case] status: u16,
    #[case] event_stream: bool,
    #[case] challenges: &[&str],
    #[case] want: Option<Probe>,
) {
    assert_eq!(legacy_sse_answer(status, event_stream, challenges.iter().copied()), want);
}

#[rstest]
#[case::ok(200, &[], Probe::Accepted)]
#[case::accepted_notification(202, &[], Probe::Accepted)]
#[case::unauthorized(401, &[r#"Bearer error="invalid_token""#], Probe::Unauthorized)]
#[case::unauthorized_without_challenge(401, &[], Probe::Unauthorized)]
#[case::insufficient_scope(403, &[SCOPE_403], Probe::InsufficientScope(Some("mcp:read mcp:admin".into())))]
#[case::insufficient_scope_second_header(403, &[r#"Basic realm="x""#, r#"Bearer error="insufficient_scope""#], Probe::InsufficientScope(None))]
#[case::insufficient_scope_only_in_a_description(403, &[r#"Bearer error_description="not insufficient_scope""#], Probe::Forbidden)]
#[case::forbidden(403, &[], Probe::Forbidden)]
#[case::protocol_refusal_after_auth(400, &[], Probe::Accepted)]
#[case::method_not_allowed(405, &[], Probe::Accepted)]
#[case::not_acceptable(406, &[], Probe::Accepted)]
#[case::no_endpoint(404, &[], Probe::Unreachable("no MCP endpoint at this URL (HTTP 404)".into()))]
#[case::busy(429, &[], Probe::Unreachable("the server is busy (HTTP 429)".into()))]
#[case::redirect(307, &[], Probe::Unreachable("the server redirects elsewhere (HTTP 307)".into()))]
#[case::server_error(500, &[], Probe::Unreachable("the server has a problem (HTTP 500)".into()))]
#[case::bad_gateway(502, &[r#"Bearer error="invalid_token""#], Probe::Unreachable("the server has a problem (HTTP 502)".into()))]
#[case::odd(101, &[], Probe::Unreachable("unexpected answer (HTTP 101)".into()))]
fn classification(#[case] status: u16, #[case] challenges: &[&str], #[case] want: Probe) {
    assert_eq!(classify(status, challenges.iter().copied()), want);
}

#[rstest]
#[case(Some("mcp:read offline_access"), Some("mcp:admin"), Some("mcp:read offline_access mcp:admin"))]
#[case(Some("mcp:read"), Some("mcp:read"), Some("mcp:read"))]
#[case(None, Some("a  b"), Some("a b"))]
#[case(Some("a"), None, Some("a"))]
#[case(None, None, None)]
#[case(Some("  "), Some(""), None)]
fn step_up_asks_for_the_union(
    #[case] current: Option<&str>,
    #[case] required: Option<&str>,
    #[case] want: Option<&str>,
) {
    assert_eq!(step_up_scope(current, required).as_deref(), want);
}

const NOW: f64 = 1_800_000_000.0;
const H: f64 = 3600.0;

#[rstest]
#[case::never_checked(None, NOW, NOW)]
#[case::checked_an_hour_ago(Some(NOW - H), NOW - H + 3.5 * H, NOW - H + 4.5 * H)]
#[case::checked_long_ago(Some(NOW - 100.0 * H), NOW - 96.5 * H, NOW - 95.5 * H)]
#[case::clock_set_back(Some(NOW + 10.0 * H), NOW + 3.5 * H, NOW + 4.5 * H)]
fn the_cadence_is_every_four_hours_give_or_take_half_an_hour(
    #[case] last: Option<f64>,
    #[case] earliest: f64,
    #[case] latest: f64,
) {
    for id in ["a", "b", "linear", "~/notion#1234"] {
        let at = next_check_at(last, NOW, id);
        assert!((earliest..=latest).contains(&at), "{id}: {at} not in {earliest}..={latest}");
        assert_eq!(next_check_at(last, NOW, id), at, "stable per server");
    }
}

#[test]
fn the_jitter_spreads_servers() {
    let ats: std::collections::BTreeSet<i64> =
        (0..20).map(|i| next_check_at(Some(NOW), NOW, &format!("server-{i}")) as i64).collect();
    assert!(ats.len() > 10, "{ats:?}");
}

#[rstest]
// Nothing checked yet: all due now, nothing else to wake for.
#[case::all_new(&[("a", None), ("b", None)], &["a", "b"], None)]
// Just checked: none due, wake at the earliest next check.
#[case::all_fresh(&[("a", Some(NOW)), ("b", Some(NOW - H))], &[], Some(next_check_at(Some(NOW - H), NOW, "b")))]
// One due, one fresh: the fresh one waits for its own time.
#[case::one_due(&[("a", Some(NOW - 5.0 * H)), ("b", Some(NOW))], &["a"], Some(next_check_at(Some(NOW), NOW, "b")))]
// Both falling due within the window: checked together, one wake-up.
#[case::coalesced(&[("a", Some(NOW - 4.4 * H)), ("b", Some(NOW - 3.8 * H))], &["a", "b"], None)]
#[case::no_servers(&[], &[], None)]
fn background_rounds(#[case] servers: &[(&str, Option<f64>)], #[case] due: &[&str], #[case] next: Option<f64>) {
    let (got_due, got_next) = due_for_check(servers.iter().copied(), NOW);
    assert_eq!((got_due.as_slice(), got_next), (due, next));
}

#[test]
fn a_background_round_never_wakes_more_than_once_per_window() {
    // However many servers, the next wake-up is after the window (the
    // ones in the window are in this round).
    let servers: Vec<(String, Option<f64>)> =
        (0..200).map(|i| (format!("s{i}"), Some(NOW - f64::from(i) * 60.0))).collect();
    let (due, next) = due_for_check(servers.iter().map(|(id, last)| (id.as_str(), *last)), NOW);
    if let Some(next) = next {
        assert!(next > NOW + CHECK_JITTER.as_secs_f64(), "{next}");
    }
    assert!(due.len() < servers.len(), "fresh servers are not due");
}

#[test]
fn results_survive_in_the_store_and_stay_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckStore::at(dir.path().join("state").join("checks.json"));
    assert_eq!(store.load(), Checks::default());
    let key = VaultKey::new(None, "linear", "https://mcp.linear.app/mcp");
    let other = VaultKey::new(Some("work"), "linear", "https://mcp.linear.app/mcp");
    let result = CheckResult {
        checked_at: NOW,
        outcome: CheckOutcome::NeedsMoreAccess { scope: Some("mcp:admin".into()) },
        token_expires_at: Some(1_800_003_600),
        refreshed: true,
    };
    store.record(&key, &result).expect("record");
    let old = CheckResult { checked_at: NOW - 40.0 * 86400.0, outcome: CheckOutcome::Ok, ..result.clone() };
    store.record(&other, &old).expect("record");
    // A newer write drops results older than a month.
    store.record(&key, &result).expect("record");
    let checks = CheckStore::at(store.path()).load();
    assert_eq!(checks.get(&key), Some(&result));
    assert_eq!(checks.get(&other), None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.path()).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(store.path()).expect("read")).expect("json");
    insta::assert_json_snapshot!(json["servers"][key.account()], @r#"
    {
      "checked_at": 1800000000.0,
      "outcome": "needs_more_access",
      "scope": "mcp:admin",
      "token_expires_at": 1800003600,
      "refreshed": true
    }
    "#);
    // A corrupt or oversized file reads as no results.
    std::fs::write(store.path(), "{not json").expect("write");
    assert_eq!(store.load(), Checks::default());
    std::fs::write(store.path(), vec![b' '; MAX_CHECKS_FILE_BYTES as usize + 1]).expect("write");
    assert_eq!(store.load(), Checks::default());
}

/// The probe against the in-process MCP server: each answer as it comes.
#[tokio::test]
async fn probe_reads_the_servers_answer() {
    use mcp_auth_test_support::{Behaviour, FakeServer};
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let http = Http::with_timeout(CHECK_TIMEOUT).expect("http");
    let url = server.mcp_url();
    let good = SecretString::new(server.mint_access_token());
    assert_eq!(probe(&http, &url, &good).await, Probe::Accepted);
    assert_eq!(server.log().mcp_calls, vec!["initialize".to_owned()]);
    assert_eq!(probe(&http, &url, &SecretString::new("forged".to_owned())).await, Probe::Unauthorized);
    server.set_behaviour(|b| b.mcp_scope = Some("mcp:admin".to_owned()));
    assert_eq!(probe(&http, &url, &good).await, Probe::InsufficientScope(Some("mcp:admin".to_owned())));
    server.set_behaviour(|b| b.mcp_status = Some(503));
    assert_eq!(probe(&http, &url, &good).await, Probe::Unreachable("the server has a problem (HTTP 503)".to_owned()));
    server.set_behaviour(|b| b.mcp_status = None);
    server.revoke_grants();
    assert_eq!(probe(&http, &url, &good).await, Probe::Unauthorized);
    drop(server);
    match probe(&http, &url, &good).await {
        Probe::Unreachable(reason) => assert!(reason.starts_with("cannot reach"), "{reason}"),
        other => panic!("a stopped server: {other:?}"),
    }
}

/// A vault holding `server`'s minted token for each of `names`.
fn vault_with_tokens(server: &mcp_auth_test_support::FakeServer, names: &[&str]) -> (Vault, Vec<OAuthServer>) {
    use crate::vault::{CredentialRecord, MemoryBackend, StoredTokens};
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let servers: Vec<OAuthServer> = names
        .iter()
        .map(|name| OAuthServer {
            home: crate::hermes::home::Home { profile: None, path: dir.join("home") },
            name: (*name).to_owned(),
            siblings: names.iter().map(|n| (*n).to_owned()).collect(),
            url: url::Url::parse(&server.mcp_url()).expect("url"),
            oauth: crate::hermes::config::OAuthSettings { timeout_secs: 30.0, ..Default::default() },
            step_up: None,
        })
        .collect();
    for s in &servers {
        let record = CredentialRecord {
            server: s.name.clone(),
            url: s.url.to_string(),
            profile: None,
            tokens: StoredTokens {
                access_token: SecretString::new(server.mint_access_token()),
                refresh_token: None,
                expires_in: Some(3600),
                expires_at: Some(crate::util::time::now_secs() + 3600.0),
                scope: None,
            },
            issuer: Some(server.base_url().to_owned()),
            client: crate::oauth::client::ClientRecord {
                client_id: "cid".to_owned(),
                client_secret: None,
                redirect_uris: vec!["http://127.0.0.1:4545/callback".to_owned()],
                token_endpoint_auth_method: "none".to_owned(),
                grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
                response_types: vec!["code".to_owned()],
                scope: None,
                client_name: Some("Hermes Agent".to_owned()),
                client_id_issued_at: None,
            },
            metadata: None,
            obtained_at: crate::util::time::now_secs(),
            last_error: None,
        };
        vault.store(&s.vault_key(), &record).expect("store");
    }
    (vault, servers)
}

/// A background round checks only the servers that are due, keeps the
/// results, and names the next round's time; the next round at that time
/// checks the rest, and one right after checks nothing.
#[tokio::test]
async fn background_rounds_check_only_what_is_due() {
    use mcp_auth_test_support::{Behaviour, FakeServer};
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let (vault, servers) = vault_with_tokens(&server, &["a", "b"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = CheckStore::at(dir.path().join("checks.json"));
    let now = crate::util::time::now_secs();
    // `a` was checked a minute ago; `b` never.
    let fresh =
        CheckResult { checked_at: now - 60.0, outcome: CheckOutcome::Ok, token_expires_at: None, refreshed: false };
    store.record(&servers[0].vault_key(), &fresh).expect("record");
    let refresher = Refresher::new(Http::new().expect("http"), Arc::new(crate::hermes::export::HermesExporter));
    let checker = Checker::new(vault, refresher).expect("checker").with_store(store.clone());

    let round = checker.check_due(&servers).await;
    let names: Vec<&str> = round.checked.iter().map(|(s, _)| s.name.as_str()).collect();
    assert_eq!(names, vec!["b"]);
    assert!(matches!(&round.checked[0].1, Ok(Some(r)) if r.outcome == CheckOutcome::Ok), "{:?}", round.checked);
    let next = round.next_at.expect("a next round");
    let a_id = servers[0].vault_key();
    assert_eq!(next, next_check_at(Some(now - 60.0), now, a_id.account()));
    assert!(next > now + 3.0 * 3600.0, "not a polling loop: {next}");
    assert_eq!(server.log().mcp_calls, vec!["initialize".to_owned()], "one request, for b");
    assert!(store.load().get(&servers[1].vault_key()).is_some(), "b's result is kept");

    // At the next round's time, a is due (and b with it only when its own
    // time falls within the same window: one wake-up for both).
    let at = next + 1.0;
    let later = checker.clone().with_clock(move || at).check_due(&servers).await;
    let names: Vec<&str> = later.checked.iter().map(|(s, _)| s.name.as_str()).collect();
    let b_joins = next_check_at(Some(now), at, servers[1].vault_key().account()) <= at + CHECK_JITTER.as_secs_f64();
    assert_eq!(names, if b_joins { vec!["a", "b"] } else { vec!["a"] });
    let again = checker.check_due(&servers).await;
    assert!(again.checked.is_empty(), "{:?}", again.checked);
}

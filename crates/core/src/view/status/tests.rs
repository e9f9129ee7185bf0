use std::time::{Duration, UNIX_EPOCH};

use pretty_assertions::assert_eq;
use rstest::rstest;

use super::*;
use crate::hermes::home::HermesRoot;
use crate::hermes::snapshot::SnapshotLoader;
use crate::mcp::check::{CheckKind, CheckOutcome, CheckResult};
use crate::vault::VaultKey;

const NOW: f64 = 1_800_000_000.0;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
        std::fs::create_dir_all(dir.path().join("mcp-tokens")).expect("mkdir");
        Self { dir }
    }

    fn tokens(&self, stem: &str, json: &str) {
        std::fs::write(self.dir.path().join("mcp-tokens").join(format!("{stem}.json")), json).expect("write tokens");
    }

    fn report(&self) -> StatusReport {
        let snap = SnapshotLoader::new().load(&HermesRoot::at(self.dir.path()));
        StatusReport::evaluate(&snap, UNIX_EPOCH + Duration::from_secs_f64(NOW))
    }
}

fn row(report: &StatusReport, name: &str) -> ServerStatus {
    report.servers.iter().find(|s| s.name == name).cloned().unwrap_or_else(|| panic!("no row {name}"))
}

const CONFIG: &str = "mcp_servers:
  valid:
    url: https://valid.example/mcp
    auth: oauth
  soon:
    url: https://soon.example/mcp
    auth: oauth
  expired:
    url: https://expired.example/mcp
    auth: oauth
  dead:
    url: https://dead.example/mcp
    auth: oauth
  missing:
    url: https://missing.example/mcp
    auth: oauth
  corrupt:
    url: https://corrupt.example/mcp
    auth: oauth
  local:
    command: npx
  keyed:
    url: https://keyed.example/mcp
    headers:
      Authorization: Bearer ${MCP_AUTH_TRAY_TEST_UNSET_VAR}
  off:
    url: https://off.example/mcp
    auth: oauth
    enabled: false
  broken:
    url: 42
";

fn token_json(expires_at: f64, expires_in: u64, refresh: bool) -> String {
    let refresh = if refresh { r#","refresh_token":"r-secret""# } else { "" };
    format!(
        r#"{{"access_token":"a-secret","token_type":"Bearer","expires_in":{expires_in},"expires_at":{expires_at}{refresh}}}"#
    )
}

#[test]
fn states_from_the_agents_token_files() {
    let f = Fixture::new(CONFIG);
    f.tokens("valid", &token_json(NOW + 3120.0, 3600, true));
    f.tokens("soon", &token_json(NOW + 100.0, 3600, true));
    f.tokens("expired", &token_json(NOW - 5.0, 3600, true));
    f.tokens("dead", &token_json(NOW - 5.0, 3600, false));
    f.tokens("corrupt", "{not json");
    let report = f.report();

    let got: Vec<(&str, AuthLabel, AuthState)> =
        report.servers.iter().map(|s| (s.name.as_str(), s.auth, s.state)).collect();
    assert_eq!(
        got,
        vec![
            ("valid", AuthLabel::Oauth, AuthState::Connected),
            ("soon", AuthLabel::Oauth, AuthState::Expiring),
            ("expired", AuthLabel::Oauth, AuthState::Expired),
            ("dead", AuthLabel::Oauth, AuthState::NeedsReauth),
            ("missing", AuthLabel::Oauth, AuthState::NotConnected),
            ("corrupt", AuthLabel::Oauth, AuthState::Error),
            ("local", AuthLabel::Stdio, AuthState::NotApplicable),
            ("keyed", AuthLabel::Headers, AuthState::Error),
            ("off", AuthLabel::Disabled, AuthState::NotApplicable),
            ("broken", AuthLabel::Invalid, AuthState::Error),
        ]
    );
    assert_eq!(
        row(&report, "valid"),
        ServerStatus {
            profile: None,
            name: "valid".to_owned(),
            url: Some("https://valid.example/mcp".to_owned()),
            auth: AuthLabel::Oauth,
            state: AuthState::Connected,
            expires_at: Some((NOW + 3120.0) as i64),
            detail: None,
            refresh_due_at: Some(NOW + 3120.0 - 900.0),
            last_error: None,
            flow: Some(SignInFlow::Browser),
            last_check: Default::default(),
        }
    );
    assert_eq!(row(&report, "dead").detail.as_deref(), Some("the access token expired and there is no refresh token"));
    let corrupt = row(&report, "corrupt").detail.unwrap_or_default();
    assert!(corrupt.starts_with("token file is corrupt: not valid JSON; sign in again to replace it ("), "{corrupt}");
    assert!(corrupt.ends_with("corrupt.json)"), "{corrupt}");
    assert_eq!(
        row(&report, "keyed").detail.as_deref(),
        Some("Authorization needs ${MCP_AUTH_TRAY_TEST_UNSET_VAR}, which is not set (environment or .env)")
    );
    assert_eq!(
        row(&report, "broken").detail.as_deref(),
        Some("invalid entry (config.yaml line 30): `url` must be a string, found a number")
    );
    let everything = format!("{report:?}");
    assert!(!everything.contains("secret"), "a secret leaked into the report");
}

#[test]
fn header_variables_from_dotenv_count_as_set() {
    let f = Fixture::new(
        "mcp_servers:\n  keyed:\n    url: https://k/mcp\n    headers:\n      X-Key: ${MCP_AUTH_TRAY_DOTENV_KEY}\n",
    );
    std::fs::write(f.dir.path().join(".env"), "MCP_AUTH_TRAY_DOTENV_KEY=abc\n").expect("write .env");
    let keyed = row(&f.report(), "keyed");
    assert_eq!(keyed.state, AuthState::NotApplicable);
    assert_eq!(keyed.detail.as_deref(), Some("uses ${MCP_AUTH_TRAY_DOTENV_KEY} (set)"));
}

#[test]
fn colliding_token_file_names_are_errors() {
    let f = Fixture::new(
        "mcp_servers:\n  my server:\n    url: https://a/mcp\n    auth: oauth\n  my_server:\n    url: https://b/mcp\n    auth: oauth\n",
    );
    f.tokens("my_server", &token_json(NOW + 3000.0, 3600, true));
    let report = f.report();
    for name in ["my server", "my_server"] {
        let s = row(&report, name);
        assert_eq!(s.state, AuthState::Error, "{name}");
        assert!(s.detail.unwrap_or_default().contains("`my_server.json` is shared with"), "{name}");
    }
}

#[test]
fn missing_config_gives_a_hint_and_no_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = SnapshotLoader::new().load(&HermesRoot::at(dir.path()));
    let report = StatusReport::evaluate(&snap, UNIX_EPOCH + Duration::from_secs_f64(NOW));
    assert!(report.servers.is_empty());
    assert_eq!(report.hints.len(), 1);
    assert!(report.hints[0].contains("no agent config at"));
}

#[test]
fn profiles_are_listed_with_their_own_tokens() {
    let f = Fixture::new("mcp_servers:\n  a:\n    url: https://a/mcp\n    auth: oauth\n");
    let profile = f.dir.path().join("profiles").join("work");
    std::fs::create_dir_all(profile.join("mcp-tokens")).expect("mkdir");
    std::fs::write(profile.join("config.yaml"), "mcp_servers:\n  a:\n    url: https://a/mcp\n    auth: oauth\n")
        .expect("write");
    std::fs::write(profile.join("mcp-tokens").join("a.json"), token_json(NOW + 9000.0, 10000, true)).expect("write");
    let report = f.report();
    let got: Vec<(Option<&str>, AuthState)> = report.servers.iter().map(|s| (s.profile.as_deref(), s.state)).collect();
    assert_eq!(got, vec![(None, AuthState::NotConnected), (Some("work"), AuthState::Connected)]);
}

#[rstest]
#[case(3600.0, Some(3600), 2700.0)]
#[case(100.0, Some(60), 85.0)]
#[case(1000.0, None, 700.0)]
#[case(1000.0, Some(0), 700.0)]
fn refresh_due(#[case] expires_at: f64, #[case] lifetime: Option<u64>, #[case] want: f64) {
    assert_eq!(refresh_due_at(expires_at, lifetime), want);
}

const D: f64 = 86400.0;
const Y: f64 = 365.0 * D;

#[rstest]
#[case(0.0, "<1 min")]
#[case(1.0, "<1 min")]
#[case(59.0, "<1 min")]
#[case(60.0, "1 min")]
#[case(3120.0, "52 min")]
#[case(-10.0, "<1 min")]
#[case(7199.0, "119 min")]
#[case(7200.0, "2 h")]
#[case(47.0 * 3600.0, "47 h")]
#[case(2.0 * D, "2 d")]
#[case(3.0 * D + 5.0, "3 d")]
#[case(729.0 * D, "729 d")]
#[case(2.0 * Y, "2 y")]
#[case(26693.0 * D, "73 y")]
#[case(99.9 * Y, "99 y")]
#[case(100.0 * Y, "> 100 y")]
#[case(1e20, "> 100 y")]
#[case(f64::MAX, "> 100 y")]
#[case(f64::INFINITY, "> 100 y")]
#[case(f64::NEG_INFINITY, "<1 min")]
#[case(f64::NAN, "<1 min")]
fn time_left_text(#[case] secs: f64, #[case] want: &str) {
    assert_eq!(time_left(secs), want);
}

/// At many values, the next label change is where the label really changes:
/// just before it the label is the same, at it the label differs.
#[test]
fn label_changes_are_predicted_at_every_scale() {
    let mut r = 61.0;
    while r < 200.0 * Y {
        if let Some(next) = next_time_left_change(r) {
            assert!(next > 0.0, "{r}");
            assert_eq!(time_left(r - (next - 0.002)), time_left(r), "just before the change at {r}");
            assert_ne!(time_left(r - next), time_left(r), "at the change from {r}");
        } else {
            assert!(r < 60.0 || time_left(r) == "<1 min", "no change predicted at {r}");
        }
        r = r * 1.37 + 11.0;
    }
}

#[rstest]
#[case(0.0, "● github — Connected · <1 min")]
#[case(45.0 * 60.0, "● github — Connected · 45 min")]
#[case(5.0 * 3600.0, "● github — Connected · 5 h")]
#[case(30.0 * D, "● github — Connected · 30 d")]
#[case(364.0 * D, "● github — Connected · 364 d")]
#[case(365.0 * D, "● github — Connected")]
#[case(26693.0 * D, "● github — Connected")]
#[case(1e15, "● github — Connected")]
fn connected_labels_read_well_at_every_expiry(#[case] left: f64, #[case] want: &str) {
    let s = status(AuthState::Connected, AuthLabel::Oauth, Some((NOW + left) as i64), None);
    assert_eq!(menu_line(&s, NOW), want);
}

fn checked(outcome: crate::mcp::check::CheckOutcome, token_expires_at: Option<i64>) -> CheckResult {
    CheckResult { checked_at: NOW - 60.0, outcome, token_expires_at, refreshed: false }
}

#[rstest]
// About the current tokens, over a working state: applies.
#[case(
    AuthState::Connected,
    Some(5),
    CheckOutcome::Ok,
    AuthState::Connected,
    Some(CheckKind::Ok),
    "● github — Connected · <1 min"
)]
#[case(AuthState::Connected, Some(5), CheckOutcome::NeedsSignIn { reason: "refused".into() }, AuthState::NeedsReauth, Some(CheckKind::NeedsSignIn), "⚠ github — Needs sign-in")]
#[case(AuthState::Expiring, Some(5), CheckOutcome::NeedsMoreAccess { scope: Some("mcp:admin".into()) }, AuthState::NeedsMoreAccess, Some(CheckKind::NeedsMoreAccess), "⚠ github — Needs more access")]
#[case(AuthState::Connected, Some(5), CheckOutcome::Unreachable { reason: "timeout".into() }, AuthState::Connected, Some(CheckKind::Unreachable), "⊘ github — Unreachable")]
#[case(AuthState::Expired, Some(5), CheckOutcome::Unreachable { reason: "timeout".into() }, AuthState::Expired, Some(CheckKind::Unreachable), "⊘ github — Unreachable")]
// About other tokens (refreshed or signed in since): ignored.
#[case(AuthState::Connected, Some(6), CheckOutcome::NeedsSignIn { reason: "refused".into() }, AuthState::Connected, None, "● github — Connected · <1 min")]
// Over a state the vault or the files already explain: shown, the state stays.
#[case(AuthState::NeedsReauth, Some(5), CheckOutcome::NeedsSignIn { reason: "refused".into() }, AuthState::NeedsReauth, Some(CheckKind::NeedsSignIn), "⚠ github — Needs sign-in")]
#[case(AuthState::NeedsReauth, Some(5), CheckOutcome::NeedsMoreAccess { scope: None }, AuthState::NeedsReauth, Some(CheckKind::NeedsMoreAccess), "⚠ github — Needs sign-in")]
#[case(AuthState::Error, Some(5), CheckOutcome::Unreachable { reason: "x".into() }, AuthState::Error, Some(CheckKind::Unreachable), "✕ github — Error: unknown")]
// A row without tokens has nothing the check could be about.
#[case(AuthState::NotConnected, None, CheckOutcome::Ok, AuthState::NotConnected, None, "○ github — Not connected")]
fn a_check_applies_to_its_own_tokens_only(
    #[case] state: AuthState,
    #[case] checked_expiry: Option<i64>,
    #[case] outcome: CheckOutcome,
    #[case] want_state: AuthState,
    #[case] want_check: Option<CheckKind>,
    #[case] want_line: &str,
) {
    let expires = (state != AuthState::NotConnected).then_some(NOW as i64 + 5);
    let mut s = status(state, AuthLabel::Oauth, expires, None);
    apply_check(&mut s, &checked(outcome, checked_expiry.map(|e| NOW as i64 + e)));
    assert_eq!((s.state, s.last_check.check), (want_state, want_check));
    assert_eq!(menu_line(&s, NOW), want_line);
    if want_check.is_some() {
        assert_eq!(s.last_check.checked_at, Some(NOW as i64 - 60));
    }
}

#[test]
fn needs_more_access_names_the_scope_and_unreachable_keeps_the_detail() {
    let mut s = status(AuthState::Connected, AuthLabel::Oauth, Some(NOW as i64 + 5), Some("a note"));
    let mut other = s.clone();
    apply_check(
        &mut s,
        &checked(CheckOutcome::NeedsMoreAccess { scope: Some("mcp:admin".into()) }, Some(NOW as i64 + 5)),
    );
    assert_eq!(s.last_check.required_scope.as_deref(), Some("mcp:admin"));
    assert!(s.detail.as_deref().is_some_and(|d| d.contains("`mcp:admin`")), "{:?}", s.detail);
    apply_check(&mut other, &checked(CheckOutcome::Unreachable { reason: "no answer".into() }, Some(NOW as i64 + 5)));
    assert_eq!(other.detail.as_deref(), Some("unreachable when last checked: no answer; a note"));
    let report = StatusReport { servers: vec![s, other], computed_at: NOW, ..Default::default() };
    let o = report.overview();
    assert_eq!((o.connected, o.needs_more_access, o.unreachable), (0, 1, 1));
    assert_eq!(o.summary(), "1 needs more access · 1 unreachable");
    assert!(o.needs_attention());
}

fn status(state: AuthState, auth: AuthLabel, expires_at: Option<i64>, detail: Option<&str>) -> ServerStatus {
    ServerStatus {
        profile: None,
        name: "github".to_owned(),
        url: None,
        auth,
        state,
        expires_at,
        detail: detail.map(str::to_owned),
        refresh_due_at: None,
        last_error: None,
        flow: (auth == AuthLabel::Oauth).then_some(SignInFlow::Browser),
        last_check: Default::default(),
    }
}

#[rstest]
#[case(status(AuthState::Connected, AuthLabel::Oauth, Some(NOW as i64 + 3120), None), "● github — Connected · 52 min")]
#[case(status(AuthState::Connected, AuthLabel::Oauth, None, None), "● github — Connected")]
#[case(status(AuthState::Expiring, AuthLabel::Oauth, Some(NOW as i64 + 100), None), "◐ github — Refresh due · 1 min")]
#[case(status(AuthState::Expired, AuthLabel::Oauth, Some(NOW as i64 - 1), None), "◌ github — Expired, can refresh")]
#[case(status(AuthState::NotConnected, AuthLabel::Oauth, None, None), "○ github — Not connected")]
#[case(status(AuthState::NeedsReauth, AuthLabel::Oauth, None, Some("x")), "⚠ github — Needs sign-in")]
#[case(status(AuthState::NeedsMoreAccess, AuthLabel::Oauth, Some(NOW as i64 + 100), None), "⚠ github — Needs more access")]
#[case(status(AuthState::Expiring, AuthLabel::Oauth, Some(NOW as i64 + 2 * 365 * 86400), None), "◐ github — Refresh due")]
#[case(status(AuthState::Error, AuthLabel::Invalid, None, Some("bad")), "✕ github — Error: bad")]
#[case(status(AuthState::NotApplicable, AuthLabel::Stdio, None, None), "· github — Local command")]
#[case(status(AuthState::NotApplicable, AuthLabel::Headers, None, None), "· github — Static headers")]
#[case(status(AuthState::NotApplicable, AuthLabel::Disabled, None, None), "· github — Disabled")]
fn menu_lines(#[case] s: ServerStatus, #[case] want: &str) {
    assert_eq!(menu_line(&s, NOW), want);
}

#[test]
fn long_errors_are_cut_in_the_menu() {
    let s = status(AuthState::Error, AuthLabel::Oauth, None, Some(&"x".repeat(200)));
    assert_eq!(menu_line(&s, NOW).chars().count(), "✕ github — Error: ".chars().count() + 60);
}

#[test]
fn next_change_is_the_earliest_label_or_state_change() {
    let mut a = status(AuthState::Connected, AuthLabel::Oauth, Some(NOW as i64 + 3120), None);
    a.refresh_due_at = Some(NOW + 2000.0);
    let report = StatusReport { servers: vec![a], computed_at: NOW, ..Default::default() };
    // 52 min exactly: the label reads "51 min" one minute later.
    let next = report.next_change_at().expect("a change");
    assert!((next - (NOW + 60.001)).abs() < 1e-6, "{next}");

    let idle = StatusReport {
        servers: vec![status(AuthState::NotApplicable, AuthLabel::Stdio, None, None)],
        computed_at: NOW,
        ..Default::default()
    };
    assert_eq!(idle.next_change_at(), None);
}

#[test]
fn overview_summary() {
    let o = Overview { connected: 3, needs_sign_in: 1, ..Default::default() };
    assert_eq!(o.summary(), "3 connected · 1 needs sign-in");
    assert!(o.needs_attention());
    assert_eq!(Overview::default().summary(), "No OAuth servers");
}

#[test]
fn json_shape_is_stable() {
    let s = status(AuthState::Connected, AuthLabel::Oauth, Some(1_800_003_120), None);
    insta::assert_json_snapshot!(s, @r#"
    {
      "profile": null,
      "name": "github",
      "url": null,
      "auth": "oauth",
      "state": "connected",
      "expires_at": 1800003120,
      "detail": null,
      "last_error": null,
      "flow": "browser",
      "checked_at": null,
      "check": null,
      "required_scope": null
    }
    "#);
}

fn vault_summary(expires_at: f64) -> TokenFileSummary {
    TokenFileSummary {
        expires_at: Some(expires_at),
        lifetime_secs: Some(3600),
        has_refresh_token: true,
        scope: None,
        issuer: None,
        note: None,
        last_failure: None,
        client: None,
    }
}

#[test]
fn the_vault_is_the_source_of_truth() {
    let f = Fixture::new(
        "mcp_servers:\n  both:\n    url: https://b/mcp\n    auth: oauth\n  gone:\n    url: https://g/mcp\n    auth: oauth\n  agent:\n    url: https://a/mcp\n    auth: oauth\n  locked:\n    url: https://l/mcp\n    auth: oauth\n",
    );
    // The agent's file for `both` is stale; the vault has the newer expiry.
    f.tokens("both", &token_json(NOW - 10.0, 3600, true));
    f.tokens("agent", &token_json(NOW + 3000.0, 3600, true));
    f.tokens("locked", &token_json(NOW + 3000.0, 3600, true));
    let snap = SnapshotLoader::new().load(&HermesRoot::at(f.dir.path()));
    let lookup = |key: &VaultKey| {
        let account = key.account();
        if account.starts_with("~/both#") || account.starts_with("~/gone#") {
            VaultView::Present(vault_summary(NOW + 3120.0))
        } else if account.starts_with("~/locked#") {
            VaultView::Unavailable("the keychain is locked".to_owned())
        } else {
            VaultView::Missing
        }
    };
    let report = StatusReport::evaluate_with(&snap, UNIX_EPOCH + Duration::from_secs_f64(NOW), &lookup);
    let both = row(&report, "both");
    assert_eq!((both.state, both.expires_at), (AuthState::Connected, Some((NOW + 3120.0) as i64)));
    let gone = row(&report, "gone");
    assert_eq!(gone.state, AuthState::NotConnected);
    assert!(gone.detail.unwrap_or_default().starts_with("the agent signed out"));
    let agent = row(&report, "agent");
    assert_eq!(agent.state, AuthState::Connected);
    assert_eq!(agent.detail.as_deref(), Some("tokens from the agent's own sign-in, not yet kept by mcp-auth-tray"));
    let locked = row(&report, "locked");
    assert_eq!(locked.state, AuthState::Connected, "the agent's file still tells the state");
    assert_eq!(locked.detail.as_deref(), Some("keychain unavailable: the keychain is locked"));
}

#[test]
fn a_failed_refresh_noted_in_the_vault_shows() {
    let f = Fixture::new(
        "mcp_servers:\n  dead:\n    url: https://d/mcp\n    auth: oauth\n  flaky:\n    url: https://f/mcp\n    auth: oauth\n",
    );
    f.tokens("dead", &token_json(NOW + 3000.0, 3600, true));
    f.tokens("flaky", &token_json(NOW + 3000.0, 3600, true));
    let snap = SnapshotLoader::new().load(&HermesRoot::at(f.dir.path()));
    let lookup = |key: &VaultKey| {
        let needs_reauth = key.account().starts_with("~/dead#");
        VaultView::Present(TokenFileSummary {
            last_failure: Some(crate::vault::RefreshFailure {
                message: if needs_reauth { "the refresh token was rejected" } else { "timed out" }.to_owned(),
                needs_reauth,
                at: NOW - 60.0,
            }),
            ..vault_summary(NOW + 3000.0)
        })
    };
    let report = StatusReport::evaluate_with(&snap, UNIX_EPOCH + Duration::from_secs_f64(NOW), &lookup);
    let dead = row(&report, "dead");
    assert_eq!(dead.state, AuthState::NeedsReauth, "a refresh that can never work means sign in again");
    assert_eq!(dead.detail.as_deref(), Some("the refresh token was rejected"));
    assert_eq!(dead.last_error.as_deref(), Some("the refresh token was rejected"));
    let flaky = row(&report, "flaky");
    assert_eq!(flaky.state, AuthState::Connected, "a passing network error does not change the state");
    assert_eq!(flaky.last_error.as_deref(), Some("timed out"));
    let json = serde_json::to_value(&flaky).expect("json");
    assert_eq!(json["last_error"], "timed out");
}

#[rstest]
#[case::plain("https://mcp.example/mcp", "https://mcp.example/mcp")]
#[case::api_key("https://mcp.example/mcp?api_key=sk-123", "https://mcp.example/mcp?api_key=[redacted]")]
#[case::several("https://h/p?a=1&flag&b=&c=x=y", "https://h/p?a=[redacted]&flag&b=&c=[redacted]")]
#[case::fragment("https://h/p#token=abc", "https://h/p#[redacted]")]
#[case::empty_fragment("https://h/p#", "https://h/p")]
#[case::password("https://me:hunter2@h:8443/p?k=v", "https://me:[redacted]@h:8443/p?k=[redacted]")]
#[case::user_only("https://me@h/p", "https://me@h/p")]
#[case::at_in_path("https://h/p@x", "https://h/p@x")]
#[case::not_a_url("no scheme?secret=1", "no scheme?secret=[redacted]")]
fn urls_are_redacted(#[case] url: &str, #[case] want: &str) {
    assert_eq!(redact_url(url), want);
}

#[test]
fn the_json_url_is_redacted() {
    let row = ServerStatus {
        profile: None,
        name: "s".to_owned(),
        url: Some("https://h/mcp?api_key=sk-live-1".to_owned()),
        auth: AuthLabel::Headers,
        flow: None,
        last_check: Default::default(),
        state: AuthState::NotApplicable,
        expires_at: None,
        detail: None,
        last_error: None,
        refresh_due_at: None,
    };
    let json = serde_json::to_value(&row).expect("json");
    assert_eq!(json["url"], "https://h/mcp?api_key=[redacted]");
    assert_eq!(row.url.as_deref(), Some("https://h/mcp?api_key=sk-live-1"), "kept whole inside");
}

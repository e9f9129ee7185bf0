//! The service as a front end sees it, with no display: started over a
//! home, driven through sign-in, background refresh, an agent's edit, a
//! revoked grant, a disconnect and a config edit, against the fake
//! authorization server. Asserts on the view, the notices, and on the work
//! done per file event (our own writes cost no sync; an agent's edit syncs
//! that server only).
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

#[allow(dead_code, reason = "each test file uses part of the shared setup")]
mod common;

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::HeadlessBrowser;
use mcp_auth_core::Http;
use mcp_auth_core::ServerRef;
use mcp_auth_core::{
    AuthState, CheckKind, CheckStore, EngineState, HermesRoot, Notice, Service, ServiceOptions, ServiceStats,
    ServiceView, SettingsFile,
};
use mcp_auth_core::{MemoryBackend, Vault};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(20);

/// Waits until the view satisfies `ok`.
async fn view_until(service: &Service, what: &str, ok: impl Fn(&ServiceView) -> bool) -> Arc<ServiceView> {
    let mut view = service.view();
    let found = tokio::time::timeout(WAIT, view.wait_for(|v| ok(v))).await;
    match found {
        Ok(Ok(v)) => v.clone(),
        _ => panic!("the view never showed {what}; last: {:#?}", service.current().report.servers),
    }
}

/// Waits until the counters satisfy `ok` (they change with the view).
async fn stats_until(service: &Service, what: &str, ok: impl Fn(ServiceStats) -> bool) -> ServiceStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut view = service.view();
    loop {
        let stats = service.stats();
        if ok(stats) {
            return stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}; counters: {stats:?}");
        // The counters move just before a view is published.
        let _ = tokio::time::timeout(Duration::from_millis(500), view.changed()).await;
    }
}

async fn next_notice(notices: &mut broadcast::Receiver<Notice>) -> Notice {
    tokio::time::timeout(WAIT, notices.recv()).await.expect("a notice in time").expect("notices open")
}

fn state_of(view: &ServiceView, name: &str) -> Option<AuthState> {
    view.report.servers.iter().find(|s| s.name == name).map(|s| s.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_signs_in_refreshes_and_syncs_only_what_others_changed() {
    // Short-lived access tokens: the background refresh comes within seconds.
    let server = FakeServer::start(Behaviour { access_token_lifetime: 8, ..Behaviour::default() }).await.expect("AS");
    let (home, _) = common::home_with(&server.mcp_url(), &["a", "b"]);
    let settings = tempfile::tempdir().expect("tempdir");
    let service = Service::start(ServiceOptions {
        root: HermesRoot::at(home.path()),
        settings: SettingsFile::at(settings.path().join("settings.json")),
        url_scheme: "dev.example.service".to_owned(),
        vault: Some(Vault::new(Arc::new(MemoryBackend::default()))),
        check_store: Some(CheckStore::at(settings.path().join("checks.json"))),
    })
    .await
    .expect("service");
    let mut notices = service.notices();
    let a = ServerRef::new(None, "a");

    // Started: both servers read, both synced once (the first sweep).
    let view =
        view_until(&service, "the engine ready", |v| v.engine == EngineState::Ready && !v.vault.is_empty()).await;
    assert_eq!(
        (state_of(&view, "a"), state_of(&view, "b")),
        (Some(AuthState::NotConnected), Some(AuthState::NotConnected))
    );
    let start = stats_until(&service, "the first sweep", |s| s.syncs == 2).await;

    // A sign-in: a notice, the view, and our own write of the agent's files
    // comes back from the watcher without a sync.
    let http = Http::new().expect("http");
    assert!(service.connect(&a, Arc::new(HeadlessBrowser::new(http))).await.expect("connect starts"));
    assert_eq!(next_notice(&mut notices).await, Notice::Connected { server: a.clone() });
    // (Expiring at once: its tokens live seconds.)
    view_until(&service, "a connected", |v| {
        matches!(state_of(v, "a"), Some(AuthState::Connected | AuthState::Expiring))
    })
    .await;
    // A new sign-in is not probed by itself (the first background check is
    // hours away); "Check now" checks it for real (one MCP request).
    assert_eq!(service.stats().check_rounds, 0);
    service.check_now();
    view_until(&service, "a checked", |v| {
        v.report.servers.iter().any(|s| s.name == "a" && s.last_check.check == Some(CheckKind::Ok))
    })
    .await;
    let tokens = home.path().join("mcp-tokens/a.json");
    let signed_in = std::fs::read(&tokens).expect("the agent's token file");
    stats_until(&service, "the sign-in's files seen", |s| s.snapshots > start.snapshots).await;

    // The background refresh renews and rewrites the file: still no sync.
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::read(&tokens).expect("token file") == signed_in {
        assert!(tokio::time::Instant::now() < deadline, "no background refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.log().grants("refresh_token"), 1);
    let refreshed = stats_until(&service, "the refresh's files seen", |s| s.snapshots > start.snapshots + 1).await;
    assert_eq!(refreshed.syncs, 2, "our own writes caused a sync: {refreshed:?}");

    // The agent rewrites a's file (same tokens, its own formatting): a, and
    // only a, is synced.
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&tokens).expect("read")).expect("json");
    std::fs::write(&tokens, serde_json::to_vec_pretty(&value).expect("json")).expect("agent's write");
    let edited = stats_until(&service, "the agent's edit synced", |s| s.syncs > 2).await;
    assert_eq!(edited.syncs, 3, "an edit of one server's files synced others: {edited:?}");

    // "Check now": one more round, and the background cadence adds none
    // (the next is hours away).
    let rounds = service.stats().check_rounds;
    service.check_now();
    stats_until(&service, "a check round", |s| s.check_rounds == rounds + 1).await;
    assert_eq!(service.stats().check_rounds, rounds + 1);

    // The grant is revoked at the server: the next refresh fails for good,
    // and the user hears it once.
    server.forget_refresh_tokens();
    match next_notice(&mut notices).await {
        Notice::NeedsSignIn { server: got, .. } => assert_eq!(got, a),
        other => panic!("expected NeedsSignIn, got {other:?}"),
    }
    view_until(&service, "a needing sign-in", |v| state_of(v, "a") == Some(AuthState::NeedsReauth)).await;
    let before = service.stats();
    service.sync_all();
    stats_until(&service, "a forced sweep", |s| s.syncs >= before.syncs + 2).await;
    view_until(&service, "a still needing sign-in", |v| state_of(v, "a") == Some(AuthState::NeedsReauth)).await;
    assert!(matches!(notices.try_recv(), Err(broadcast::error::TryRecvError::Empty)), "a second notice");

    // Signing out: a notice, the files gone, the view back to "not connected".
    let done = service.disconnect(&a).await.expect("disconnect");
    assert!(done.had_credentials);
    assert_eq!(next_notice(&mut notices).await, Notice::Disconnected { server: a.clone(), revoked: done.revoked });
    view_until(&service, "a signed out", |v| state_of(v, "a") == Some(AuthState::NotConnected)).await;
    assert!(!tokens.exists());

    // A config edit adding a server: that server alone is synced.
    let before = stats_until(&service, "the sign-out's files seen", |_| true).await;
    let config = home.path().join("config.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!("  c:\n    url: {}\n    auth: oauth\n", server.mcp_url()));
    std::fs::write(&config, text).expect("config edit");
    view_until(&service, "c listed", |v| state_of(v, "c") == Some(AuthState::NotConnected)).await;
    assert_eq!(service.stats().syncs, before.syncs + 1, "adding c synced other servers");

    // A sign-in to a server that is not configured fails with a notice.
    let nowhere = ServerRef::new(None, "nowhere");
    let err = service.connect(&nowhere, Arc::new(HeadlessBrowser::new(Http::new().expect("http")))).await;
    assert_eq!(err.expect_err("not configured").code(), "not_found");
    assert!(matches!(next_notice(&mut notices).await, Notice::SignInFailed { server, .. } if server == nowhere));

    tokio::time::timeout(WAIT, service.shutdown()).await.expect("shutdown in time");
    assert_eq!(service.current().engine, EngineState::Ready, "the last view is kept");
    assert!(service.disconnect(&a).await.is_err(), "a stopped service does no work");
}

//! Sign-ins as the tray runs them: concurrent, cancellable, answered by one
//! router fed by the loopback listener or by deep links.
#![expect(clippy::expect_used, reason = "a test fails loudly on broken setup")]

#[allow(dead_code, reason = "each test file uses part of the shared setup")]
mod common;

use std::sync::Arc;
use std::time::Duration;

use mcp_auth_core::Delivery;
use mcp_auth_core::HermesExporter;
use mcp_auth_core::Http;
use mcp_auth_core::ServerRef;
use mcp_auth_core::find_oauth_server;
use mcp_auth_core::{AgentPaths, SettingsFile, read_tokens};
use mcp_auth_core::{Browser, BrowserFuture, HeadlessBrowser};
use mcp_auth_core::{MemoryBackend, Vault};
use mcp_auth_core::{SignInEvent, SignIns};
use mcp_auth_test_support::{Behaviour, FakeServer};
use tokio::sync::mpsc::UnboundedReceiver;

const SCHEME: &str = "dev.example.tray";

async fn next(events: &mut UnboundedReceiver<SignInEvent>) -> SignInEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("an event in time").expect("open")
}

/// A browser that never comes back (the user walked away).
struct Idle;
impl Browser for Idle {
    fn open<'a>(&'a self, _url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// A browser whose redirect is caught as a deep link (the app's URL scheme).
struct DeepLinkBrowser(Http, std::sync::Mutex<Option<SignIns>>);
impl Browser for DeepLinkBrowser {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            let response = self.0.reqwest_no_redirects().get(url).send().await.expect("authorize");
            let location = response.headers()["location"].to_str().expect("ascii").to_owned();
            assert!(location.starts_with(&format!("{SCHEME}:/callback?")), "{location}");
            let sign_ins = self.1.lock().expect("lock").clone().expect("set");
            assert_eq!(sign_ins.deliver_redirect(&location), Delivery::Completed);
            // A replay of the same redirect is refused.
            assert_eq!(sign_ins.deliver_redirect(&location), Delivery::UnknownState);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_deep_link_sign_ins_run_side_by_side_and_cancel() {
    let server = FakeServer::start(Behaviour::default()).await.expect("server");
    let (home, snapshot) = common::home_with(&server.mcp_url(), &["a", "b", "c"]);
    let settings_dir = tempfile::tempdir().expect("tempdir");
    let http = Http::new().expect("http");
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    let (sign_ins, mut events) = SignIns::new(
        http.clone(),
        vault,
        Arc::new(HermesExporter),
        SettingsFile::at(settings_dir.path().join("settings.json")),
        SCHEME,
    );
    let find = |name: &str| find_oauth_server(&snapshot, name, None).expect("found");

    // "a" waits for a browser that never returns; it can be cancelled.
    assert!(sign_ins.start(find("a"), Arc::new(Idle)));
    assert!(!sign_ins.start(find("a"), Arc::new(Idle)), "one sign-in per server");
    assert!(matches!(next(&mut events).await, SignInEvent::Started(r) if r.name == "a"));

    // Meanwhile "b" signs in through the loopback listener.
    assert!(sign_ins.start(find("b"), Arc::new(HeadlessBrowser::new(http.clone()))));
    assert!(matches!(next(&mut events).await, SignInEvent::Started(r) if r.name == "b"));
    match next(&mut events).await {
        SignInEvent::Connected(r, connected) => {
            assert_eq!(r.name, "b");
            assert!(connected.has_refresh_token);
        }
        other => panic!("{other:?}"),
    }
    let tokens_dir = home.path().join("mcp-tokens");
    assert!(read_tokens(&AgentPaths::new(&tokens_dir, "b")).is_some());

    // "c" is configured for the app's URL scheme: its redirect arrives as a deep link.
    let mut c = find("c");
    c.oauth.redirect = mcp_auth_core::RedirectKind::CustomScheme;
    let browser = Arc::new(DeepLinkBrowser(http.clone(), std::sync::Mutex::new(Some(sign_ins.clone()))));
    assert!(sign_ins.start(c, browser));
    assert!(matches!(next(&mut events).await, SignInEvent::Started(r) if r.name == "c"));
    assert!(matches!(next(&mut events).await, SignInEvent::Connected(r, _) if r.name == "c"));
    assert!(read_tokens(&AgentPaths::new(&tokens_dir, "c")).is_some());

    // Cancelling "a" ends it, and the listener goes once nothing waits.
    let a = ServerRef::new(None, "a");
    assert_eq!(sign_ins.running(), vec![a.clone()]);
    assert!(sign_ins.cancel(&a).await);
    assert!(matches!(next(&mut events).await, SignInEvent::Cancelled(r) if r == a));
    assert!(sign_ins.running().is_empty());
    assert!(read_tokens(&AgentPaths::new(&tokens_dir, "a")).is_none(), "a cancelled sign-in writes nothing");
    let port = mcp_auth_core::SettingsFile::at(settings_dir.path().join("settings.json"))
        .load()
        .redirect_port
        .expect("persisted port");
    // The listener shuts down gracefully: give it a moment.
    let mut open = true;
    for _ in 0..40 {
        open = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if !open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!open, "listener still open while idle");
}

/// A browser that approves the device code of the page it is sent to, as
/// the user would on the verification page.
struct ApprovesDevice(Arc<FakeServer>, std::sync::Mutex<Vec<String>>);
impl Browser for ApprovesDevice {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            self.1.lock().expect("lock").push(url.to_owned());
            let code = url.split_once("user_code=").map(|(_, c)| c.to_owned()).unwrap_or_default();
            assert!(self.0.approve_device(&code), "no pending code in {url}");
            Ok(())
        })
    }
}

/// `oauth.flow: device`: the tray's Connect signs in with the device grant,
/// opening the verification page (code filled in) instead of an authorization URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_flow_server_signs_in_with_a_code_from_the_tray() {
    let server =
        Arc::new(FakeServer::start(Behaviour { device_flow: true, ..Default::default() }).await.expect("server"));
    let home = tempfile::tempdir().expect("tempdir");
    let config =
        format!("mcp_servers:\n  d:\n    url: {}\n    auth: oauth\n    oauth:\n      flow: device\n", server.mcp_url());
    std::fs::write(home.path().join("config.yaml"), config).expect("config");
    let snapshot = mcp_auth_core::SnapshotLoader::new().load(&mcp_auth_core::HermesRoot::at(home.path()));
    let settings_dir = tempfile::tempdir().expect("tempdir");
    let (sign_ins, mut events) = SignIns::new(
        Http::new().expect("http"),
        Vault::new(Arc::new(MemoryBackend::default())),
        Arc::new(HermesExporter),
        SettingsFile::at(settings_dir.path().join("settings.json")),
        SCHEME,
    );
    let browser = Arc::new(ApprovesDevice(server.clone(), std::sync::Mutex::new(Vec::new())));
    assert!(sign_ins.start(find_oauth_server(&snapshot, "d", None).expect("found"), browser.clone()));
    assert!(matches!(next(&mut events).await, SignInEvent::Started(r) if r.name == "d"));
    match next(&mut events).await {
        SignInEvent::Connected(r, _) => assert_eq!(r.name, "d"),
        other => panic!("expected Connected, got {other:?}"),
    }
    let opened = browser.1.lock().expect("lock").clone();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].starts_with(&format!("{}/device?user_code=", server.base_url())), "{opened:?}");
    let log = server.log();
    assert!(log.authorizations.is_empty(), "no browser authorization");
    assert!(log.grants("urn:ietf:params:oauth:grant-type:device_code") >= 1);
    assert!(read_tokens(&AgentPaths::new(&home.path().join("mcp-tokens"), "d")).is_some(), "no tokens for the agent");
}

//! Sign-ins started from a long-running front end (the tray app): several at
//! once, each cancellable, all answered by one [`CallbackRouter`].
//!
//! The router is fed by the loopback listener (bound while at least one
//! flow waits, on the app's stable port, and released when none does, so no
//! port stays open while idle) and by deep links to the app's private-use
//! URI scheme (RFC 8252 §7.1), which the shell hands to
//! [`SignIns::deliver_redirect`]. Either way the same `state` and `iss`
//! checks apply.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt as _;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::app::settings::SettingsFile;
use crate::hermes::config::RedirectKind;
use crate::hermes::export::Exporter;
use crate::oauth::browser::Browser;
use crate::oauth::callback::{CallbackRouter, Delivery};
use crate::oauth::engine::{Engine, Step};
use crate::oauth::http::Http;
use crate::oauth::loopback::{CALLBACK_PATH, LoopbackListener, bind_stable};
use crate::sign_in::connect::{Connected, OAuthServer, connect};
use crate::util::text::error_text;
use crate::vault::Vault;
use crate::view::activity::ServerRef;

/// The reason of a sign-in that ended in a panic (a bug: its message is in the log).
pub const PANICKED: &str = "the sign-in stopped on an internal error (see the log); try again";

/// What became of a sign-in, in order: `Started`, then one of the others.
#[derive(Debug, Clone)]
pub enum SignInEvent {
    Started(ServerRef),
    Connected(ServerRef, Box<Connected>),
    /// Why, in words for the user (never a secret).
    Failed(ServerRef, String),
    Cancelled(ServerRef),
}

/// The running sign-ins of the app.
#[derive(Clone)]
pub struct SignIns {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SignIns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIns").field("scheme", &self.inner.scheme).finish_non_exhaustive()
    }
}

struct Inner {
    http: Http,
    vault: Vault,
    exporter: Arc<dyn Exporter>,
    settings: SettingsFile,
    router: CallbackRouter,
    /// The app's private-use URI scheme (reverse-domain form).
    scheme: String,
    /// Listeners bound for the running flows, by the `redirect_port` they
    /// were bound for (`None`: the app's stable port).
    listeners: tokio::sync::Mutex<Vec<(Option<u16>, LoopbackListener)>>,
    flows: Mutex<HashMap<ServerRef, AbortHandle>>,
    events: mpsc::UnboundedSender<SignInEvent>,
}

impl Inner {
    fn flows(&self) -> std::sync::MutexGuard<'_, HashMap<ServerRef, AbortHandle>> {
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the flow of `server` with `event`, unless it already ended
    /// (aborting its task when `abort`: a cancel, not the task itself);
    /// releases the listeners when it was the last one.
    async fn finish(&self, server: &ServerRef, event: SignInEvent, abort: bool) {
        let (ended, idle) = {
            let mut flows = self.flows();
            let ended = flows.remove(server);
            (ended, flows.is_empty())
        };
        if let Some(handle) = ended {
            if abort {
                handle.abort();
            }
            let _ = self.events.send(event);
        }
        if idle {
            let mut listeners = self.listeners.lock().await;
            // A flow may have started while we waited for the lock.
            if self.flows().is_empty() {
                listeners.clear();
            }
        }
    }

    /// The redirect URI for `server`, binding a listener when it needs one.
    async fn redirect_uri(&self, server: &OAuthServer) -> Result<String, String> {
        if server.oauth.redirect == RedirectKind::CustomScheme {
            return Ok(format!("{}:{CALLBACK_PATH}", self.scheme));
        }
        let configured = server.oauth.redirect_port;
        let mut listeners = self.listeners.lock().await;
        if let Some((_, listener)) = listeners.iter().find(|(port, _)| *port == configured) {
            return Ok(listener.redirect_uri());
        }
        let (listener, _) =
            bind_stable(self.router.clone(), &self.settings, configured).await.map_err(|e| match configured {
                Some(port) => format!("{}: `redirect_port: {port}` is in use by another program", error_text(&e)),
                None => error_text(&e),
            })?;
        let uri = listener.redirect_uri();
        listeners.push((configured, listener));
        Ok(uri)
    }

    async fn run(&self, server: &OAuthServer, browser: Arc<dyn Browser>) -> Result<Connected, String> {
        let redirect_uri = self.redirect_uri(server).await?;
        let engine = Engine::new(self.http.clone(), self.router.clone(), browser.clone());
        // Only the step's name: the authorization URL carries this flow's `state`.
        let progress = |step: Step| {
            // `oauth.flow: device`: the verification page (with the code
            // filled in when the server offers it) opens in the browser,
            // where the user approves; the code is for their eyes, not a credential.
            if let Step::WaitingForDevice { verification_uri, verification_uri_complete, .. } = &step {
                let (browser, page) =
                    (browser.clone(), verification_uri_complete.clone().unwrap_or(verification_uri.clone()));
                tokio::spawn(async move {
                    if let Err(e) = browser.open(&page).await {
                        tracing::warn!(error = %e, "cannot open the device verification page");
                    }
                });
            }
            let name = match step {
                Step::Probing => "probing",
                Step::Discovering => "discovering",
                Step::Registering => "registering",
                Step::WaitingForBrowser { .. } => "waiting for the browser",
                Step::ExchangingCode => "exchanging the code",
                Step::WaitingForDevice { .. } => "waiting for the device",
            };
            tracing::info!(server = %server.name, step = name, "sign-in step");
        };
        connect(&engine, &self.vault, self.exporter.as_ref(), server, &redirect_uri, &progress)
            .await
            .map_err(|e| error_text(&e))
    }
}

impl SignIns {
    /// Sign-ins that keep credentials in `vault`, hand them over through
    /// `exporter`, and report on the returned channel. `scheme` is the app's
    /// private-use URI scheme for servers configured with
    /// `redirect: custom_scheme`.
    pub fn new(
        http: Http,
        vault: Vault,
        exporter: Arc<dyn Exporter>,
        settings: SettingsFile,
        scheme: &str,
    ) -> (Self, mpsc::UnboundedReceiver<SignInEvent>) {
        let (events, receiver) = mpsc::unbounded_channel();
        let inner = Inner {
            http,
            vault,
            exporter,
            settings,
            router: CallbackRouter::new(),
            scheme: scheme.to_owned(),
            listeners: tokio::sync::Mutex::new(Vec::new()),
            flows: Mutex::new(HashMap::new()),
            events,
        };
        (Self { inner: Arc::new(inner) }, receiver)
    }

    /// Starts signing in to `server` on the current tokio runtime, opening
    /// the authorization URL with `browser`. `false` when a sign-in to it is
    /// already running.
    pub fn start(&self, server: OAuthServer, browser: Arc<dyn Browser>) -> bool {
        let r = ServerRef::new(server.home.profile.as_deref(), &server.name);
        let mut flows = self.inner.flows();
        if flows.contains_key(&r) {
            return false;
        }
        // Registered before the task can finish: it removes itself under the same lock.
        let _ = self.inner.events.send(SignInEvent::Started(r.clone()));
        let inner = self.inner.clone();
        let key = r.clone();
        let task = tokio::spawn(async move {
            // A panic anywhere in the flow (a browser launcher, a dependency)
            // still ends it: otherwise the flow stays registered, the listener
            // bound and the server "Signing in…" until the app restarts.
            let outcome = AssertUnwindSafe(inner.run(&server, browser)).catch_unwind().await;
            let event = match outcome {
                Ok(Ok(connected)) => SignInEvent::Connected(key.clone(), Box::new(connected)),
                Ok(Err(reason)) => SignInEvent::Failed(key.clone(), reason),
                Err(_) => {
                    tracing::error!(server = %key.name, "the sign-in task panicked");
                    SignInEvent::Failed(key.clone(), PANICKED.to_owned())
                }
            };
            inner.finish(&key, event, false).await;
        });
        flows.insert(r, task.abort_handle());
        true
    }

    /// Cancels the sign-in to `server`; `false` when none was running. The
    /// previous credentials, if any, stay as they were.
    pub async fn cancel(&self, server: &ServerRef) -> bool {
        let running = self.inner.flows().contains_key(server);
        self.inner.finish(server, SignInEvent::Cancelled(server.clone()), true).await;
        running
    }

    /// The servers being signed in to.
    pub fn running(&self) -> Vec<ServerRef> {
        self.inner.flows().keys().cloned().collect()
    }

    /// Hands a redirect that arrived as a deep link (`<scheme>:/callback?…`)
    /// to the waiting flow; anything else is refused as malformed.
    pub fn deliver_redirect(&self, url: &str) -> Delivery {
        let Ok(parsed) = url::Url::parse(url) else {
            return Delivery::Malformed("not a URL".to_owned());
        };
        // `scheme:/callback` as registered; URL handlers may hand it on as
        // `scheme:///callback` or `scheme://callback`.
        let place = format!("{}{}", parsed.host_str().unwrap_or(""), parsed.path());
        if parsed.scheme() != self.inner.scheme || place.trim_matches('/') != CALLBACK_PATH.trim_matches('/') {
            return Delivery::Malformed(format!("not a sign-in redirect of this app ({}:{place})", parsed.scheme()));
        }
        self.inner.router.deliver(parsed.query().unwrap_or(""))
    }
}

/// The deep links among a launch's arguments (`argv`, the program first):
/// arguments that are URLs of `scheme`. A second launch that carries one is
/// the browser handing back a sign-in; any other second launch is the user
/// starting the app again (show the window).
///
/// The program path is never a candidate, nor is anything of another scheme:
/// on Windows `C:\Program Files\…\mcp-auth-tray.exe` parses as a URL of
/// scheme `c`.
pub fn launch_deep_links<'a>(argv: &'a [String], scheme: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    argv.iter()
        .skip(1)
        .filter(move |a| url::Url::parse(a).is_ok_and(|u| u.scheme().eq_ignore_ascii_case(scheme)))
        .map(String::as_str)
}

#[cfg(test)]
mod launch_tests {
    use rstest::rstest;

    use super::launch_deep_links;

    const SCHEME: &str = "dev.mcpauthtray.app";

    #[rstest]
    #[case::no_arguments(&["/usr/bin/mcp-auth-tray"], &[])]
    #[case::windows_program_path(&[r"C:\Program Files\MCP Auth Tray\mcp-auth-tray.exe"], &[])]
    #[case::windows_path_and_autostart(&[r"C:\x\mcp-auth-tray.exe", "--autostart"], &[])]
    #[case::a_deep_link(&["/usr/bin/mcp-auth-tray", "dev.mcpauthtray.app:/callback?code=c&state=s"], &["dev.mcpauthtray.app:/callback?code=c&state=s"])]
    #[case::windows_deep_link(&[r"C:\x\mcp-auth-tray.exe", "dev.mcpauthtray.app:/callback?code=c"], &["dev.mcpauthtray.app:/callback?code=c"])]
    #[case::upper_case_scheme(&["x", "DEV.MCPAUTHTRAY.APP:/callback"], &["DEV.MCPAUTHTRAY.APP:/callback"])]
    #[case::another_scheme(&["x", "https://evil.example/"], &[])]
    #[case::a_windows_path_argument(&["x", r"D:\notes.txt"], &[])]
    #[case::the_program_named_as_our_url(&["dev.mcpauthtray.app:/callback"], &[])]
    fn deep_links_of_a_launch(#[case] argv: &[&str], #[case] want: &[&str]) {
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        assert_eq!(launch_deep_links(&argv, SCHEME).collect::<Vec<_>>(), want);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hermes::export::HermesExporter;
    use crate::vault::MemoryBackend;

    fn sign_ins() -> (SignIns, mpsc::UnboundedReceiver<SignInEvent>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = SettingsFile::at(dir.path().join("settings.json"));
        let vault = Vault::new(Arc::new(MemoryBackend::default()));
        let (s, rx) =
            SignIns::new(Http::new().expect("http"), vault, Arc::new(HermesExporter), settings, "dev.example.app");
        (s, rx, dir)
    }

    #[tokio::test]
    async fn deep_links_must_be_our_callback() {
        let (s, _rx, _dir) = sign_ins();
        assert!(matches!(s.deliver_redirect("https://evil.example/callback?code=x&state=y"), Delivery::Malformed(_)));
        assert!(matches!(s.deliver_redirect("dev.example.app:/other?code=x&state=y"), Delivery::Malformed(_)));
        assert!(matches!(s.deliver_redirect("::"), Delivery::Malformed(_)));
        for handed_on in ["dev.example.app:///callback?code=x&state=y", "dev.example.app://callback?code=x&state=y"] {
            assert_eq!(s.deliver_redirect(handed_on), Delivery::UnknownState, "{handed_on}");
        }
        // Ours, but no flow waits for this state.
        assert_eq!(s.deliver_redirect("dev.example.app:/callback?code=x&state=y"), Delivery::UnknownState);
    }

    /// A browser launcher with a bug.
    struct PanickingBrowser;

    impl Browser for PanickingBrowser {
        fn open<'a>(&'a self, _url: &'a str) -> crate::oauth::browser::BrowserFuture<'a> {
            Box::pin(async { panic!("the browser launcher crashed") })
        }
    }

    #[tokio::test]
    async fn a_panicking_sign_in_still_ends_and_frees_the_server() {
        let server = mcp_auth_test_support::FakeServer::start(Default::default()).await.expect("server");
        let (s, mut rx, dir) = sign_ins();
        let target = OAuthServer {
            home: crate::hermes::home::Home { profile: None, path: dir.path().join("home") },
            name: "fake".to_owned(),
            siblings: vec!["fake".to_owned()],
            url: url::Url::parse(&server.mcp_url()).expect("url"),
            oauth: crate::hermes::config::OAuthSettings { timeout_secs: 30.0, ..Default::default() },
            step_up: None,
        };
        let r = ServerRef::new(None, "fake");
        assert!(s.start(target.clone(), Arc::new(PanickingBrowser)));
        assert!(matches!(rx.recv().await, Some(SignInEvent::Started(ref got)) if *got == r));
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv()).await.expect("no end event");
        match ended {
            Some(SignInEvent::Failed(got, reason)) => assert_eq!((got, reason.as_str()), (r.clone(), PANICKED)),
            other => panic!("expected Failed, got {other:?}"),
        }
        assert!(s.running().is_empty(), "the flow is still registered");
        assert!(s.inner.listeners.lock().await.is_empty(), "the listener is still bound");
        // Not stuck: the server can be signed in to again.
        assert!(s.start(target, Arc::new(PanickingBrowser)));
    }

    #[tokio::test]
    async fn cancelling_nothing_reports_nothing() {
        let (s, mut rx, _dir) = sign_ins();
        assert!(!s.cancel(&ServerRef::new(None, "x")).await);
        assert!(rx.try_recv().is_err());
        assert!(s.running().is_empty());
    }
}

//! The loopback redirect listener: `http://127.0.0.1:PORT/callback`.
//!
//! One listener serves every flow of the process (flows are told apart by
//! `state` in the [`CallbackRouter`]). It binds 127.0.0.1 only — never a
//! wildcard address — answers `GET /callback` with a small self-contained page
//! saying what happened, and 404 to anything else. Redirect URIs must match
//! registrations exactly, so the port is stable: the caller passes the port
//! it persisted, and a port held by another program is reported as such
//! ([`ListenerError::PortInUse`]) so the caller can choose a new one and
//! re-register.
//!
//! Anything on the machine (and any web page, through DNS rebinding) can
//! reach the port, so the listener bounds what it gives them ([`Limits`]):
//! HTTP/1 only, one request per connection (`Connection: close` on every
//! response), the request head must arrive within a timeout, at most
//! [`Limits::max_connections`] connections at once (an extra one is closed
//! unanswered), and a `Host` other than `127.0.0.1:PORT`, `localhost:PORT`
//! or `[::1]:PORT` gets 400 before any flow is looked at: a rebinding page
//! names its own host, so it can neither deliver nor probe a redirect.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, oneshot};

use super::callback::{CallbackRouter, Delivery};
use crate::app::settings::SettingsFile;

/// The path of the redirect URI, as the agent registers it too.
pub const CALLBACK_PATH: &str = "/callback";

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Another program listens on the port.
    #[error("port {port} on 127.0.0.1 is in use by another program")]
    PortInUse { port: u16 },
    #[error("cannot listen on 127.0.0.1:{port}")]
    Io {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// A running listener; it stops when dropped.
#[derive(Debug)]
pub struct LoopbackListener {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
}

/// What one client of the listener may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The request line and headers must arrive within this; a slow or
    /// silent client is dropped.
    pub header_timeout: Duration,
    /// A connection is closed after this whatever it does (the backstop of
    /// `header_timeout`: a request body trickled forever).
    pub connection_timeout: Duration,
    /// Open connections at once; more are closed unanswered.
    pub max_connections: usize,
}

impl Default for Limits {
    /// A browser sends its redirect at once, on one or two connections.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(30),
            max_connections: 16,
        }
    }
}

impl LoopbackListener {
    /// Starts listening on 127.0.0.1:`port` (0: any free port).
    pub async fn bind(port: u16, router: CallbackRouter) -> Result<Self, ListenerError> {
        Self::bind_with(port, router, Limits::default()).await
    }

    /// [`LoopbackListener::bind`] with other [`Limits`] (tests use short ones).
    pub async fn bind_with(port: u16, router: CallbackRouter, limits: Limits) -> Result<Self, ListenerError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(ListenerError::PortInUse { port }),
            Err(source) => return Err(ListenerError::Io { port, source }),
        };
        let port = listener.local_addr().map_err(|source| ListenerError::Io { port, source })?.port();
        let app = Router::new()
            .route(CALLBACK_PATH, get(callback))
            .fallback(not_found)
            .with_state(router)
            .layer(middleware::from_fn_with_state(port, guard));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, stopped));
        tracing::debug!(port, "loopback listener ready");
        Ok(Self { port, stop: Some(stop) })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> String {
        redirect_uri(self.port)
    }
}

impl Drop for LoopbackListener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How [`bind_stable`] chose the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// The server's configured `redirect_port`.
    Configured,
    /// The app's persisted port, as before.
    Persisted,
    /// A new port (first run, or the old one was taken by another program:
    /// registrations naming `previous` must be redone).
    New { previous: Option<u16> },
}

/// Binds the port every flow should use: the server's configured
/// `redirect_port` when it has one (an error if taken: the user chose it),
/// else the app's persisted port, else a new one that is then persisted.
pub async fn bind_stable(
    router: CallbackRouter,
    settings: &SettingsFile,
    configured: Option<u16>,
) -> Result<(LoopbackListener, PortChoice), ListenerError> {
    if let Some(port) = configured {
        return Ok((LoopbackListener::bind(port, router).await?, PortChoice::Configured));
    }
    let mut saved = settings.load();
    let previous = saved.redirect_port;
    if let Some(port) = previous {
        match LoopbackListener::bind(port, router.clone()).await {
            Ok(listener) => return Ok((listener, PortChoice::Persisted)),
            Err(ListenerError::PortInUse { port }) => {
                tracing::warn!(
                    port,
                    "the app's redirect port is in use by another program; choosing a new one (servers will be registered again)"
                );
            }
            Err(e) => return Err(e),
        }
    }
    let listener = LoopbackListener::bind(0, router).await?;
    saved.redirect_port = Some(listener.port());
    if let Err(e) = settings.save(&saved) {
        tracing::warn!(error = %e, "cannot persist the redirect port; it may change next time");
    }
    Ok((listener, PortChoice::New { previous }))
}

/// The loopback redirect URI for `port`, exactly as registered.
pub fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}{CALLBACK_PATH}")
}

/// Accepts connections until `stopped`, each served on its own task within
/// `limits`. Connections still open when it stops finish on their own (within
/// `connection_timeout`); the port is free at once.
async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits, mut stopped: oneshot::Receiver<()>) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "loopback listener cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(max = limits.max_connections, "loopback listener full; connection closed");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(limits.connection_timeout, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "loopback connection ended"),
                Err(_) => tracing::debug!("loopback connection timed out"),
            }
            drop(slot);
        });
    }
}

/// Refuses a request whose `Host` is not this listener (DNS rebinding)
/// before it reaches a route, and closes every connection after its answer.
async fn guard(State(port): State<u16>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    let mut response = if host_allowed(host, port) {
        next.run(request).await
    } else {
        tracing::info!("loopback request refused: wrong Host header");
        page(StatusCode::BAD_REQUEST, "Wrong address", "This page is only served at 127.0.0.1 or localhost.")
    };
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Whether `host` (the `Host` header) names this listener: `127.0.0.1`,
/// `localhost` (any case) or `[::1]`, with exactly our port.
fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some((name, host_port)) = host.and_then(|h| h.rsplit_once(':')) else {
        return false;
    };
    let named_us = name == "127.0.0.1" || name == "[::1]" || name.eq_ignore_ascii_case("localhost");
    named_us && host_port == port.to_string()
}

async fn callback(State(router): State<CallbackRouter>, RawQuery(query): RawQuery) -> Response {
    let delivery = router.deliver(query.as_deref().unwrap_or(""));
    let (status, title, message) = match &delivery {
        Delivery::Completed => (StatusCode::OK, "Signed in", "You can close this tab and return to the app.".to_owned()),
        Delivery::Refused(reason) => (StatusCode::BAD_REQUEST, "Sign-in failed", reason.clone()),
        Delivery::UnknownState => (
            StatusCode::BAD_REQUEST,
            "Sign-in not recognised",
            "This sign-in is not in progress (it finished, timed out, or was started elsewhere). Start it again from the app.".to_owned(),
        ),
        Delivery::Malformed(reason) => (StatusCode::BAD_REQUEST, "Not a sign-in response", reason.clone()),
    };
    tracing::info!(outcome = ?std::mem::discriminant(&delivery), "redirect received");
    page(status, title, &message)
}

async fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, "Not found", "Nothing here.")
}

/// A small self-contained page (no external resources, no script).
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let ok = status.is_success();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · MCP Auth</title>\
         <style>:root{{color-scheme:light dark;font-family:system-ui,sans-serif}}body{{max-width:34rem;margin:15vh auto;padding:0 1rem}}\
         h1{{font-size:1.4rem;color:{color}}}</style></head><body><h1>{mark} {title}</h1><p>{message}</p></body></html>",
        title = escape(title),
        message = escape(message),
        color = if ok { "#1a7f37" } else { "#cf222e" },
        mark = if ok { "✓" } else { "✕" },
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
        ],
        body,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::callback::IssCheck;
    use crate::util::secret::SecretString;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A raw HTTP/1.1 GET, so the test depends on no HTTP client.
    async fn get_raw(port: u16, target: &str) -> (u16, String) {
        get_with_host(port, target, &format!("127.0.0.1:{port}")).await
    }

    /// A raw GET with this `Host`, keep-alive asked for (the listener must close anyway).
    async fn get_with_host(port: u16, target: &str, host: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        request_on(&mut stream, target, host).await
    }

    async fn request_on(stream: &mut tokio::net::TcpStream, target: &str, host: &str) -> (u16, String) {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let response = read_to_end(stream).await.expect("the listener did not close the connection");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, response)
    }

    /// Everything until the peer closes, or `None` if it keeps the connection
    /// open for 5 s.
    async fn read_to_end(stream: &mut tokio::net::TcpStream) -> Option<String> {
        let mut response = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await.ok()?;
        // A reset (the peer closed with unread input) is an end too.
        let _ = read;
        Some(String::from_utf8_lossy(&response).into_owned())
    }

    fn short(max_connections: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_secs(20),
            max_connections,
        }
    }

    #[rstest::rstest]
    #[case::ipv4(Some("127.0.0.1:4000"), true)]
    #[case::localhost(Some("localhost:4000"), true)]
    #[case::localhost_any_case(Some("LocalHost:4000"), true)]
    #[case::ipv6(Some("[::1]:4000"), true)]
    #[case::no_host(None, false)]
    #[case::no_port(Some("127.0.0.1"), false)]
    #[case::other_port(Some("127.0.0.1:4001"), false)]
    #[case::padded_port(Some("127.0.0.1:04000"), false)]
    #[case::signed_port(Some("127.0.0.1:+4000"), false)]
    #[case::rebinding(Some("evil.example:4000"), false)]
    #[case::lookalike(Some("localhost.evil.example:4000"), false)]
    #[case::other_loopback(Some("127.0.0.2:4000"), false)]
    #[case::userinfo(Some("evil@127.0.0.1:4000"), false)]
    fn host_check(#[case] host: Option<&str>, #[case] allowed: bool) {
        assert_eq!(host_allowed(host, 4000), allowed, "{host:?}");
    }

    #[tokio::test]
    async fn a_wrong_host_is_refused_without_touching_the_flow() {
        let router = CallbackRouter::new();
        let listener = LoopbackListener::bind(0, router.clone()).await.expect("bind");
        let port = listener.port();
        let pending = router.register(&SecretString::new("st"), None);

        let (status, body) = get_with_host(port, "/callback?code=evil&state=st", &format!("evil.example:{port}")).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("Wrong address"), "{body}");
        assert!(body.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{body}");
        assert_eq!(router.waiting_count(), 1, "the refused request touched the flow");

        let (status, body) = get_with_host(port, "/callback?code=right&state=st", &format!("localhost:{port}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(pending.wait(Duration::from_secs(2)).await.expect("code").code.expose(), "right");
    }

    #[tokio::test]
    async fn a_client_that_sends_half_a_header_is_dropped() {
        let router = CallbackRouter::new();
        let listener = LoopbackListener::bind_with(0, router.clone(), short(4)).await.expect("bind");
        let _pending = router.register(&SecretString::new("st"), None);
        let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", listener.port())).await.expect("connect");
        let started = std::time::Instant::now();
        slow.write_all(b"GET /callback?code=c&state=st HTTP/1.1\r\nHost: 127.0").await.expect("write");
        let answer = read_to_end(&mut slow).await.expect("the slow client was not dropped");
        assert!(started.elapsed() >= Duration::from_millis(250), "dropped before the timeout: {answer}");
        assert!(!answer.contains("200"), "{answer}");
        assert_eq!(router.waiting_count(), 1);
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_refused() {
        let limits = Limits { header_timeout: Duration::from_secs(20), ..short(2) };
        let listener = LoopbackListener::bind_with(0, CallbackRouter::new(), limits).await.expect("bind");
        let port = listener.port();
        let connect = || tokio::net::TcpStream::connect(("127.0.0.1", port));
        let mut idle = [connect().await.expect("connect"), connect().await.expect("connect")];
        let mut extra = connect().await.expect("connect");
        // Accepted in order: the extra one finds no slot and is closed unanswered.
        let answer = read_to_end(&mut extra).await.expect("the extra connection was kept open");
        assert_eq!(answer, "");
        // The first ones were kept and are still served.
        let (status, body) = request_on(&mut idle[0], "/other", &format!("127.0.0.1:{port}")).await;
        assert_eq!(status, 404, "{body}");
        // A freed slot serves a new client.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut stream = connect().await.expect("connect");
            let (status, _) = request_on(&mut stream, "/other", &format!("127.0.0.1:{port}")).await;
            if status == 404 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the freed slot never served");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn serves_callbacks_to_waiting_flows() {
        let router = CallbackRouter::new();
        let listener = LoopbackListener::bind(0, router.clone()).await.expect("bind");
        assert!(listener.redirect_uri().starts_with("http://127.0.0.1:"));
        assert!(listener.redirect_uri().ends_with("/callback"));
        let pending = router
            .register(&SecretString::new("st"), Some(IssCheck { issuer: "https://as".to_owned(), required: false }));

        let (status, body) = get_raw(listener.port(), "/callback?code=the-code&state=st").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Signed in"));
        assert!(!body.contains("the-code"), "the page must not echo the code");
        assert!(body.contains("default-src 'none'"));
        assert!(body.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{body}");
        let code = pending.wait(Duration::from_secs(2)).await.expect("code");
        assert_eq!(code.code.expose(), "the-code");

        let (status, body) = get_raw(listener.port(), "/callback?code=again&state=st").await;
        assert_eq!(status, 400);
        assert!(body.contains("Sign-in not recognised"));

        let (status, _) = get_raw(listener.port(), "/other").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn error_page_escapes_the_servers_words() {
        let router = CallbackRouter::new();
        let listener = LoopbackListener::bind(0, router.clone()).await.expect("bind");
        let _pending = router.register(&SecretString::new("st"), None);
        let (status, body) = get_raw(
            listener.port(),
            "/callback?state=st&error=access_denied&error_description=%3Cscript%3Ex%3C%2Fscript%3E",
        )
        .await;
        assert_eq!(status, 400);
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(!body.contains("<script>"));
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_as_such() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = other.local_addr().expect("addr").port();
        let err = LoopbackListener::bind(port, CallbackRouter::new()).await.expect_err("port is taken");
        assert!(matches!(err, ListenerError::PortInUse { port: p } if p == port), "{err:?}");
        assert_eq!(err.to_string(), format!("port {port} on 127.0.0.1 is in use by another program"));
    }

    #[tokio::test]
    async fn the_port_is_chosen_once_and_moves_only_when_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = SettingsFile::at(dir.path().join("settings.json"));
        let (first, choice) = bind_stable(CallbackRouter::new(), &settings, None).await.expect("bind");
        assert_eq!(choice, PortChoice::New { previous: None });
        let port = first.port();
        assert_eq!(settings.load().redirect_port, Some(port));
        drop(first);
        tokio::time::sleep(Duration::from_millis(50)).await;

        let (again, choice) = bind_stable(CallbackRouter::new(), &settings, None).await.expect("bind");
        assert_eq!((again.port(), choice), (port, PortChoice::Persisted));
        drop(again);
        tokio::time::sleep(Duration::from_millis(50)).await;

        // Another program takes it: a new port, persisted, and the caller is told.
        let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("squat");
        let (moved, choice) = bind_stable(CallbackRouter::new(), &settings, None).await.expect("bind");
        assert_eq!(choice, PortChoice::New { previous: Some(port) });
        assert_ne!(moved.port(), port);
        assert_eq!(settings.load().redirect_port, Some(moved.port()));

        // A configured port wins, and a taken configured port is an error.
        let taken = squatter.local_addr().expect("addr").port();
        let err = bind_stable(CallbackRouter::new(), &settings, Some(taken)).await.expect_err("taken");
        assert!(matches!(err, ListenerError::PortInUse { port } if port == taken));
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let listener = LoopbackListener::bind(0, CallbackRouter::new()).await.expect("bind");
        let port = listener.port();
        drop(listener);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }
}

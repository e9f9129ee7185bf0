use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::*;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn app() -> Router {
    Router::new()
        .route(
            "/ua",
            get(|h: HeaderMap| async move {
                h.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
            }),
        )
        .route("/big", get(|| async { "x".repeat(MAX_BODY_BYTES + 1) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/to-insecure",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "http://mcp-auth.invalid/x")]).into_response() }),
        )
        .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response() }))
        .route("/to-ua", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ua")]).into_response() }))
}

fn get_req(url: &str) -> reqwest::Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().expect("url"))
}

#[tokio::test]
async fn sends_a_user_agent() {
    let base = serve(app()).await;
    let r = Http::new().expect("client").send(get_req(&format!("{base}/ua")), true).await.expect("response");
    let ua = String::from_utf8(r.body).unwrap_or_default();
    assert!(ua.starts_with("mcp-auth-tray/"), "{ua}");
}

#[tokio::test]
async fn caps_bodies() {
    let base = serve(app()).await;
    let err = Http::new().expect("client").send(get_req(&format!("{base}/big")), true).await.expect_err("too large");
    assert!(matches!(err, HttpError::TooLarge { limit: MAX_BODY_BYTES, .. }), "{err}");
}

#[tokio::test]
async fn times_out() {
    let base = serve(app()).await;
    let http = Http::with_timeout(Duration::from_millis(300)).expect("client");
    let err = http.send(get_req(&format!("{base}/slow")), true).await.expect_err("timeout");
    assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn refuses_insecure_and_endless_redirects() {
    let base = serve(app()).await;
    let http = Http::new().expect("client");
    let err = http.send(get_req(&format!("{base}/to-insecure")), true).await.expect_err("insecure");
    assert!(matches!(err, HttpError::InsecureRedirect { ref to, .. } if to == "http://mcp-auth.invalid/x"), "{err}");
    let err = http.send(get_req(&format!("{base}/loop")), true).await.expect_err("loop");
    assert!(matches!(err, HttpError::TooManyRedirects { .. }), "{err}");
    // Loopback to loopback is fine; and without following, the 302 comes back.
    let ok = http.send(get_req(&format!("{base}/to-ua")), true).await.expect("followed");
    assert_eq!(ok.status, 200);
    let stopped = http.send(get_req(&format!("{base}/to-ua")), false).await.expect("not followed");
    assert_eq!(stopped.status, 302);
}

#[test]
fn redirect_rules() {
    let ok = |u: &str| redirect_allowed(&u.parse().expect("url"));
    assert!(ok("https://example.com/x"));
    assert!(ok("http://127.0.0.1:9/x"));
    assert!(ok("http://127.8.0.1/x"));
    assert!(ok("http://[::1]:9/x"));
    assert!(ok("http://localhost:9/x"));
    assert!(!ok("http://example.com/x"));
    assert!(!ok("http://10.0.0.1/x"));
    assert!(!ok("ftp://example.com/x"));
}

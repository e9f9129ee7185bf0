use std::collections::HashMap;

use rmcp::transport::streamable_http_client::StreamableHttpClient;
use rstest::rstest;

use super::*;

#[rstest]
#[case("auto", Some(RemoteTransport::Auto))]
#[case("http", Some(RemoteTransport::StreamableHttp))]
#[case("Streamable-HTTP", Some(RemoteTransport::StreamableHttp))]
#[case(" SSE ", Some(RemoteTransport::Sse))]
#[case("websocket", None)]
fn transports_by_name(#[case] text: &str, #[case] want: Option<RemoteTransport>) {
    assert_eq!(RemoteTransport::parse(text), want);
}

/// A server answering every POST with `status` (and an HTML page, as a
/// legacy server's router does).
async fn answering(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let code = axum::http::StatusCode::from_u16(status).expect("status");
    let app = axum::Router::new().fallback(move || async move { (code, "<html>nope</html>") });
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// Pins how rmcp reports the answer of a Streamable HTTP `initialize` POST
/// that a legacy server refuses: auto-detection reads it (a new rmcp
/// version that words it differently fails here, not in the field).
#[rstest]
#[case::not_found(404, true)]
#[case::method_not_allowed(405, true)]
#[case::bad_request(400, true)]
#[case::forbidden_without_challenge(403, false)]
#[case::unauthorized_without_challenge(401, false)]
#[case::rate_limited(429, false)]
#[case::server_error(503, false)]
#[tokio::test]
async fn which_streamable_http_failures_lead_to_legacy_sse(#[case] status: u16, #[case] legacy: bool) {
    let (url, task) = answering(status).await;
    let initialize: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    }))
    .expect("initialize");
    let http = crate::oauth::http::Http::new().expect("http");
    let error = http
        .reqwest()
        .post_message(url.into(), initialize, None, None, HashMap::new())
        .await
        .err()
        .unwrap_or_else(|| panic!("HTTP {status} accepted"));
    assert_eq!(http_wrong_transport(&error), legacy, "{error:?}");
    task.abort();
}

#[test]
fn the_config_names_legacy_sse() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.yaml"),
        "mcp_servers:\n  old:\n    url: https://old.example/sse\n    transport: sse\n    auth: oauth\n  new:\n    url: https://new.example/mcp\n    auth: oauth\n",
    )
    .expect("write");
    let snapshot =
        crate::hermes::snapshot::SnapshotLoader::new().load(&crate::hermes::home::HermesRoot::at(dir.path()));
    let own_file = crate::clients::OwnListFile::at(dir.path().join("servers.json"));
    std::fs::write(
        own_file.path(),
        r#"{"servers": {"ours": {"url": "https://ours.example/events", "transport": "sse"}, "plain": {"url": "https://plain.example/mcp"}}}"#,
    )
    .expect("write");
    let own = own_file.load().expect("own list");
    let of = |u: &str| declared_transport(&snapshot, &own, &url::Url::parse(u).expect("url"));
    assert_eq!(of("https://old.example/sse"), RemoteTransport::Sse);
    assert_eq!(of("https://OLD.example/sse/"), RemoteTransport::Sse, "compared as grants are");
    assert_eq!(of("https://new.example/mcp"), RemoteTransport::Auto);
    assert_eq!(of("https://ours.example/events"), RemoteTransport::Sse);
    assert_eq!(of("https://plain.example/mcp"), RemoteTransport::Auto);
    assert_eq!(of("https://elsewhere.example/sse"), RemoteTransport::Auto, "a path is a hint for detection only");
}

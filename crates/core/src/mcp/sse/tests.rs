use futures_util::StreamExt;
use rstest::rstest;

use super::*;

const SERVER: &str = "http://127.0.0.1:8931/mcp";

#[rstest]
#[case::relative_path("/messages?sessionId=abc", Ok("http://127.0.0.1:8931/messages?sessionId=abc"))]
#[case::relative_to_the_folder("messages?sessionId=1", Ok("http://127.0.0.1:8931/messages?sessionId=1"))]
#[case::absolute_same_origin("http://127.0.0.1:8931/m", Ok("http://127.0.0.1:8931/m"))]
#[case::surrounding_space("  /m \n", Ok("http://127.0.0.1:8931/m"))]
#[case::other_host("http://evil.example/messages", Err("another origin"))]
#[case::scheme_relative_other_host("//evil.example/messages", Err("another origin"))]
#[case::other_port("http://127.0.0.1:8932/messages", Err("another origin"))]
#[case::other_scheme("https://127.0.0.1:8931/messages", Err("another origin"))]
#[case::loopback_by_another_name("http://localhost:8931/messages", Err("another origin"))]
#[case::user_info_trick("http://127.0.0.1:8931@evil.example/m", Err("another origin"))]
#[case::javascript("javascript:alert(1)", Err("another origin"))]
#[case::file("file:///etc/passwd", Err("another origin"))]
#[case::empty("   ", Err("it is empty"))]
#[case::too_long(&format!("/{}", "a".repeat(MAX_ENDPOINT_BYTES)), Err("longer than 2048 bytes"))]
fn the_messages_endpoint_stays_on_the_servers_origin(#[case] data: &str, #[case] want: Result<&str, &str>) {
    let server = url::Url::parse(SERVER).expect("url");
    match (endpoint_url(&server, data), want) {
        (Ok(got), Ok(want)) => assert_eq!(got.as_str(), want),
        (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e}"),
        (got, want) => panic!("{data:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn the_default_port_is_the_same_origin() {
    let server = url::Url::parse("https://mcp.example/sse").expect("url");
    let got = endpoint_url(&server, "https://mcp.example:443/messages").expect("same origin");
    assert_eq!(got.as_str(), "https://mcp.example/messages");
}

#[test]
fn a_cross_origin_endpoint_is_a_clear_error() {
    let server = url::Url::parse(SERVER).expect("url");
    let error = endpoint_url(&server, "https://evil.example/steal?token=x").expect_err("refused");
    assert_eq!(
        error.to_string(),
        "the legacy SSE server http://127.0.0.1:8931/mcp named a messages endpoint on another origin (https://evil.example/steal?token=[redacted]); refusing to send anything there"
    );
}

#[rstest]
#[case::small_events(&[b"event: message\ndata: 12345\n\n".as_slice()], 40, true)]
#[case::one_event_over(&[b"data: 0123456789012345678901234567890\n\n".as_slice()], 20, false)]
#[case::many_small_events_reset_at_blank_lines(&[b"data: 0123456789\n\ndata: 0123456789\n\ndata: 0123456789\n\n".as_slice()], 20, true)]
#[case::data_lines_add_up(&[b"data: 012345\ndata: 012345\ndata: 012345\n".as_slice()], 20, false)]
#[case::crlf_lines(&[b"data: 0123456789\r\n\r\ndata: 0123456789\r\n\r\n".as_slice()], 20, true)]
#[case::cr_lines(&[b"data: 0123456789\r\rdata: 0123456789\r\r".as_slice()], 20, true)]
#[case::split_across_chunks(&[b"data: 01234".as_slice(), b"56789".as_slice(), b"0123456789\n".as_slice()], 20, false)]
#[case::comments_are_not_kept(&[b":0123456789\n:0123456789\n:0123456789\ndata: x\n\n".as_slice()], 20, true)]
#[case::but_one_long_comment_is_cut(&[b":012345678901234567890123456789\n".as_slice()], 20, false)]
#[case::a_line_without_end(&[b"data: 0123456789".as_slice(), b"0123456789".as_slice()], 20, false)]
fn events_are_bounded_before_parsing(#[case] chunks: &[&[u8]], #[case] max: usize, #[case] fits: bool) {
    let mut limit = EventSizeLimit::new(max);
    let all = chunks.iter().all(|c| limit.observe(c));
    assert_eq!(all, fits);
}

fn chunks(
    parts: &[&'static str],
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    let parts: Vec<Result<bytes::Bytes, std::io::Error>> =
        parts.iter().map(|p| Ok(bytes::Bytes::from_static(p.as_bytes()))).collect();
    futures_util::stream::iter(parts)
}

#[tokio::test]
async fn the_parser_yields_events_and_stops_at_an_oversized_one() {
    let big = "data: 0123456789012345678901234567890123456789\n\n";
    let stream = chunks(&["event: endpoint\ndata: /m?s=1\n\n", "event: message\ndata: {}\n\n", big, "data: after\n\n"]);
    let events: Vec<_> = bounded_events(stream, 32).collect().await;
    assert_eq!(events.len(), 3, "{events:?}");
    let first = events[0].as_ref().expect("endpoint");
    assert_eq!((first.event.as_deref(), first.data.as_deref()), (Some("endpoint"), Some("/m?s=1")));
    let second = events[1].as_ref().expect("message");
    assert_eq!((second.event.as_deref(), second.data.as_deref()), (Some("message"), Some("{}")));
    assert!(events[2].as_ref().is_err_and(is_too_large), "{:?}", events[2]);
}

#[rstest]
#[case::not_found(404, true)]
#[case::method_not_allowed(405, true)]
#[case::bad_request(400, true)]
#[case::unsupported_media_type(415, true)]
#[case::unauthorized(401, false)]
#[case::forbidden(403, false)]
#[case::rate_limited(429, false)]
#[case::server_error(500, false)]
#[case::ok(200, false)]
fn which_statuses_say_not_this_transport(#[case] status: u16, #[case] wrong: bool) {
    assert_eq!(wrong_transport_status(status), wrong);
}

#[rstest]
#[case::message_event(Some("message"), Some(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), true)]
#[case::unnamed_event(None, Some(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#), true)]
#[case::other_event(Some("ping"), Some(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), false)]
#[case::not_json_rpc(Some("message"), Some("hello"), false)]
#[case::no_data(Some("message"), None, false)]
fn only_message_events_carry_messages(#[case] event: Option<&str>, #[case] data: Option<&str>, #[case] message: bool) {
    let sse = sse_stream::Sse { event: event.map(str::to_owned), data: data.map(str::to_owned), id: None, retry: None };
    assert_eq!(message_of(sse).is_some(), message);
}

//! `mcp-auth status --check` as a real process against the in-process
//! authorization and MCP server: what the server says wins over what the
//! expiry times suggest.
// Linux only: XDG folder isolation, D-Bus, a real Secret Service.
#![cfg(target_os = "linux")]

use mcp_auth_e2e::cli::{Setup, Store, connect_no_browser};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;
use serde_json::Value;

/// Runs `mcp-auth <args>` (to the end) and returns (exit code, stdout, stderr).
fn run(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = setup.command(args).output().unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `fake` row of `status [--check] --json`.
fn fake_row(setup: &Setup, check: bool) -> Value {
    let args: &[&str] = if check { &["status", "--check", "--json"] } else { &["status", "--json"] };
    let (code, out, err) = run(setup, args);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let rows: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "fake"))
        .cloned()
        .unwrap_or_else(|| panic!("no fake row: {out}"))
}

async fn connected(behaviour: Behaviour) -> (FakeServer, Setup) {
    let server = FakeServer::start(behaviour).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    (server, setup)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_grant_checks_ok_and_the_result_is_kept() {
    let (server, setup) = connected(Behaviour::default()).await;
    // Without --check: no check yet.
    let row = fake_row(&setup, false);
    assert_eq!(
        (row["state"].clone(), row["check"].clone(), row["checked_at"].clone()),
        ("connected".into(), Value::Null, Value::Null)
    );
    let before = now();
    let row = fake_row(&setup, true);
    assert_eq!(row["state"], "connected");
    assert_eq!(row["check"], "ok");
    let checked_at = row["checked_at"].as_i64().unwrap_or_else(|| panic!("no checked_at: {row}"));
    assert!((before - 1..=now()).contains(&checked_at), "{checked_at}");
    assert_eq!(server.log().mcp_calls.iter().filter(|m| *m == "initialize").count(), 1);
    assert_eq!(server.log().refreshes.len(), 0, "a working token is not refreshed");
    // Kept: a later plain status still shows it.
    let row = fake_row(&setup, false);
    assert_eq!((row["check"].clone(), row["checked_at"].as_i64()), ("ok".into(), Some(checked_at)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_at_the_server_is_refreshed_once_then_needs_sign_in() {
    let (server, setup) = connected(Behaviour::default()).await;
    assert_eq!(fake_row(&setup, false)["state"], "connected", "by its expiry it looks fine");
    server.revoke_grants();
    let row = fake_row(&setup, true);
    assert_eq!(row["state"], "needs_reauth", "{row}");
    assert_eq!(row["check"], "needs_sign_in", "{row}");
    assert!(row["checked_at"].is_i64(), "{row}");
    let refreshes = server.log().refreshes;
    assert_eq!(refreshes.len(), 1, "exactly one refresh attempt: {refreshes:?}");
    assert_eq!(refreshes[0].outcome, "invalid_grant");
    let (_, table, _) = run(&setup, &["status"]);
    assert!(table.contains("needs sign-in"), "{table}");
    assert_eq!(server.log().mcp_calls.iter().filter(|m| *m == "initialize").count(), 0, "never past the token check");
}

/// A legacy HTTP+SSE server that refuses every POST at its URL before it
/// looks at the token: the check asks its event stream instead, so a
/// revoked grant is seen there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_server_is_checked_through_its_event_stream() {
    let behaviour = Behaviour { legacy_sse: true, sse_post_unrouted: true, ..Behaviour::default() };
    let (server, setup) = connected(behaviour).await;
    let row = fake_row(&setup, true);
    assert_eq!((row["state"].clone(), row["check"].clone()), ("connected".into(), "ok".into()), "{row}");
    assert_eq!(server.log().sse_streams, 1, "the stream was opened once");
    server.revoke_grants();
    let row = fake_row(&setup, true);
    assert_eq!(row["state"], "needs_reauth", "{row}");
    assert_eq!(row["check"], "needs_sign_in", "{row}");
    assert_eq!(server.log().refreshes.len(), 1, "exactly one refresh attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_now_requires_more_scope_needs_more_access_and_connect_steps_up() {
    let (server, setup) = connected(Behaviour::default()).await;
    server.set_behaviour(|b| b.mcp_scope = Some("mcp:admin".to_owned()));
    let row = fake_row(&setup, true);
    assert_eq!(row["state"], "needs_more_access", "{row}");
    assert_eq!(row["check"], "needs_more_access");
    assert_eq!(row["required_scope"], "mcp:admin");
    assert!(row["detail"].as_str().is_some_and(|d| d.contains("mcp:admin")), "{row}");
    assert_eq!(server.log().refreshes.len(), 0, "a 403 is no reason to refresh");
    let (_, table, _) = run(&setup, &["status"]);
    assert!(table.contains("needs more access"), "{table}");

    // The step-up: connect asks for what was granted plus what is required.
    let granted_before = server.log().authorizations[0].get("scope").cloned().unwrap_or_default();
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(err.contains("the server asks for more access"), "{err}");
    let asked = server.log().authorizations[1].get("scope").cloned().unwrap_or_default();
    let asked: Vec<&str> = asked.split(' ').collect();
    for scope in granted_before.split(' ').chain(["mcp:admin"]) {
        assert!(asked.contains(&scope), "the step-up did not ask for `{scope}`: {asked:?}");
    }
    let row = fake_row(&setup, true);
    assert_eq!((row["state"].clone(), row["check"].clone()), ("connected".into(), "ok".into()), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_unreachable_not_signed_out() {
    let (server, setup) = connected(Behaviour::default()).await;
    server.set_behaviour(|b| b.mcp_status = Some(503));
    let row = fake_row(&setup, true);
    assert_eq!((row["state"].clone(), row["check"].clone()), ("connected".into(), "unreachable".into()), "{row}");
    assert!(row["detail"].as_str().is_some_and(|d| d.contains("HTTP 503")), "{row}");

    drop(server);
    let row = fake_row(&setup, true);
    assert_eq!(row["state"], "connected", "the credentials are kept: {row}");
    assert_eq!(row["check"], "unreachable");
    assert!(row["checked_at"].is_i64());
    assert!(row["detail"].as_str().is_some_and(|d| d.contains("cannot reach")), "{row}");
    let (_, table, _) = run(&setup, &["status"]);
    assert!(table.contains("connected (unreachable)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_server_expired_early_is_refreshed_once_and_checks_ok() {
    let (server, setup) = connected(Behaviour::default()).await;
    let before = fake_row(&setup, false);
    server.expire_access_tokens();
    let row = fake_row(&setup, true);
    assert_eq!((row["state"].clone(), row["check"].clone()), ("connected".into(), "ok".into()), "{row}");
    let refreshes = server.log().refreshes;
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!(refreshes[0].outcome, "ok");
    // The check is about the new tokens (the agent's file has them too).
    assert_ne!(row["expires_at"], Value::Null);
    assert!(row["expires_at"].as_i64() >= before["expires_at"].as_i64(), "{row}");
    assert_eq!(server.log().mcp_calls.iter().filter(|m| *m == "initialize").count(), 1, "one retry, accepted");
}

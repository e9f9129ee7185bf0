//! Proof with the real agent (hermes-agent 0.19.0 with MCP, in a venv made by
//! scripts/test.sh): we sign in and export; the agent uses our tokens with no
//! browser step and no new registration; when the short-lived access token
//! expires the agent refreshes on its own and writes back a rotated refresh
//! token; our next refresh adopts it instead of spending the old one, and the
//! one after that works with it. Credentials live in a real Secret Service.

use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_auth_e2e::cli::{Setup, Store, connect_no_browser, read_json};
use mcp_auth_e2e::repo_root;
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;

/// Lifetime of access tokens in this test, seconds.
const LIFETIME: u64 = 4;

fn hermes() -> std::path::PathBuf {
    let path = std::env::var_os("HERMES_AGENT_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/hermes-venv/bin/hermes"));
    assert!(
        path.is_file(),
        "{} is missing: python3 -m venv target/hermes-venv && target/hermes-venv/bin/pip install 'hermes-agent[mcp]==0.19.0' (scripts/test.sh does it)",
        path.display()
    );
    path
}

/// `hermes mcp test fake` against `home`, as a script would run it (no stdin).
fn agent_test(setup: &Setup) -> (bool, String) {
    let out = Command::new(hermes())
        .args(["mcp", "test", "fake"])
        .env("HERMES_HOME", setup.home.path())
        .env("HOME", setup.session.dir.path().join("home"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run hermes: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn mcp_auth(setup: &Setup, args: &[&str]) -> (i32, String) {
    let out = setup.command(args).output().unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_agent_uses_our_tokens_and_we_adopt_its_refresh() {
    let server = FakeServer::start(Behaviour { access_token_lifetime: LIFETIME, ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::Keyring);

    // 1. We sign in and export.
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let tokens_file = setup.tokens_dir().join("fake.json");
    let ours = read_json(&tokens_file);

    // 2. The agent connects with our tokens: no browser, no registration.
    let (ok, text) = agent_test(&setup);
    assert!(ok && text.contains("test-tool"), "the agent could not use our tokens:\n{text}");
    let log = server.log();
    assert_eq!((log.registrations.len(), log.authorizations.len()), (1, 1), "the agent registered or authorized again");
    assert!(log.mcp_calls.iter().any(|m| m == "tools/list"), "the agent never listed tools: {:?}", log.mcp_calls);

    // 3. The access token expires; the agent refreshes on its own and writes back.
    tokio::time::sleep(Duration::from_secs(LIFETIME + 1)).await;
    let (ok, text) = agent_test(&setup);
    assert!(ok && text.contains("test-tool"), "the agent could not refresh:\n{text}");
    assert_eq!(server.log().grants("refresh_token"), 1, "the agent did not refresh");
    let agents = read_json(&tokens_file);
    assert_ne!(agents["refresh_token"], ours["refresh_token"], "the agent's refresh token should have rotated");
    assert_eq!(server.log().registrations.len(), 1);

    // 4. Our refresh adopts the agent's pair instead of spending the old token...
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fake: already refreshed by the agent; adopted"), "{text}");
    assert_eq!(server.log().grants("refresh_token"), 1, "we must not refresh with a spent token");

    // 5. ... and the next one works with it: no invalid_grant.
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fake: refreshed"), "{text}");
    assert_eq!(server.log().grants("refresh_token"), 2);
    let (ok, text) = agent_test(&setup);
    assert!(ok && text.contains("test-tool"), "the agent could not use our refreshed tokens:\n{text}");
}

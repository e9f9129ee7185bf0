//! `mcp-auth` as a real process against a hostile authorization server:
//! what it names is never launched, and what it writes never reaches the
//! terminal as it was.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::process::Output;

use mcp_auth_e2e::cli::{Setup, Store};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

async fn run(setup: &Setup, args: &[&str], browser: Option<&std::path::Path>) -> Output {
    let mut cmd = setup.command(args);
    if let Some(browser) = browser {
        cmd.env("BROWSER", browser);
    }
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn patched(field: &str, value: &str) -> Behaviour {
    let patch = json!({ field: value }).as_object().cloned().unwrap_or_default();
    Behaviour { metadata_patch: patch, ..Behaviour::default() }
}

/// A `$BROWSER` that leaves a mark when it is run at all.
fn marking_browser(setup: &Setup) -> (std::path::PathBuf, std::path::PathBuf) {
    let script = setup.config_home.path().join("browser.sh");
    let mark = setup.config_home.path().join("browser-ran");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", mark.display()))
        .unwrap_or_else(|e| panic!("{e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    }
    (script, mark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_never_launches_what_a_hostile_server_names() {
    for (field, value) in [
        ("authorization_endpoint", "file:///etc/passwd"),
        ("authorization_endpoint", "JavaScript:alert(1)"),
        ("authorization_endpoint", "smb://evil.example/share"),
        ("authorization_endpoint", "http://evil.example/authorize"),
        ("token_endpoint", "http://evil.example/token"),
    ] {
        let server = FakeServer::start(patched(field, value)).await.unwrap_or_else(|e| panic!("{e}"));
        let setup = Setup::new(&server.mcp_url(), Store::File);
        let (browser, mark) = marking_browser(&setup);
        let out = run(&setup, &["connect", "fake"], Some(&browser)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {err}");
        assert!(err.contains(&format!("refusing the authorization server's {field}")), "{value}: {err}");
        assert!(!mark.exists(), "{value}: the browser was run");
        let log = server.log();
        assert!(
            !log.requests.iter().any(|r| r == "POST /register" || r == "POST /token" || r == "GET /authorize"),
            "{value}: {:?}",
            log.requests
        );
        assert!(!setup.tokens_dir().join("fake.json").exists());
    }
}

const HOSTILE: &str = "\u{1b}]8;;https://evil.example/\u{7}click here\u{1b}]8;;\u{7} \u{1b}[2J\rFAKE \u{202e}exe.gnp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_error_description_reaches_the_terminal_made_safe() {
    let description = format!("{HOSTILE} {}", "A".repeat(10 * 1024));
    let behaviour =
        Behaviour { refuse_registration: true, error_description: Some(description), ..Behaviour::default() };
    let server = FakeServer::start(behaviour).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let out = run(&setup, &["connect", "fake", "--no-browser"], None).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("access_denied (click here FAKE exe.gnp AAAA"), "{err}");
    for bad in ['\u{1b}', '\r', '\u{7}', '\u{202e}'] {
        assert!(!err.contains(bad), "stderr contains {bad:?}: {err:?}");
    }
    assert!(err.len() < 2048, "stderr is {} bytes", err.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_shows_the_refusal_with_a_hint() {
    let server = FakeServer::start(patched("authorization_endpoint", "javascript:alert(1)"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let out = run(&setup, &["doctor", "fake", "--json"], None).await;
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let steps = report[0]["steps"].as_array().cloned().unwrap_or_default();
    let step = steps.iter().find(|s| s["step"] == "authorization_server").cloned().unwrap_or_default();
    assert_eq!(step["status"], "fail", "{step}");
    assert!(
        step["summary"].as_str().is_some_and(|s| s.contains("authorization_endpoint `javascript:alert(1)`")),
        "{step}"
    );
    assert!(step["hint"].as_str().is_some_and(|h| h.contains("only used over https://")), "{step}");
    let registration = steps.iter().find(|s| s["step"] == "registration").cloned().unwrap_or_default();
    assert_eq!(registration["status"], "skipped");
    assert!(!server.log().requests.iter().any(|r| r == "POST /register"));
}

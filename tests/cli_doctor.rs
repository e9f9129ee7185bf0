//! `mcp-auth doctor` as a process against the in-process authorization
//! server, with one fault injected at a time: the failing step is named, with
//! its hint, in `--json`, and the exit code is 1.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use mcp_auth_e2e::cli::{Setup, Store};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;
use serde_json::Value;

/// Runs `doctor <args> --json`: exit code and the parsed array.
fn doctor(setup: &Setup, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = setup.command(&all).output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// (step, status) of every step of the first diagnosis.
fn outcomes(json: &Value) -> Vec<(String, String)> {
    json[0]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {json}"))
        .iter()
        .map(|s| (s["step"].as_str().unwrap_or("?").to_owned(), s["status"].as_str().unwrap_or("?").to_owned()))
        .collect()
}

fn step<'a>(json: &'a Value, name: &str) -> &'a Value {
    json[0]["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == name))
        .unwrap_or_else(|| panic!("no step {name}: {json}"))
}

fn failing(json: &Value) -> Vec<String> {
    outcomes(json).into_iter().filter(|(_, status)| status == "fail").map(|(step, _)| step).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_server_passes_every_step() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, json, stderr) = doctor(&setup, &["fake"]);
    assert_eq!(code, 0, "{json:#}\n{stderr}");
    let want: Vec<(String, String)> =
        ["config", "probe", "resource_metadata", "authorization_server", "registration", "redirect_port", "vault"]
            .iter()
            .map(|s| (s.to_string(), "ok".to_owned()))
            .collect();
    assert_eq!(outcomes(&json), want);
    assert_eq!(json[0]["name"], "fake");
    assert_eq!(json[0]["ok"], true);
    assert_eq!(step(&json, "probe")["http_status"], 401);
    assert_eq!(step(&json, "authorization_server")["http_status"], 200);
    let evidence = step(&json, "authorization_server")["evidence"].to_string();
    assert!(evidence.contains(&format!("issuer: {}", server.base_url())), "{evidence}");
    assert_eq!(step(&json, "registration")["http_status"], 201);
    assert_eq!(server.log().registrations.len(), 1, "DCR was tried for real");
    assert!(server.log().authorizations.is_empty(), "doctor never goes to the authorization page");
    assert!(!setup.tokens_dir().exists(), "doctor writes no credentials");

    // The text form, and every OAuth server when none is named.
    let out = setup.command(&["doctor"]).output().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("fake  "), "{text}");
    assert!(text.contains("  ok   resource_metadata"), "{text}");
    assert!(!text.contains('\x1b'), "no colours when not on a terminal: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_injected_fault_is_pinpointed() {
    let faults: Vec<(&str, Behaviour, &str, &str)> = vec![
        (
            "no PRM",
            Behaviour { serve_prm: false, ..Default::default() },
            "resource_metadata",
            "the server publishes no RFC 9728 document",
        ),
        (
            "bad issuer",
            Behaviour { metadata_issuer_override: Some("https://attacker.example".to_owned()), ..Default::default() },
            "authorization_server",
            "`issuer` must be exactly the URL",
        ),
        (
            "no S256",
            Behaviour { code_challenge_methods: vec![], ..Default::default() },
            "authorization_server",
            "the authorization server does not advertise S256",
        ),
        (
            "DCR refused",
            Behaviour { refuse_registration: true, ..Default::default() },
            "registration",
            "configure `oauth.client_id`",
        ),
    ];
    for (fault, behaviour, failing_step, hint) in faults {
        let server = FakeServer::start(behaviour).await.unwrap_or_else(|e| panic!("{e}"));
        let setup = Setup::new(&server.mcp_url(), Store::File);
        let (code, json, stderr) = doctor(&setup, &["fake"]);
        assert_eq!(code, 1, "{fault}: {json:#}");
        assert!(stderr.contains("1 of 1 servers have a failing step"), "{fault}: {stderr}");
        assert_eq!(json[0]["ok"], false, "{fault}");
        assert_eq!(failing(&json), vec![failing_step.to_owned()], "{fault}: {json:#}");
        let found = step(&json, failing_step);
        let got = found["hint"].as_str().unwrap_or_default();
        assert!(got.contains(hint), "{fault}: hint `{got}` lacks `{hint}`");
        assert!(found["http_status"].is_u64(), "{fault}: no HTTP status: {found}");
        if fault == "DCR refused" {
            assert_eq!(found["http_status"], 403);
            assert!(found["summary"].as_str().unwrap_or_default().contains("access_denied: registration is closed"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_redirect_port_is_pinpointed() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    // "Another program" holds the port configured for the server.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = holder.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let config = format!(
        "mcp_servers:\n  fake:\n    url: {}\n    auth: oauth\n    oauth:\n      redirect_port: {port}\n",
        server.mcp_url()
    );
    std::fs::write(setup.home.path().join("config.yaml"), config).unwrap_or_else(|e| panic!("{e}"));
    let (code, json, _) = doctor(&setup, &["fake"]);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(failing(&json), vec!["redirect_port".to_owned()], "{json:#}");
    let hint = step(&json, "redirect_port")["hint"].as_str().unwrap_or_default().to_owned();
    assert!(hint.starts_with(&format!("redirect_port {port} is in use by another program")), "{hint}");
    drop(holder);
    assert_eq!(doctor(&setup, &["fake"]).0, 0, "the port is free again");
}

#[test]
fn servers_doctor_cannot_check_are_a_failing_config_step() {
    let setup = Setup::new("http://127.0.0.1:9/mcp", Store::File);
    for (name, message) in [("local", "does not use OAuth"), ("missing", "no server `missing`")] {
        let (code, json, _) = doctor(&setup, &[name]);
        assert_eq!(code, 1, "{name}");
        assert_eq!(outcomes(&json), vec![("config".to_owned(), "fail".to_owned())], "{name}");
        assert!(step(&json, "config")["summary"].as_str().unwrap_or_default().contains(message), "{json}");
    }
}

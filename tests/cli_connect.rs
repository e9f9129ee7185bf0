//! `mcp-auth connect` as a real process against the in-process authorization
//! server: the browser step is done by the test, as a person would.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{Duration, Instant};

use mcp_auth_core::Http;
use mcp_auth_core::{Browser, HeadlessBrowser};
use mcp_auth_e2e::cli::{Setup, Store, UNLOCK, connect_no_browser, finish, is_url, next_matching, read_json};
use mcp_auth_e2e::{ChildGuard, bin};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_writes_the_agents_files_and_reuses_the_registration() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);

    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.starts_with("Connected to fake, access token valid for 59 min. Credentials kept in plain file"),
        "{out}"
    );
    for step in [
        "contacting the server…",
        "discovering its authorization server…",
        "registering the client…",
        "waiting for the browser (up to 300 s)…",
        "getting tokens…",
    ] {
        assert!(err.contains(step), "missing progress `{step}` in:\n{err}");
    }

    let dir = setup.tokens_dir();
    let tokens = read_json(&dir.join("fake.json"));
    let client = read_json(&dir.join("fake.client.json"));
    let meta = read_json(&dir.join("fake.meta.json"));
    let access = tokens["access_token"].as_str().unwrap_or_default();
    assert!(server.is_valid_access_token(access), "the written token is not one the server issued");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["hermes_issuer"], server.base_url());
    assert!(tokens["expires_at"].as_f64().is_some() && tokens["refresh_token"].is_string());
    let port = setup.redirect_port();
    assert_eq!(client["redirect_uris"], serde_json::json!([format!("http://127.0.0.1:{port}/callback")]));
    assert_eq!(client["client_name"], "Hermes Agent");
    assert_eq!(meta["issuer"], server.base_url());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["fake.json", "fake.client.json", "fake.meta.json"] {
            let mode = std::fs::metadata(dir.join(f)).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600, "{f}");
        }
        assert_eq!(std::fs::metadata(&dir).map(|m| m.permissions().mode() & 0o777).unwrap_or(0), 0o700);
    }
    for secret in [access, tokens["refresh_token"].as_str().unwrap_or("x")] {
        assert!(!out.contains(secret) && !err.contains(secret), "a token was printed");
    }

    // The status now says connected.
    let status = setup.command(&["status", "--json"]).output().unwrap_or_else(|e| panic!("{e}"));
    let rows: Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    assert_eq!(rows[0]["name"], "fake");
    assert_eq!(rows[0]["state"], "connected");

    // Again: same port, same registration, new tokens.
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(setup.redirect_port(), port);
    assert_eq!(server.log().registrations.len(), 1, "the registration was not reused");
    assert_eq!(read_json(&dir.join("fake.client.json"))["client_id"], client["client_id"]);
    assert_ne!(read_json(&dir.join("fake.json"))["access_token"], tokens["access_token"]);

    // refresh: one token request, the agent's file follows.
    let before = read_json(&dir.join("fake.json"));
    let out = setup.command(&["refresh", "fake"]).output().unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("fake: refreshed, valid for 59 min"), "{stdout}");
    let after = read_json(&dir.join("fake.json"));
    assert_ne!(after["access_token"], before["access_token"]);
    assert_ne!(after["refresh_token"], before["refresh_token"], "the fake server rotates refresh tokens");
    assert!(server.is_valid_access_token(after["access_token"].as_str().unwrap_or_default()));
    assert_eq!(server.log().grants("refresh_token"), 1);

    // refresh --all skips servers that are not OAuth and reports each one.
    let out = setup.command(&["refresh", "--all"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);

    // The grant is revoked at the server: the refresh fails, and the next
    // `status` (another process) says so from the vault.
    server.forget_refresh_tokens();
    let out = setup.command(&["refresh", "fake"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let out = setup.command(&["status", "--json"]).output().unwrap_or_else(|e| panic!("{e}"));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let fake = rows.as_array().and_then(|r| r.iter().find(|r| r["name"] == "fake")).cloned().unwrap_or_default();
    assert_eq!(fake["state"], "needs_reauth", "{fake}");
    assert!(fake["last_error"].as_str().is_some_and(|e| e.starts_with("the refresh token was rejected")), "{fake}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_uses_the_browser_command() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let script = setup.config_home.path().join("fake-browser.sh");
    let url_file = setup.config_home.path().join("url.txt");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}.tmp' && mv '{0}.tmp' '{0}'\n", url_file.display()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut cmd = setup.command(&["connect", "fake"]);
    cmd.env("BROWSER", &script);
    let mut guard = ChildGuard(cmd.spawn().unwrap_or_else(|e| panic!("{e}")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !url_file.exists() {
        assert!(Instant::now() < deadline, "$BROWSER was never run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = std::fs::read_to_string(&url_file).unwrap_or_default();
    assert!(url.starts_with(&format!("{}/authorize?", server.base_url())), "{url}");
    HeadlessBrowser::new(Http::new().unwrap_or_else(|e| panic!("{e}")))
        .open(&url)
        .await
        .unwrap_or_else(|e| panic!("browser: {e}"));
    let (code, out, err) = finish(&mut guard.0, Vec::new(), None).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(setup.tokens_dir().join("fake.json").is_file());
}

#[test]
fn connect_refuses_what_it_cannot_sign_in_to() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(home.path().join("config.yaml"), "mcp_servers:\n  local:\n    command: npx\n")
        .unwrap_or_else(|e| panic!("{e}"));
    for (server, message) in [("local", "does not use OAuth"), ("missing", "no server `missing`")] {
        let out = Command::new(bin("mcp-auth"))
            .args(["--hermes-home"])
            .arg(home.path())
            .args(["connect", server, "--no-browser"])
            .env("XDG_CONFIG_HOME", home.path())
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1), "{server}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{server}: {err}");
    }
}

#[test]
fn connect_refuses_to_start_without_a_place_for_the_tokens() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        home.path().join("config.yaml"),
        "mcp_servers:\n  s:\n    url: http://127.0.0.1:9/mcp\n    auth: oauth\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(bin("mcp-auth"))
        .arg("--hermes-home")
        .arg(home.path())
        .args(["connect", "s", "--no-browser"])
        .env("XDG_CONFIG_HOME", home.path())
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keychain unavailable") && err.contains("\"credential_store\": \"file\""), "{err}");
    assert!(!err.contains("Open this URL"), "a sign-in started although its result could not be kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_keeps_the_credentials_in_the_real_secret_service() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::Keyring);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Credentials kept in Secret Service."), "{out}");

    // Another session, another process: the record is in the keyring on disk.
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", &format!("{UNLOCK}; secret-tool search --all service mcp-auth-tray 2>&1")]);
    setup.session.apply(&mut cmd, ":none");
    let listed = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("attribute.username = ~/fake#"), "not in the keyring:\n{listed}");
    assert!(listed.contains("secret = mcpv2:"), "not our record format:\n{listed}");
    let access =
        read_json(&setup.tokens_dir().join("fake.json"))["access_token"].as_str().unwrap_or_default().to_owned();
    assert!(!access.is_empty() && !listed.contains(&access), "the record should be compressed, not plain JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_check_finds_drift_and_disconnect_revokes() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let run = |args: &[&str]| {
        let out = setup.command(args).output().unwrap_or_else(|e| panic!("{e}"));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, _) = run(&["export", "--check"]);
    assert_eq!((code, out.trim()), (0, "fake: in sync"));

    // A hand edit of the agent's file is drift; --check writes nothing.
    let tokens = setup.tokens_dir().join("fake.json");
    let mut edited = read_json(&tokens);
    edited["access_token"] = "hand-edited".into();
    std::fs::write(&tokens, serde_json::to_vec(&edited).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = run(&["export", "--check"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out.trim(), "fake: DRIFT: the agent's tokens differ from the vault");
    assert_eq!(read_json(&tokens)["access_token"], "hand-edited", "--check must not write");

    // export rewrites it from the vault.
    let (code, out, _) = run(&["export"]);
    assert_eq!((code, out.trim()), (0, "fake: exported"));
    assert!(server.is_valid_access_token(read_json(&tokens)["access_token"].as_str().unwrap_or_default()));
    assert_eq!(run(&["export", "--check"]).0, 0);

    // token: facts without the secret; the secret only with --reveal.
    let access = read_json(&tokens)["access_token"].as_str().unwrap_or_default().to_owned();
    let (code, out, _) = run(&["token", "fake"]);
    assert_eq!(code, 0);
    assert!(out.contains("access token:  [hidden; --reveal prints it]") && out.contains("refresh token: yes"), "{out}");
    assert!(!out.contains(&access), "token printed without --reveal");
    let (code, out, _) = run(&["token", "fake", "--reveal"]);
    assert_eq!((code, out.trim()), (0, access.as_str()));

    // disconnect revokes at the server and removes everything here.
    let refresh = read_json(&tokens)["refresh_token"].as_str().unwrap_or_default().to_owned();
    let (code, out, err) = run(&["disconnect", "fake"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "fake: signed out; tokens revoked at the server and removed here");
    assert!(
        server.log().revocations.contains(&refresh),
        "the refresh token was not revoked: {:?}",
        server.log().revocations
    );
    for f in ["fake.json", "fake.client.json", "fake.meta.json"] {
        assert!(!setup.tokens_dir().join(f).exists(), "{f} left behind");
    }
    let (_, out, _) = run(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(rows[0]["state"], "not_connected");

    // logout --all with nothing signed in, and version.
    let (code, out, _) = run(&["logout", "--all"]);
    assert_eq!((code, out.trim()), (0, "fake: was not signed in; its files (if any) removed"));
    let (code, out, _) = run(&["version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("mcp-auth "), "{out}");
    assert_eq!(run(&["logout"]).0, 2, "logout without --all is a usage error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_a_pasted_redirect() {
    use std::io::Write;
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let mut cmd = setup.command(&["connect", "fake", "--paste"]);
    cmd.stdin(std::process::Stdio::piped());
    let mut guard = ChildGuard(cmd.spawn().unwrap_or_else(|e| panic!("{e}")));
    let mut stdin = guard.0.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let stderr = mcp_auth_e2e::Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let url = loop {
        match stderr.next(Duration::from_secs(20)) {
            Some(line) if line.trim_start().starts_with("http") => break line.trim().to_owned(),
            Some(_) => {}
            None => panic!("no URL printed"),
        }
    };
    // The browser on "another machine": follow the authorization page to the
    // redirect, but do not deliver it — copy its address instead.
    let http = Http::new().unwrap_or_else(|e| panic!("{e}"));
    let response = http.reqwest_no_redirects().get(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.contains("/callback?code="), "{location}");

    // A forged paste is refused with the same checks as the listener's.
    let forged = location.replace("state=", "state=forged");
    writeln!(stdin, "{forged}").unwrap_or_else(|e| panic!("{e}"));
    let refusal = loop {
        match stderr.next(Duration::from_secs(10)) {
            Some(line) if line.starts_with("not accepted") => break line,
            Some(_) => {}
            None => panic!("the forged paste was not refused"),
        }
    };
    assert!(refusal.contains("state does not match"), "{refusal}");

    writeln!(stdin, "{location}").unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = finish(&mut guard.0, Vec::new(), Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("Connected to fake"), "{out}");
    assert_eq!(server.log().grants("authorization_code"), 1);
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_the_device_flow() {
    let server = FakeServer::start(Behaviour { device_flow: true, ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let mut guard =
        ChildGuard(setup.command(&["connect", "fake", "--device"]).spawn().unwrap_or_else(|e| panic!("{e}")));
    let stderr = mcp_auth_e2e::Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut seen = Vec::new();
    let shown = next_matching(&stderr, |l| l.contains("enter the code"), &mut seen);
    assert!(shown.starts_with(&format!("To sign in, open {}/device on any device", server.base_url())), "{shown}");
    let user_code = shown.rsplit(' ').next().unwrap_or_default().to_owned();
    // The CLI polls while the user has not approved yet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(server.log().grants(DEVICE_GRANT) >= 1, "no poll before the approval");
    assert!(!setup.tokens_dir().join("fake.json").exists());
    assert!(server.approve_device(&user_code), "the shown code `{user_code}` is not pending at the server");

    let (code, out, err) = finish(&mut guard.0, seen, Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("Connected to fake, access token valid for 59 min."), "{out}");
    assert!(err.contains("(or open ") && err.contains("waiting for your approval (up to 300 s)…"), "{err}");
    let dir = setup.tokens_dir();
    let tokens = read_json(&dir.join("fake.json"));
    assert!(server.is_valid_access_token(tokens["access_token"].as_str().unwrap_or_default()));
    assert!(tokens["refresh_token"].is_string());
    // Registered for the device grant, with the redirect URI the agent requires.
    let client = read_json(&dir.join("fake.client.json"));
    let grants = client["grant_types"].to_string();
    assert!(grants.contains(DEVICE_GRANT) && grants.contains("authorization_code"), "{grants}");
    assert_eq!(
        client["redirect_uris"],
        serde_json::json!([format!("http://127.0.0.1:{}/callback", setup.redirect_port())])
    );
    let registered = &server.log().registrations[0];
    assert!(registered["grant_types"].to_string().contains(DEVICE_GRANT), "{registered}");
    assert!(server.log().authorizations.is_empty(), "no browser step");

    // The next device sign-in reuses that registration.
    let mut guard =
        ChildGuard(setup.command(&["connect", "fake", "--device"]).spawn().unwrap_or_else(|e| panic!("{e}")));
    let stderr = mcp_auth_e2e::Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let shown = next_matching(&stderr, |l| l.contains("enter the code"), &mut Vec::new());
    assert!(server.approve_device(shown.rsplit(' ').next().unwrap_or_default()));
    let (code, out, err) = finish(&mut guard.0, Vec::new(), Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(server.log().registrations.len(), 1, "the registration was not reused");
}

#[test]
fn connect_device_needs_a_device_endpoint() {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    let server = rt.block_on(FakeServer::start(Behaviour::default())).unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let out = setup.command(&["connect", "fake", "--device"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("offers no device authorization (no device_authorization_endpoint"), "{err}");
    assert_eq!(
        setup.command(&["connect", "fake", "--device", "--paste"]).output().map(|o| o.status.code()).ok(),
        Some(Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_all_needing_signs_in_to_each_server_that_needs_it() {
    let first = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let second = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&first.mcp_url(), Store::File);
    let config = format!(
        "mcp_servers:\n  one:\n    url: {}\n    auth: oauth\n  two:\n    url: {}\n    auth: oauth\n  local:\n    command: npx\n",
        first.mcp_url(),
        second.mcp_url()
    );
    std::fs::write(setup.home.path().join("config.yaml"), config).unwrap_or_else(|e| panic!("{e}"));

    let mut guard = ChildGuard(
        setup.command(&["connect", "--all-needing", "--no-browser"]).spawn().unwrap_or_else(|e| panic!("{e}")),
    );
    let stderr = mcp_auth_e2e::Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let browser = HeadlessBrowser::new(Http::new().unwrap_or_else(|e| panic!("{e}")));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let url = next_matching(&stderr, is_url, &mut seen);
        browser.open(url.trim()).await.unwrap_or_else(|e| panic!("browser: {e}"));
    }
    let (code, out, err) = finish(&mut guard.0, seen, Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Connected to one,") && out.contains("Connected to two,"), "{out}");
    assert!(err.contains("[one] discovering") && err.contains("[two] discovering"), "steps name their server: {err}");
    for (name, server) in [("one", &first), ("two", &second)] {
        let tokens = read_json(&setup.tokens_dir().join(format!("{name}.json")));
        assert!(server.is_valid_access_token(tokens["access_token"].as_str().unwrap_or_default()), "{name}");
    }

    // Nothing needs a sign-in now; after the agent signs out of one, only that one does.
    let out = setup.command(&["connect", "--all-needing"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "No server needs a sign-in.");
    let disconnect = setup.command(&["disconnect", "two"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(disconnect.status.code(), Some(0));
    let mut guard = ChildGuard(
        setup.command(&["connect", "--all-needing", "--no-browser"]).spawn().unwrap_or_else(|e| panic!("{e}")),
    );
    let stderr = mcp_auth_e2e::Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let url = next_matching(&stderr, is_url, &mut Vec::new());
    assert!(url.trim().starts_with(second.base_url()), "only `two` needs a sign-in: {url}");
    browser.open(url.trim()).await.unwrap_or_else(|e| panic!("browser: {e}"));
    let (code, out, err) = finish(&mut guard.0, Vec::new(), Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("Connected to two,") && !out.contains("one"), "{out}");
}

#[test]
fn every_command_has_help_with_an_example() {
    let out = std::process::Command::new(bin("mcp-auth")).arg("--help").output().unwrap_or_else(|e| panic!("{e}"));
    let top = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(top.contains("Exit codes: 0 success; 1 the operation failed") && top.contains("NO_COLOR"), "{top}");
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.contains(&"doctor".to_owned()) && commands.len() >= 10, "{commands:?}");
    for command in commands {
        let out = std::process::Command::new(bin("mcp-auth"))
            .args([&command, "--help"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(0), "{command}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("\nExample: ") && help.contains("mcp-auth "),
            "`{command} --help` has no example:\n{help}"
        );
    }
}

/// At the highest verbosity (`-vv` and `RUST_LOG=trace`, which reaches every
/// dependency), a sign-in and a refresh print none of the secrets involved:
/// the code, the PKCE verifier, the tokens and the configured client secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_output_at_trace_level() {
    const SECRET: &str = "configured-client-secret-5f1d";
    let server = FakeServer::start(Behaviour {
        registration: false,
        preregistered_client: Some(("pre-id".to_owned(), SECRET.to_owned())),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let config = format!(
        "mcp_servers:\n  fake:\n    url: {}\n    auth: oauth\n    oauth:\n      client_id: pre-id\n      client_secret: {SECRET}\n",
        server.mcp_url()
    );
    std::fs::write(setup.home.path().join("config.yaml"), config).unwrap_or_else(|e| panic!("{e}"));
    let traced = |args: &[&str]| {
        let mut cmd = setup.command(args);
        cmd.arg("-vv").env("RUST_LOG", "trace");
        cmd
    };

    let mut guard = ChildGuard(traced(&["connect", "fake", "--no-browser"]).spawn().unwrap_or_else(|e| panic!("{e}")));
    let stderr = mcp_auth_e2e::Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut seen = Vec::new();
    let url = next_matching(&stderr, is_url, &mut seen).trim().to_owned();
    HeadlessBrowser::new(Http::new().unwrap_or_else(|e| panic!("{e}")))
        .open(&url)
        .await
        .unwrap_or_else(|e| panic!("browser: {e}"));
    let (code, connect_out, connect_err) = finish(&mut guard.0, seen, Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {connect_out}\nstderr: {connect_err}");
    assert!(connect_err.contains("TRACE") || connect_err.contains("DEBUG"), "not traced at all:\n{connect_err}");
    let first = read_json(&setup.tokens_dir().join("fake.json"));

    let out = traced(&["refresh", "fake"]).output().unwrap_or_else(|e| panic!("{e}"));
    let (refresh_out, refresh_err) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert_eq!(out.status.code(), Some(0), "{refresh_out}{refresh_err}");
    let second = read_json(&setup.tokens_dir().join("fake.json"));

    let log = server.log();
    let exchange = log
        .token_requests
        .iter()
        .find(|r| r.get("grant_type").map(String::as_str) == Some("authorization_code"))
        .cloned()
        .unwrap_or_else(|| panic!("no code exchange at the server"));
    let mut secrets: Vec<(&str, String)> = vec![
        ("the authorization code", exchange.get("code").cloned().unwrap_or_default()),
        ("the PKCE verifier", exchange.get("code_verifier").cloned().unwrap_or_default()),
        ("the client secret", SECRET.to_owned()),
    ];
    for (what, tokens) in [("first", &first), ("refreshed", &second)] {
        for field in ["access_token", "refresh_token"] {
            let value = tokens[field].as_str().unwrap_or_default().to_owned();
            secrets.push((if what == "first" { field } else { "a refreshed token" }, value));
        }
    }
    let output = [connect_out, connect_err, refresh_out, refresh_err].join("\n");
    for (what, secret) in secrets {
        assert!(secret.len() >= 8, "{what} was not found at the server: `{secret}`");
        let line = output.lines().find(|l| l.contains(&secret));
        assert!(line.is_none(), "{what} is in the output: {}", line.unwrap_or_default());
    }
}

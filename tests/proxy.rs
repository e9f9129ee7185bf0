//! `mcp-auth proxy` and `mcp-auth headers` end to end: the built binary, a
//! real Secret Service (gnome-keyring in one private D-Bus session shared by
//! every process of a test), the in-process authorization and MCP server, and
//! real third-party MCP clients — the official TypeScript SDK's client
//! (`target/mcp-clients`, npm) and the Python SDK's `stdio_client`
//! (`target/mcp-py-venv`), both installed by `scripts/test.sh`.
// Linux only: XDG folder isolation, D-Bus, a real Secret Service.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_auth_core::Http;
use mcp_auth_core::{Browser, HeadlessBrowser};
use mcp_auth_e2e::cli::{UNLOCK, is_url};
use mcp_auth_e2e::{ChildGuard, Lines, Session, bin, repo_root};
use mcp_auth_test_support::{Behaviour, FakeServer};
use serde_json::{Value, json};

/// Every answer a test waits for comes within this.
const WAIT: Duration = Duration::from_secs(60);

/// One user's desktop: a home (the agent's config in `~/.hermes`), XDG
/// folders, and a D-Bus session with an unlocked gnome-keyring that every
/// process of the test talks to (so concurrent processes share one keyring
/// daemon, as on a real desktop).
struct Desk {
    session: Session,
    bus: Option<ChildGuard>,
    bus_stdin: Option<ChildStdin>,
    address: String,
    mcp_url: String,
}

impl Desk {
    /// A desk whose agent has `fake` at `server` in its config.
    fn new(server: &FakeServer) -> Self {
        Self::with_config(server, &format!("mcp_servers:\n  fake:\n    url: {}\n    auth: oauth\n", server.mcp_url()))
    }

    /// A desk where `fake` at `server` is in no client's config but ours
    /// (`mcp-auth add`): a server used only through the proxy.
    fn proxy_only(server: &FakeServer) -> Self {
        let desk = Self::with_config(server, "mcp_servers:\n  local:\n    command: npx\n");
        let (code, out, err) = desk.run(&["add", "fake", &server.mcp_url()]);
        assert_eq!(code, 0, "mcp-auth add: {out}{err}");
        desk
    }

    fn with_config(server: &FakeServer, config: &str) -> Self {
        let session = Session::new();
        let hermes = session.dir.path().join("home/.hermes");
        std::fs::create_dir_all(&hermes).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(hermes.join("config.yaml"), config).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("dbus-run-session");
        cmd.args(["--", "sh", "-c", &format!("{UNLOCK}; echo \"$DBUS_SESSION_BUS_ADDRESS\"; exec cat")]);
        session.apply(&mut cmd, ":none");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-run-session (scripts/install-deps.sh): {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
        let address = Lines::new(stdout)
            .next(WAIT)
            .filter(|a| a.starts_with("unix:"))
            .unwrap_or_else(|| panic!("the D-Bus session did not start"));
        Self { session, bus: Some(ChildGuard(child)), bus_stdin: stdin, address, mcp_url: server.mcp_url() }
    }

    fn home(&self) -> PathBuf {
        self.session.dir.path().join("home")
    }

    fn hermes(&self) -> PathBuf {
        self.home().join(".hermes")
    }

    /// The desktop's environment on `cmd`.
    fn env(&self, cmd: &mut Command) {
        self.session.apply(cmd, ":none");
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("NO_COLOR", "1")
            .env_remove("BROWSER")
            .env_remove("HERMES_HOME")
            .env_remove("CLAUDE_CODE_MCP_SERVER_NAME")
            .env_remove("CLAUDE_CODE_MCP_SERVER_URL");
    }

    /// The arguments that run `mcp-auth <args>` on this desk's agent home.
    fn mcp_auth_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![bin("mcp-auth").display().to_string(), "--hermes-home".to_owned()];
        all.push(self.hermes().display().to_string());
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    }

    fn mcp_auth(&self, args: &[&str]) -> Command {
        let all = self.mcp_auth_args(args);
        let mut cmd = Command::new(&all[0]);
        cmd.args(&all[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        self.env(&mut cmd);
        cmd
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.mcp_auth(args).output().unwrap_or_else(|e| panic!("{e}"));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    fn status(&self) -> Value {
        let (code, out, err) = self.run(&["status", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        let rows: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        rows.as_array().and_then(|r| r.iter().find(|r| r["name"] == "fake").cloned()).unwrap_or(Value::Null)
    }

    /// Signs in through `mcp-auth proxy fake --connect`, playing the browser
    /// with the URL it prints, and checks that the proxy then serves.
    async fn sign_in_through_the_proxy(&self) {
        let mut proxy = RawProxy::start(self, &["proxy", "fake", "--connect"]);
        let mut seen = Vec::new();
        let url = loop {
            match proxy.stderr.next(WAIT) {
                Some(line) if is_url(&line) => break line.trim().to_owned(),
                Some(line) => seen.push(line),
                None => panic!("the proxy printed no sign-in URL:\n{}", seen.join("\n")),
            }
        };
        HeadlessBrowser::new(Http::new().unwrap_or_else(|e| panic!("{e}")))
            .open(&url)
            .await
            .unwrap_or_else(|e| panic!("browser: {e}"));
        let answer = proxy.initialize();
        assert_eq!(answer["result"]["serverInfo"]["name"], "mcp-auth-test-server", "{answer}");
        proxy.finish();
    }

    /// Every file under `$HOME` and the XDG folders that holds a token of
    /// `server` (its values share one random marker) or is a token file.
    fn files_with_tokens(&self, server: &FakeServer) -> Vec<PathBuf> {
        let minted = server.mint_access_token();
        let marker = minted.split('-').nth(1).map(|salt| format!("-{salt}-")).unwrap_or(minted);
        let mut found = Vec::new();
        walk(self.session.dir.path(), &mut |path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let token_file = path.extension().is_some_and(|e| e == "json")
                && path.parent().is_some_and(|p| p.ends_with("mcp-tokens"));
            if text.contains(&marker) || token_file {
                found.push(path.to_path_buf());
            }
        });
        found
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        // Ending `cat` ends the session: the bus and the keyring daemon go.
        drop(self.bus_stdin.take());
        if let Some(mut bus) = self.bus.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while bus.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, visit),
            Ok(t) if t.is_file() => visit(&path),
            _ => {}
        }
    }
}

/// `mcp-auth proxy` driven with raw JSON-RPC lines.
struct RawProxy {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
    next_id: u64,
}

impl RawProxy {
    fn start(desk: &Desk, args: &[&str]) -> Self {
        let mut cmd = desk.mcp_auth(args);
        cmd.stdin(Stdio::piped());
        if let Some(filter) = std::env::var_os("PROXY_TEST_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
        let stdin = child.stdin.take();
        let stdout = Lines::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let stderr = Lines::new(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
        Self { child: ChildGuard(child), stdin, stdout, stderr, next_id: 0 }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("stdin closed"));
        writeln!(stdin, "{message}").unwrap_or_else(|e| panic!("write to the proxy: {e}"));
        stdin.flush().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sends request `method` and returns its answer (or panics after [`WAIT`]).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.stdout.next(left) else {
                let mut said = Vec::new();
                while let Some(line) = self.stderr.next(Duration::from_millis(300)) {
                    said.push(line);
                }
                panic!("no answer to {method} within {WAIT:?}; the proxy said:\n{}", said.join("\n"));
            };
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {line}"));
            if message["id"] == id {
                return message;
            }
        }
    }

    fn initialize(&mut self) -> Value {
        let answer = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        answer
    }

    /// Closes stdin (the client leaves) and waits for the proxy to exit.
    fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                assert!(status.success(), "the proxy exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "the proxy did not exit after its client left");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Which third-party client.
#[derive(Debug, Clone, Copy)]
enum Sdk {
    TypeScript,
    Python,
}

impl Sdk {
    fn command(self) -> Command {
        let root = repo_root();
        match self {
            Sdk::TypeScript => {
                let dir = root.join("target/mcp-clients");
                assert!(
                    dir.join("node_modules/@modelcontextprotocol/sdk").is_dir(),
                    "the TypeScript SDK is missing: cp tests/proxy/package.json target/mcp-clients/ && (cd target/mcp-clients && npm install) (scripts/test.sh does it)"
                );
                // ES modules resolve packages from the script's folder.
                let script = dir.join("ts_client.mjs");
                std::fs::copy(root.join("tests/proxy/ts_client.mjs"), &script).unwrap_or_else(|e| panic!("{e}"));
                let mut cmd = Command::new("node");
                cmd.arg(script);
                cmd
            }
            Sdk::Python => {
                let python = root.join("target/mcp-py-venv/bin/python");
                assert!(
                    python.is_file(),
                    "the Python SDK is missing: python3 -m venv target/mcp-py-venv && target/mcp-py-venv/bin/pip install mcp==1.26.0 (scripts/test.sh does it)"
                );
                let mut cmd = Command::new(python);
                cmd.arg(root.join("tests/proxy/py_client.py"));
                cmd
            }
        }
    }
}

/// A third-party MCP client that started `mcp-auth proxy` as its server.
struct SdkClient {
    _child: ChildGuard,
    stdin: ChildStdin,
    stdout: Lines,
    stderr: Lines,
}

impl SdkClient {
    fn start(sdk: Sdk, desk: &Desk, proxy_args: &[&str]) -> Self {
        let mut cmd = sdk.command();
        cmd.args(desk.mcp_auth_args(proxy_args)).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        desk.env(&mut cmd);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start the {sdk:?} client: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let stdout = Lines::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let stderr = Lines::new(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
        Self { _child: ChildGuard(child), stdin, stdout, stderr }
    }

    fn line(&self) -> Value {
        let line = self.stdout.next(WAIT).unwrap_or_else(|| panic!("the client said nothing:\n{}", self.stderr_text()));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn connected(&self) -> Value {
        let line = self.line();
        assert_eq!(line["phase"], "connected", "{line}");
        line
    }

    /// One round: list the tools and call `test-tool`.
    fn round(&mut self) -> Value {
        writeln!(self.stdin, "round").unwrap_or_else(|e| panic!("{e}"));
        self.stdin.flush().unwrap_or_else(|e| panic!("{e}"));
        self.line()
    }

    /// Ends the session (end of input) and returns what the client and the
    /// proxy said on stderr.
    fn close(self) -> String {
        let Self { _child, stdin, stdout: _, stderr } = self;
        drop(stdin);
        let mut text = Vec::new();
        while let Some(line) = stderr.next(Duration::from_secs(2)) {
            text.push(line);
        }
        text.join("\n")
    }

    fn stderr_text(&self) -> String {
        let mut text = Vec::new();
        while let Some(line) = self.stderr.next(Duration::from_millis(300)) {
            text.push(line);
        }
        text.join("\n")
    }
}

/// Waits until `server`'s access tokens issued at `issued` have expired by the clock.
async fn until_expired(issued: Instant, lifetime: u64) {
    let at = issued + Duration::from_secs(lifetime) + Duration::from_millis(500);
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

/// No refresh yet of the tokens issued at `issued` — asserted only while
/// they are live by the refresh rule (with a second's margin): on a slow
/// machine the step before may end past their refresh point, and then a
/// refresh was right.
fn assert_no_refresh_while_live(server: &FakeServer, issued: Instant, lifetime: u64) {
    let due_after = Duration::from_secs_f64(mcp_auth_core::refresh_due_at(lifetime as f64, Some(lifetime)));
    if issued.elapsed() + Duration::from_secs(1) < due_after {
        assert_eq!(server.log().grants("refresh_token"), 0, "a live token was refreshed");
    }
}

fn assert_round_ok(round: &Value, what: &str) {
    assert_eq!(round["ok"], true, "{what}: {round}");
    assert_eq!(round["tools"], json!(["test-tool"]), "{what}: {round}");
    assert_eq!(round["text"], "ok", "{what}: {round}");
    assert_eq!(round["isError"], false, "{what}: {round}");
}

/// The proof for one SDK: not signed in (a clear error), sign-in through
/// `proxy --connect`, initialize / list / call, a refresh when the token is
/// due and one after a 401 (the client notices nothing), then a revoked
/// grant (a clear error, noted for the tray) — and never a token on disk.
async fn sdk_proof(sdk: Sdk) {
    const LIFETIME: u64 = 8;
    let server =
        FakeServer::start(Behaviour { access_token_lifetime: LIFETIME, reuse_detection: true, ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::proxy_only(&server);
    // As `mcp-auth setup` writes it: the URL.
    let url = server.mcp_url();
    let proxy = ["proxy", url.as_str()];

    // Not signed in: the client gets the reason as the MCP error, stderr too.
    let client = SdkClient::start(sdk, &desk, &proxy);
    let connected = client.connected();
    let error = connected["error"].as_str().unwrap_or_default().to_owned();
    assert_eq!(connected["ok"], false, "{connected}");
    assert!(
        error.contains("not signed in to fake yet: sign in (tray or `mcp-auth proxy fake --connect`)"),
        "{connected}"
    );
    let stderr = client.close();
    assert!(stderr.contains("mcp-auth proxy: not signed in to fake yet"), "{stderr}");

    desk.sign_in_through_the_proxy().await;
    let issued = Instant::now();
    assert_eq!(server.log().grants("authorization_code"), 1);

    let mut client = SdkClient::start(sdk, &desk, &proxy);
    let connected = client.connected();
    assert_eq!(connected["ok"], true, "{connected}\n{}", client.stderr_text());
    assert_eq!(connected["server"], "mcp-auth-test-server");
    assert_round_ok(&client.round(), "first round");
    assert_no_refresh_while_live(&server, issued, LIFETIME);

    // The token runs out mid-session: the proxy refreshes before sending.
    until_expired(issued, LIFETIME).await;
    assert_round_ok(&client.round(), "after the expiry");
    assert_eq!(server.log().grants("refresh_token"), 1, "{:?}", server.log().refreshes);

    // The server refuses a token that looks valid (401): one refresh, the
    // request again; the client notices nothing.
    server.expire_access_tokens();
    assert_round_ok(&client.round(), "after a 401");
    assert_eq!(server.log().grants("refresh_token"), 2, "{:?}", server.log().refreshes);
    assert_eq!(server.log().refreshes_ending("ok"), 2);

    // The grant is revoked at the server: a clear error, noted in the vault.
    server.forget_refresh_tokens();
    server.expire_access_tokens();
    let round = client.round();
    assert_eq!(round["ok"], false, "{round}");
    let error = round["error"].as_str().unwrap_or_default();
    assert!(error.contains("sign in to fake again (tray or `mcp-auth proxy fake --connect`)"), "{round}");
    assert_eq!(server.log().grants("refresh_token"), 3, "one refresh, no retry loop: {:?}", server.log().refreshes);
    let row = desk.status();
    assert_eq!((&row["client"], &row["state"]), (&json!("mcp-auth"), &json!("needs_reauth")), "{row}");

    // Later requests fail at once: no dead refresh token is presented again.
    let round = client.round();
    assert_eq!(round["ok"], false, "{round}");
    assert_eq!(server.log().grants("refresh_token"), 3, "{:?}", server.log().refreshes);
    // A new sign-in (through another proxy here; the tray's is the same)
    // revives the running session.
    desk.sign_in_through_the_proxy().await;
    assert_round_ok(&client.round(), "after signing in again");
    let row = desk.status();
    // (An 8-second token soon reads "expiring".)
    assert!(row["state"] == "connected" || row["state"] == "expiring", "{row}");

    // A proxy-only server: no token ever reached the disk.
    assert_eq!(desk.files_with_tokens(&server), Vec::<PathBuf>::new());
    assert_eq!(server.log().reuse_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_client_works_through_the_proxy_across_expiry_and_revocation() {
    sdk_proof(Sdk::TypeScript).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_works_through_the_proxy_across_expiry_and_revocation() {
    sdk_proof(Sdk::Python).await;
}

/// The same proof against a legacy HTTP+SSE server (MCP 2024-11-05): the
/// proxy finds out by itself (its POST is refused with 405, a GET opens the
/// event stream), the token goes on the GET and every POST, a refresh when
/// due and one after a 401 on a POST, a lost stream reopened without the
/// client noticing, a revoked grant a clear error.
async fn sdk_proof_legacy_sse(sdk: Sdk) {
    const LIFETIME: u64 = 8;
    let behaviour =
        Behaviour { access_token_lifetime: LIFETIME, reuse_detection: true, legacy_sse: true, ..Default::default() };
    let server = FakeServer::start(behaviour).await.unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::proxy_only(&server);
    let url = server.mcp_url();
    let proxy = ["proxy", url.as_str()];

    desk.sign_in_through_the_proxy().await;
    let issued = Instant::now();
    assert_eq!(server.log().sse_streams, 1, "the proxy did not fall back to legacy SSE: {:?}", server.log().requests);

    let mut client = SdkClient::start(sdk, &desk, &proxy);
    let connected = client.connected();
    assert_eq!(connected["ok"], true, "{connected}\n{}", client.stderr_text());
    assert_eq!(connected["server"], "mcp-auth-test-server");
    assert_round_ok(&client.round(), "first round");
    assert_eq!(server.log().sse_streams, 2);
    assert!(server.log().requests.iter().any(|r| r == "POST /messages"), "{:?}", server.log().requests);
    assert_no_refresh_while_live(&server, issued, LIFETIME);

    // The token runs out mid-session: refreshed before the next POST.
    until_expired(issued, LIFETIME).await;
    assert_round_ok(&client.round(), "after the expiry");
    assert_eq!(server.log().grants("refresh_token"), 1, "{:?}", server.log().refreshes);

    // A POST refused with 401: one refresh, the POST again.
    server.expire_access_tokens();
    assert_round_ok(&client.round(), "after a 401");
    assert_eq!(server.log().grants("refresh_token"), 2, "{:?}", server.log().refreshes);

    // The server drops the stream (a restart, a proxy timing out): a new
    // stream (with a token the server takes), the session started again.
    let initializes = server.log().mcp_calls.iter().filter(|m| *m == "initialize").count();
    server.end_sse_streams();
    let deadline = Instant::now() + WAIT;
    while server.log().mcp_calls.iter().filter(|m| *m == "initialize").count() == initializes {
        assert!(Instant::now() < deadline, "the proxy did not reopen the stream: {:?}", server.log().requests);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_round_ok(&client.round(), "after the stream was lost");
    assert_eq!(server.log().sse_streams, 3, "{:?}", server.log().requests);

    // The grant is revoked at the server: a clear error, noted in the vault.
    server.forget_refresh_tokens();
    server.expire_access_tokens();
    let round = client.round();
    assert_eq!(round["ok"], false, "{round}");
    let error = round["error"].as_str().unwrap_or_default();
    assert!(error.contains("sign in to fake again (tray or `mcp-auth proxy fake --connect`)"), "{round}");
    let row = desk.status();
    assert_eq!(row["state"], "needs_reauth", "{row}");
    let _ = client.close();

    assert_eq!(desk.files_with_tokens(&server), Vec::<PathBuf>::new());
    assert_eq!(server.log().reuse_events, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_client_works_through_the_proxy_with_a_legacy_sse_server() {
    sdk_proof_legacy_sse(Sdk::TypeScript).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_works_through_the_proxy_with_a_legacy_sse_server() {
    sdk_proof_legacy_sse(Sdk::Python).await;
}

/// A legacy SSE server that names a messages endpoint on another origin
/// gets nothing sent there (not the token, not the client's messages): the
/// client gets the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_endpoint_on_another_origin_is_refused() {
    let server =
        FakeServer::start(Behaviour { legacy_sse: true, ..Default::default() }).await.unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::new(&server);
    desk.sign_in_through_the_proxy().await;
    server.set_behaviour(|b| b.sse_endpoint = Some("http://127.0.0.2:9/messages?sessionId=1".to_owned()));
    for transport in ["auto", "sse"] {
        let mut proxy = RawProxy::start(&desk, &["proxy", "fake", "--transport", transport]);
        let answer = proxy.initialize();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("named a messages endpoint on another origin (http://127.0.0.2:9/messages?sessionId=[redacted]); refusing to send anything there"),
            "{transport}: {answer}"
        );
        proxy.finish();
    }
    // `--transport http` does not fall back.
    let mut proxy = RawProxy::start(&desk, &["proxy", "fake", "--transport", "http"]);
    let answer = proxy.initialize();
    assert!(answer["error"]["message"].as_str().unwrap_or_default().contains("405"), "{answer}");
    proxy.finish();
}

/// Several proxies (separate processes) and `mcp-auth refresh` meet an
/// expired token at once: one token request per rotation, never a spent
/// refresh token presented again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_proxies_and_the_cli_make_one_token_request_per_rotation() {
    const LIFETIME: u64 = 6;
    const PROXIES: usize = 4;
    let server =
        FakeServer::start(Behaviour { access_token_lifetime: LIFETIME, reuse_detection: true, ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::new(&server);
    desk.sign_in_through_the_proxy().await;
    let issued = Instant::now();
    let mut proxies: Vec<RawProxy> = (0..PROXIES).map(|_| RawProxy::start(&desk, &["proxy", "fake"])).collect();
    for proxy in &mut proxies {
        assert!(proxy.initialize()["result"].is_object());
    }

    // 1. Only proxies: exactly one refresh.
    until_expired(issued, LIFETIME).await;
    let listed = list_all(&mut proxies);
    assert!(listed.iter().all(|a| a["result"]["tools"][0]["name"] == "test-tool"), "{listed:?}");
    assert_eq!(server.log().grants("refresh_token"), 1, "{:?}", server.log().refreshes);

    // 2. Proxies and two `mcp-auth refresh` at once (each of those is an
    // explicit "refresh now", so a rotation of its own).
    let issued = Instant::now();
    until_expired(issued, LIFETIME).await;
    let cli: Vec<_> =
        (0..2).map(|_| desk.mcp_auth(&["refresh", "fake"]).spawn().unwrap_or_else(|e| panic!("{e}"))).collect();
    let listed = list_all(&mut proxies);
    assert!(listed.iter().all(|a| a["result"]["tools"][0]["name"] == "test-tool"), "{listed:?}");
    for child in cli {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let log = server.log();
    let refreshes = log.grants("refresh_token");
    assert!((3..=4).contains(&refreshes), "the proxies refreshed more than once: {:?}", log.refreshes);
    assert_eq!(log.refreshes_ending("ok"), refreshes, "{:?}", log.refreshes);
    assert_eq!(log.reuse_events, 0, "a spent refresh token was presented again: {:?}", log.refreshes);
    let mut presented: Vec<_> = log.refreshes.iter().map(|r| r.presented.clone()).collect();
    presented.dedup();
    assert_eq!(presented.len(), refreshes, "one refresh token spent twice: {:?}", log.refreshes);
    for proxy in proxies {
        proxy.finish();
    }
    println!("proxies and CLI: {refreshes} refreshes for 1 + 2 rotations, none presented twice");
}

/// `tools/list` on every proxy at once (each written before any answer is read).
fn list_all(proxies: &mut [RawProxy]) -> Vec<Value> {
    for proxy in proxies.iter_mut() {
        proxy.next_id += 1;
        let id = proxy.next_id;
        proxy.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}}));
    }
    proxies
        .iter()
        .map(|proxy| {
            let line = proxy.stdout.next(WAIT).unwrap_or_else(|| panic!("a proxy did not answer tools/list"));
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_prints_the_bearer_header_for_claude_codes_headers_helper() {
    const LIFETIME: u64 = 6;
    let server = FakeServer::start(Behaviour { access_token_lifetime: LIFETIME, ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::new(&server);

    // Not signed in: exit 1, one line on stderr, nothing on stdout.
    let (code, out, err) = desk.run(&["headers", "fake"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not signed in to fake yet"), "{err}");
    let (code, out, err) = desk.run(&["headers"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("no server given"), "{err}");

    desk.sign_in_through_the_proxy().await;
    let issued = Instant::now();
    let header = |cmd: &mut Command| -> String {
        let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let object = value.as_object().unwrap_or_else(|| panic!("{value}"));
        assert_eq!(object.len(), 1, "{value}");
        let bearer = object["Authorization"].as_str().unwrap_or_default();
        bearer.strip_prefix("Bearer ").unwrap_or_else(|| panic!("{value}")).to_owned()
    };

    // By argument, by Claude Code's server name, by its URL.
    let token = header(&mut desk.mcp_auth(&["headers", "fake"]));
    assert!(server.is_valid_access_token(&token));
    let mut by_name = desk.mcp_auth(&["headers"]);
    by_name.env("CLAUDE_CODE_MCP_SERVER_NAME", "fake");
    assert_eq!(header(&mut by_name), token);
    let mut by_url = desk.mcp_auth(&["headers"]);
    by_url.env("CLAUDE_CODE_MCP_SERVER_NAME", "what-claude-calls-it").env("CLAUDE_CODE_MCP_SERVER_URL", &desk.mcp_url);
    assert_eq!(header(&mut by_url), token);
    assert_no_refresh_while_live(&server, issued, LIFETIME);

    // Due: refreshed first.
    until_expired(issued, LIFETIME).await;
    let renewed = header(&mut desk.mcp_auth(&["headers", "fake"]));
    assert_ne!(renewed, token);
    assert!(server.is_valid_access_token(&renewed));
    assert_eq!(server.log().grants("refresh_token"), 1);

    // A server of no config: exit 1.
    let (code, out, err) = desk.run(&["headers", "https://elsewhere.example/mcp"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(desk.files_with_tokens(&server), Vec::<PathBuf>::new());
}

/// Resident memory of process `pid`, KiB (Linux `/proc`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// The benchmark of issue 13: clients start one proxy per server, often
/// several at once. Prints start-to-first-response (spawn → `initialize`
/// answered by the remote server through the proxy, keychain read included)
/// and the idle resident memory of each proxy with its session open
/// (`mcp-remote` is one Node process of about 50 MB per server). The binary
/// is the one built with the tests (debug unless built `--release` into the
/// same folder); `MCP_AUTH_BENCH_BIN` names another (a release build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_proxy_start_to_first_response_and_idle_memory() {
    const PROXIES: usize = 5;
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::new(&server);
    desk.sign_in_through_the_proxy().await;
    let binary = std::env::var_os("MCP_AUTH_BENCH_BIN").map(PathBuf::from);
    let start = |desk: &Desk| {
        let proxy = RawProxy::start(desk, &["proxy", "fake"]);
        (Instant::now(), proxy)
    };
    let mut started: Vec<(Instant, RawProxy)> = match &binary {
        None => (0..PROXIES).map(|_| start(&desk)).collect(),
        Some(path) => (0..PROXIES)
            .map(|_| {
                let mut cmd = Command::new(path);
                cmd.arg("--hermes-home").arg(desk.hermes()).args(["proxy", "fake"]);
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
                desk.env(&mut cmd);
                let at = Instant::now();
                let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
                let stdin = child.stdin.take();
                let stdout = Lines::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
                let stderr = Lines::new(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
                (at, RawProxy { child: ChildGuard(child), stdin, stdout, stderr, next_id: 0 })
            })
            .collect(),
    };
    let mut firsts = Vec::new();
    for (at, proxy) in &mut started {
        assert!(proxy.initialize()["result"].is_object());
        firsts.push(at.elapsed());
    }
    let mut rss = Vec::new();
    for (_, proxy) in &mut started {
        assert_eq!(proxy.request("tools/list", json!({}))["result"]["tools"][0]["name"], "test-tool");
        rss.push(rss_kib(proxy.child.0.id()));
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let max_first = firsts.iter().map(ms).fold(0.0, f64::max);
    let mean_rss = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0;
    println!(
        "proxy benchmark ({}): {PROXIES} proxies started at once; start to first response {} ms (max {max_first:.0} ms); idle RSS per proxy {} MB (mean {mean_rss:.1} MB; mcp-remote: ~50 MB)",
        binary.as_deref().map_or_else(|| bin("mcp-auth").display().to_string(), |p| p.display().to_string()),
        firsts.iter().map(|d| format!("{:.0}", ms(d))).collect::<Vec<_>>().join(" / "),
        rss.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect::<Vec<_>>().join(" / "),
    );
    assert!(rss.iter().all(|k| *k < 50 * 1024), "a proxy takes as much memory as mcp-remote: {rss:?} KiB");
    for (_, proxy) in started {
        proxy.finish();
    }
}

/// What neither side is about is relayed as it is: a remote error answer, a
/// method the proxy has never heard of, notifications (cancellation
/// included) in order with the requests around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_pass_through_unchanged() {
    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let desk = Desk::new(&server);
    desk.sign_in_through_the_proxy().await;
    let mut proxy = RawProxy::start(&desk, &["proxy", "fake"]);
    let answer = proxy.initialize();
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18", "{answer}");

    let answer = proxy.request("custom/method", json!({"x": 1}));
    assert_eq!(answer["error"], json!({"code": -32601, "message": "no method custom/method"}), "{answer}");
    proxy.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99, "reason": "test"}}),
    );
    let answer = proxy.request("ping", json!({}));
    assert_eq!(answer["result"], json!({}), "{answer}");
    // Requests in order; the cancellation goes its own (control) way.
    let deadline = Instant::now() + WAIT;
    while !server.log().mcp_calls.iter().any(|m| m == "notifications/cancelled") {
        assert!(Instant::now() < deadline, "the cancellation never reached the server: {:?}", server.log().mcp_calls);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls = server.log().mcp_calls;
    let expected = ["initialize", "notifications/initialized", "custom/method", "ping"];
    let seen: Vec<&str> = calls.iter().map(String::as_str).filter(|m| expected.contains(m)).collect();
    // The sign-in's own check came first.
    assert_eq!(seen[seen.len() - expected.len()..], expected, "{calls:?}");
    proxy.finish();
}

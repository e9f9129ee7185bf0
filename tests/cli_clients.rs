//! Other MCP clients' configs through the real `mcp-auth` binary: `status`
//! lists their remote servers grouped by client, `add`/`remove` keep our
//! list, `setup` prints a diff and `--write` applies it once.
// Linux only: XDG folder isolation, D-Bus, a real Secret Service.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Output};

use mcp_auth_e2e::bin;
use pretty_assertions::assert_eq;
use serde_json::Value;

fn mcp_auth(root: &Path, args: &[&str]) -> Output {
    Command::new(bin("mcp-auth"))
        .args(args)
        .env_remove("HERMES_HOME")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .env_remove("OPENCODE_CONFIG")
        .env("NO_COLOR", "1")
        .env("HOME", root.join("home"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_DATA_HOME", root.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run mcp-auth: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn setup_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = root.path();
    let write = |rel: &str, body: &str| {
        let path = p.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(p)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(path, body).unwrap_or_else(|e| panic!("{e}"));
    };
    // The file store: no keychain needed.
    write("config/mcp-auth-tray/settings.json", r#"{"credential_store": "file"}"#);
    write(
        "home/.cursor/mcp.json",
        "{\n  // mine\n  \"mcpServers\": {\n    \"linear\": { \"url\": \"https://mcp.linear.app/mcp\", \"headers\": { \"Authorization\": \"Bearer cursor-secret\" } }\n  }\n}\n",
    );
    write(
        "home/.codex/config.toml",
        "[mcp_servers.docs]\ncommand = \"mcp-auth\"\nargs = [\"proxy\", \"https://docs.example.com/mcp\"]\n",
    );
    write("home/.gemini/settings.json", "{ \"mcpServers\": ");
    root
}

#[test]
fn status_shows_every_clients_remote_servers_and_our_list() {
    let root = setup_root();
    let out = mcp_auth(root.path(), &["add", "solo", "https://solo.example/mcp"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = mcp_auth(root.path(), &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    let got: Vec<(String, String, bool, String)> = rows
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["client"].as_str().unwrap_or_default().to_owned(),
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["routed"].as_bool().unwrap_or_default(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let row = |c: &str, n: &str, routed: bool| (c.to_owned(), n.to_owned(), routed, "not_connected".to_owned());
    assert_eq!(got, vec![row("cursor", "linear", false), row("codex", "docs", true), row("mcp-auth", "solo", true)]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: [gemini]") && stderr.contains("cannot parse it"), "{stderr}");
    assert!(!text(&out.stdout).contains("cursor-secret") && !stderr.contains("cursor-secret"));

    let table = mcp_auth(root.path(), &["status"]);
    let table = text(&table.stdout);
    assert!(table.contains("\nCursor ("), "{table}");
    assert!(table.contains("via mcp-auth proxy"), "{table}");
    assert!(table.contains("Our list (mcp-auth add)"), "{table}");

    let out = mcp_auth(root.path(), &["remove", "solo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = mcp_auth(root.path(), &["remove", "solo"]);
    assert_eq!(out.status.code(), Some(1), "removing twice fails");
}

#[test]
fn setup_prints_a_diff_writes_with_a_backup_and_then_has_nothing_to_do() {
    let root = setup_root();
    let config = root.path().join("home/.cursor/mcp.json");
    let before = std::fs::read_to_string(&config).unwrap_or_default();
    let out = mcp_auth(root.path(), &["setup", "cursor", "--program", "mcp-auth"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("-    \"linear\": { \"url\""), "{shown}");
    assert!(shown.contains("+      \"args\": [\"proxy\", \"https://mcp.linear.app/mcp\"]"), "{shown}");
    assert_eq!(std::fs::read_to_string(&config).unwrap_or_default(), before, "no --write: untouched");
    assert!(shown.contains("\"Authorization\": \"[redacted]\""), "{shown}");
    assert!(!shown.contains("cursor-secret"), "a header value in the diff: {shown}");

    let out = mcp_auth(root.path(), &["setup", "cursor", "--program", "mcp-auth", "--write"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let after = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(after.contains("// mine") && after.contains("\"command\": \"mcp-auth\""), "{after}");
    let backups: Vec<_> = std::fs::read_dir(config.parent().unwrap_or(root.path()))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("mcp.json.mcp-auth-backup-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read_to_string(backups[0].path()).unwrap_or_default(), before);

    let out = mcp_auth(root.path(), &["setup", "cursor", "--program", "mcp-auth", "--write"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no change needed"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read_to_string(&config).unwrap_or_default(), after);

    let out = mcp_auth(root.path(), &["status", "--json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let cursor = rows.as_array().into_iter().flatten().find(|r| r["client"] == "cursor").cloned().unwrap_or_default();
    assert_eq!((cursor["routed"].as_bool(), cursor["via"].as_str()), (Some(true), Some("proxy")));

    let out = mcp_auth(root.path(), &["setup", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown client `nosuch`"), "{}", text(&out.stderr));
}

/// A grant the agent's server got (kept in a real Secret Service) serves
/// every client that names the same URL, however spelled: no new sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_in_the_real_secret_service_serves_every_client_naming_its_url() {
    use mcp_auth_e2e::cli::{Setup, Store, connect_no_browser};
    use mcp_auth_test_support::{Behaviour, FakeServer};

    let server = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::new(&server.mcp_url(), Store::Keyring);
    let (code, out, err) = connect_no_browser(&setup).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    // `Setup` runs the keyring session with HOME in the session's folder.
    let home = setup.session.dir.path().join("home");
    // Another spelling of the same URL: scheme case, a trailing slash.
    let spelled = format!("{}/", server.mcp_url().replacen("http://", "HTTP://", 1));
    std::fs::create_dir_all(home.join(".cursor")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        home.join(".cursor/mcp.json"),
        format!(r#"{{"mcpServers": {{"tracker": {{"url": "{spelled}"}}, "elsewhere": {{"url": "https://elsewhere.example/mcp"}}}}}}"#),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let status = setup.command(&["status", "--json"]).output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let rows: Value =
        serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&status.stdout)));
    let rows = rows.as_array().cloned().unwrap_or_default();
    let of = |name: &str| rows.iter().find(|r| r["name"] == name).cloned().unwrap_or_default();
    assert_eq!(of("fake")["state"], "connected");
    let tracker = of("tracker");
    assert_eq!(
        (tracker["client"].as_str(), tracker["state"].as_str()),
        (Some("cursor"), Some("connected")),
        "{tracker}"
    );
    assert_eq!(tracker["grant"], "fake");
    assert_eq!(of("elsewhere")["state"], "not_connected");
    assert_eq!(server.log().registrations.len(), 1, "no second registration or sign-in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_signs_in_to_servers_of_our_list_and_of_other_clients_only() {
    use mcp_auth_e2e::cli::{Setup, Store, connect_no_browser_to};
    use mcp_auth_test_support::{Behaviour, FakeServer};

    let ours = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let cursors = FakeServer::start(Behaviour::default()).await.unwrap_or_else(|e| panic!("{e}"));
    // The agent has only a server elsewhere (never contacted).
    let setup = Setup::new("https://agent-only.example/mcp", Store::Keyring);
    let home = setup.session.dir.path().join("home");
    let run = |args: &[&str]| {
        let out = setup.command(args).output().unwrap_or_else(|e| panic!("{e}"));
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, out, err) = run(&["add", "solo", &ours.mcp_url()]);
    assert_eq!(code, Some(0), "{out}{err}");
    std::fs::create_dir_all(home.join(".cursor")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        home.join(".cursor/mcp.json"),
        format!(r#"{{"mcpServers": {{"tracker": {{"url": "{}"}}, "tool": {{"command": "npx"}}}}}}"#, cursors.mcp_url()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let states = || {
        let (code, out, err) = run(&["status", "--json"]);
        assert_eq!(code, Some(0), "{out}{err}");
        let rows: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let of = |name: &str| {
            rows.as_array()
                .and_then(|r| r.iter().find(|r| r["name"] == name))
                .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        };
        (of("solo"), of("tracker"))
    };
    assert_eq!(states(), ("not_connected".to_owned(), "not_connected".to_owned()));

    // A name of our list.
    let (code, out, err) = connect_no_browser_to(&setup, "solo").await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("Connected to solo, access token valid for 59 min."), "{out}");
    assert!(out.contains("No token file written"), "{out}");
    assert_eq!(ours.log().registrations.len(), 1);
    assert_eq!(states(), ("connected".to_owned(), "not_connected".to_owned()));

    // A name only Cursor's config has: its URL's grant.
    let (code, out, err) = connect_no_browser_to(&setup, "tracker").await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("Connected to "), "{out}");
    assert_eq!(cursors.log().registrations.len(), 1);
    assert_eq!(states(), ("connected".to_owned(), "connected".to_owned()));
    // The grant serves the proxy: its token is the one the server issued.
    let (code, out, err) = run(&["headers", &cursors.mcp_url()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let header: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let token = header["Authorization"].as_str().and_then(|h| h.strip_prefix("Bearer ")).unwrap_or_default();
    assert!(cursors.is_valid_access_token(token), "not a token of Cursor's server");
    // Ours only: no token file anywhere for the agent.
    assert!(!setup.tokens_dir().exists(), "token files were written for servers the agent does not have");

    // Neither the agent, our list nor a client names it (a local tool does not count).
    for name in ["nope", "tool"] {
        let (code, out, err) = run(&["connect", name, "--no-browser"]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains("is in no client's config either"), "{err}");
    }
}

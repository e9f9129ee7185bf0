//! `mcp-auth status` run as a real process against fixture homes.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Command, Output};

use mcp_auth_e2e::{bin, fixture_home};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// The app's own folders for these tests: the opt-in file store, empty, so
/// the status does not depend on the machine's keychain.
fn app_dirs() -> &'static Path {
    static DIRS: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let settings = dir.path().join("config").join("mcp-auth-tray");
        std::fs::create_dir_all(&settings).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(settings.join("settings.json"), r#"{"credential_store": "file"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        dir
    })
    .path()
}

fn mcp_auth(args: &[&str], hermes_home_env: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin("mcp-auth"));
    cmd.args(args)
        .env_remove("HERMES_HOME")
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", app_dirs().join("config"))
        .env("XDG_DATA_HOME", app_dirs().join("data"))
        // Other MCP clients' configs are read from the home folder: none here.
        .env("HOME", app_dirs().join("home"));
    if let Some(home) = hermes_home_env {
        cmd.env("HERMES_HOME", home);
    }
    cmd.output().unwrap_or_else(|e| panic!("cannot run mcp-auth: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn status_json(home: &Path) -> Value {
    let out = mcp_auth(&["status", "--json", "--hermes-home", &home.display().to_string()], None);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(&out.stdout)))
}

const AGENT_ONLY: &str = "tokens from the agent's own sign-in, not yet kept by mcp-auth-tray";

#[test]
fn json_lists_every_server_with_its_state() {
    let home = fixture_home("home");
    let corrupt = home.path().join("mcp-tokens").join("asana.json");
    let row = |profile: Option<&str>,
               name: &str,
               url: Option<&str>,
               auth: &str,
               state: &str,
               expires_at: Option<i64>,
               detail: Option<&str>| {
        // Every OAuth server names its sign-in flow; the others have none.
        let flow = (auth == "oauth").then_some("browser");
        json!({"profile": profile, "name": name, "url": url, "auth": auth, "state": state, "expires_at": expires_at, "detail": detail, "last_error": null, "flow": flow, "checked_at": null, "check": null, "required_scope": null})
    };
    let want = json!([
        row(None, "linear", Some("https://mcp.linear.example/mcp"), "oauth", "not_connected", None, None),
        row(
            None,
            "notion",
            Some("https://mcp.notion.example/mcp"),
            "oauth",
            "connected",
            Some(4102444800),
            Some(AGENT_ONLY)
        ),
        row(
            None,
            "sentry",
            Some("https://mcp.sentry.example/mcp"),
            "oauth",
            "expired",
            Some(1000000000),
            Some(AGENT_ONLY)
        ),
        row(
            None,
            "asana",
            Some("https://mcp.asana.example/v1/mcp"),
            "oauth",
            "error",
            None,
            Some(&format!(
                "token file is corrupt: not valid JSON; sign in again to replace it ({})",
                corrupt.display()
            ))
        ),
        row(
            None,
            "github",
            Some("https://api.github.example/mcp"),
            "headers",
            "not_applicable",
            None,
            Some("uses ${GITHUB_PAT} (set)")
        ),
        row(
            None,
            "stripe",
            Some("https://mcp.stripe.example"),
            "headers",
            "error",
            None,
            Some("Authorization needs ${STRIPE_KEY_NOT_SET_ANYWHERE}, which is not set (environment or .env)")
        ),
        row(None, "filesystem", None, "stdio", "not_applicable", None, None),
        row(
            None,
            "legacy",
            Some("http://127.0.0.1:9000/sse"),
            "disabled",
            "not_applicable",
            None,
            Some("disabled in config (`enabled: false`)")
        ),
        row(
            None,
            "typo",
            None,
            "invalid",
            "error",
            None,
            Some("invalid entry (config.yaml line 53): `url` must be a string, found a list")
        ),
        row(None, "plain", Some("http://127.0.0.1:8931/mcp"), "none", "not_applicable", None, None),
        row(
            Some("work"),
            "notion",
            Some("https://mcp.notion.example/mcp"),
            "oauth",
            "needs_reauth",
            Some(1000000000),
            Some("the access token expired and there is no refresh token")
        ),
    ]);
    assert_eq!(status_json(home.path()), want);
}

#[test]
fn hermes_home_from_the_environment() {
    let home = fixture_home("home");
    let out = mcp_auth(&["status", "--json"], Some(home.path()));
    assert_eq!(out.status.code(), Some(0));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(rows.as_array().map(Vec::len), Some(11));
}

#[test]
fn a_new_token_file_changes_the_state() {
    let home = fixture_home("home");
    let tokens = home.path().join("mcp-tokens").join("linear.json");
    std::fs::write(&tokens, r#"{"access_token":"x","token_type":"Bearer","expires_in":3600}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = status_json(home.path());
    let linear = &rows[0];
    assert_eq!(linear["name"], "linear");
    assert_eq!(linear["state"], "connected");
    // No expires_at in the file: mtime + expires_in, as the agent computes it.
    let mtime = std::fs::metadata(&tokens)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    let expires_at = linear["expires_at"].as_i64().unwrap_or_default();
    assert!((expires_at - (mtime + 3600)).abs() <= 1, "{expires_at} vs {mtime}+3600");
}

#[test]
fn table_for_people() {
    let home = fixture_home("home");
    let out = mcp_auth(&["status", "--hermes-home", &home.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("Profile default ({})", home.path().display()));
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["NAME", "AUTH", "STATE", "EXPIRES", "URL"]);
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["linear", "oauth", "not", "connected", "-", "https://mcp.linear.example/mcp"]
    );
    let sentry = lines.iter().find(|l| l.starts_with("  sentry ")).unwrap_or_else(|| panic!("no sentry row: {stdout}"));
    // Its fixture token expired decades ago: counted in years.
    assert!(sentry.contains(" expired ") && sentry.contains(" y ago "), "{sentry}");
    assert!(
        stdout.contains(&format!("Profile work ({})", home.path().join("profiles").join("work").display())),
        "{stdout}"
    );
    assert!(stdout.contains("    ↳ the access token expired and there is no refresh token"), "{stdout}");
}

#[test]
fn broken_config_still_prints_and_exits_zero() {
    let home = fixture_home("broken");
    let config = home.path().join("config.yaml");
    let out = mcp_auth(&["status", "--hermes-home", &home.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("! config error: {}:5:14: unclosed quote", config.display())), "{stdout}");

    let out = mcp_auth(&["status", "--json", "--hermes-home", &home.path().display().to_string()], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).ok(), Some(json!([])));
    assert!(
        text(&out.stderr).contains(&format!("error: {}:5:14: unclosed quote", config.display())),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_home_is_an_empty_list_with_a_hint() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("nowhere");
    let out = mcp_auth(&["status", "--json", "--hermes-home", &missing.display().to_string()], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).ok(), Some(json!([])));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("hint: no agent config at {}", missing.join("config.yaml").display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: credentials are kept in a plain file ") && stderr.contains("(opt-in, not the keychain)"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["status", "--bogus"][..], &["no-such-command"], &[]] {
        let out = mcp_auth(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn no_secret_is_ever_printed() {
    let home = fixture_home("home");
    let h = home.path().display().to_string();
    for args in [
        vec!["status", "--hermes-home", &h],
        vec!["status", "--json", "--hermes-home", &h],
        vec!["-vv", "status", "--hermes-home", &h],
    ] {
        let out = mcp_auth(&args, None);
        let all = text(&out.stdout) + &text(&out.stderr);
        for secret in ["fixture-client-secret", "ghp_fixture_value", "fixture-access", "fixture-refresh"] {
            assert!(!all.contains(secret), "{secret} printed by {args:?}");
        }
    }
}

/// An API key interpolated into a server URL is hidden in the table and in
/// `--json` (query values replaced), never printed.
#[test]
fn status_redacts_secrets_in_server_urls() {
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        home.path().join("config.yaml"),
        "mcp_servers:\n  keyed:\n    url: https://mcp.example/mcp?api_key=${KEYED_API_KEY}&region=eu\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(home.path().join(".env"), "KEYED_API_KEY=sk-live-do-not-print-4711\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let shown = "https://mcp.example/mcp?api_key=[redacted]&region=[redacted]";
    let rows = status_json(home.path());
    assert_eq!(rows[0]["url"], shown, "{rows}");
    let out = mcp_auth(&["status", "--hermes-home", &home.path().display().to_string()], None);
    let table = text(&out.stdout);
    assert!(table.contains(shown), "{table}");
    for output in [table, rows.to_string(), text(&out.stderr)] {
        assert!(!output.contains("sk-live-do-not-print-4711"), "the key was printed:\n{output}");
    }
}

//! The vault against the real OS keychain on Linux: Secret Service served by
//! gnome-keyring in a private `dbus-run-session`, read back from other
//! processes (`mcp-auth` again, and `secret-tool`), which proves the record
//! reached the store rather than a stand-in in memory.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::process::Command;

use mcp_auth_e2e::{Session, bin};

/// Runs `script` in a private session bus with an unlocked gnome-keyring;
/// `$MCP_AUTH` is the CLI. Returns (exit code, stdout, stderr).
fn in_keyring_session(session: &Session, script: &str) -> (i32, String, String) {
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c"])
        .arg(format!("eval \"$(printf 'test-password' | gnome-keyring-daemon --unlock --components=secrets)\" >/dev/null; {script}"))
        .env("MCP_AUTH", bin("mcp-auth"))
        .env("NO_COLOR", "1");
    session.apply(&mut cmd, ":none");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run dbus-run-session (apt-get install dbus gnome-keyring): {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn records_reach_the_secret_service_and_come_back_in_another_process() {
    let session = Session::new();
    let script = r#"
        "$MCP_AUTH" keychain-check --keep --split || exit 11
        echo "--- stored"
        secret-tool search --all service mcp-auth-tray 2>&1 | grep -c '^attribute.username = ~/keychain-check#'
        echo "--- read back"
        "$MCP_AUTH" keychain-check --read-back --split || exit 12
        echo "--- after"
        secret-tool search --all service mcp-auth-tray 2>&1 | grep -c '^attribute.username' || true
    "#;
    let (code, out, err) = in_keyring_session(&session, script);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let sections: Vec<&str> = out.split("--- ").collect();
    assert!(sections[0].contains("keychain OK: Secret Service (stored, read back and kept"), "{out}");
    let stored: usize = sections[1].trim_start_matches("stored").trim().parse().unwrap_or(0);
    assert!(stored > 3, "expected the record split across several items, secret-tool saw {stored}:\n{out}");
    assert!(sections[2].contains("keychain OK: Secret Service (read back and removed"), "{out}");
    assert_eq!(sections[3].trim_start_matches("after").trim(), "0", "items left behind:\n{out}");
}

#[test]
fn an_unreachable_keychain_is_a_clear_error() {
    let out = Command::new(bin("mcp-auth"))
        .arg("keychain-check")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: keychain unavailable: "), "{err}");
}

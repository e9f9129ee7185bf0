//! The vault against the real OS keychain on Linux: Secret Service served by
//! gnome-keyring in a private `dbus-run-session`, read back from other
//! processes (`mcp-auth` again, and `secret-tool`), which proves the record
//! reached the store rather than a stand-in in memory.
// Linux only: XDG folders, D-Bus, Xvfb, `sh` and python3 stand-ins; the
// macOS and Windows CI runs the rest (see README "Tests").
#![cfg(target_os = "linux")]

use std::process::Command;
use std::sync::Arc;

use mcp_auth_core::{
    ClientRecord, CredentialRecord, KeyringBackend, SERVICE, SecretBackend, SecretString, StoredTokens, Vault,
    VaultError, VaultKey, now_secs,
};
use mcp_auth_e2e::{Session, bin};
use pretty_assertions::assert_eq;

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

/// Set in the copy of a test that runs inside the keyring session.
const INNER: &str = "MCP_AUTH_KEYCHAIN_TEST_INNER";

/// Runs test `name` of this binary again, alone, inside a private D-Bus
/// session with an unlocked gnome-keyring (the test's body then talks to
/// the real Secret Service in-process), and fails when that run fails.
fn run_inside_a_keyring_session(name: &str) {
    let session = Session::new();
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", &format!("{}; exec \"$0\" \"$@\"", mcp_auth_e2e::cli::UNLOCK)])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .env("NO_COLOR", "1");
    session.apply(&mut cmd, ":none");
    let out = cmd.output().unwrap_or_else(|e| panic!("dbus-run-session (apt-get install dbus gnome-keyring): {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "inside the keyring session:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("1 passed"), "the test did not run inside:\n{}", text(&out.stdout));
}

/// Letters that do not compress (so a record needs several pieces).
fn noise(len: u32, seed: u32) -> String {
    (0..len).map(|i| char::from(b'a' + ((i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) % 26) as u8)).collect()
}

/// A record such as a sign-in leaves (no real credential in it), with
/// `padding` letters of noise in its access token.
fn record(server: &str, url: &str, profile: Option<&str>, padding: u32) -> CredentialRecord {
    let now = now_secs();
    CredentialRecord {
        server: server.to_owned(),
        url: url.to_owned(),
        profile: profile.map(str::to_owned),
        tokens: StoredTokens {
            access_token: SecretString::new(format!("at-{server}-{}", noise(padding, padding))),
            refresh_token: Some(SecretString::new(format!("rt-{server}"))),
            expires_in: Some(3600),
            expires_at: Some(now + 3600.0),
            scope: None,
        },
        issuer: Some("https://as.example".to_owned()),
        client: ClientRecord {
            client_id: format!("cid-{server}"),
            client_secret: None,
            redirect_uris: vec!["http://127.0.0.1:4545/callback".to_owned()],
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scope: None,
            client_name: Some("Hermes Agent".to_owned()),
            client_id_issued_at: None,
        },
        metadata: None,
        obtained_at: now,
        last_error: None,
    }
}

/// What a load says, comparable (errors by kind: their texts name accounts).
fn outcome(result: Result<Option<CredentialRecord>, VaultError>) -> Result<Option<CredentialRecord>, &'static str> {
    result.map_err(|e| match e {
        VaultError::Corrupt { .. } => "corrupt",
        VaultError::Unavailable(_) => "unavailable",
        VaultError::Backend(_) => "backend",
        VaultError::Busy { .. } => "busy",
    })
}

const URL: &str = "https://mcp.example/mcp";

#[test]
fn many_records_are_read_in_one_go_as_one_by_one_reads_them() {
    if std::env::var_os(INNER).is_none() {
        return run_inside_a_keyring_session("many_records_are_read_in_one_go_as_one_by_one_reads_them");
    }
    let backend = Arc::new(KeyringBackend::system(SERVICE).unwrap_or_else(|e| panic!("{e}")));
    let vault = Vault::new(backend.clone());
    let keys: Vec<VaultKey> = (0..30).map(|i| VaultKey::new(None, &format!("s{i:02}"), URL)).collect();
    let mut expected = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let name = format!("s{i:02}");
        let want = match i % 6 {
            // Present, in one entry.
            0 => {
                let r = record(&name, URL, None, 10);
                vault.store(key, &r).unwrap_or_else(|e| panic!("{e}"));
                Ok(Some(r))
            }
            // Present, split across many entries.
            1 => {
                let r = record(&name, URL, None, 900);
                vault.clone().with_chunk_chars(64).store(key, &r).unwrap_or_else(|e| panic!("{e}"));
                Ok(Some(r))
            }
            // Something else under our name.
            2 => {
                backend.write(key.account(), "hunter2").unwrap_or_else(|e| panic!("{e}"));
                Err("corrupt")
            }
            // A piece from another write.
            3 => {
                vault
                    .clone()
                    .with_chunk_chars(64)
                    .store(key, &record(&name, URL, None, 900))
                    .unwrap_or_else(|e| panic!("{e}"));
                let head = backend.read(key.account()).unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
                let generation = head.split(':').nth(1).unwrap_or_default().to_owned();
                backend
                    .write(&format!("{}.{generation}.1", key.account()), "deadbeef:AAAA")
                    .unwrap_or_else(|e| panic!("{e}"));
                Err("corrupt")
            }
            // A default-home record where an earlier version kept it.
            4 => {
                let r = record(&name, URL, None, 10);
                vault.store(&VaultKey::new(Some("default"), &name, URL), &r).unwrap_or_else(|e| panic!("{e}"));
                Ok(Some(r))
            }
            // Nothing.
            _ => Ok(None),
        };
        expected.push(want);
    }
    let accounts: Vec<&str> = keys.iter().map(VaultKey::account).collect();
    // Every entry named by its attributes here; the vault's read below
    // names whole records by their content.
    let fetched = backend.read_many(&accounts, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let fetched = fetched.unwrap_or_else(|| panic!("the Secret Service was not read in one go"));
    // Heads of kinds 0–3 (the earlier keys were not asked for), and pieces.
    assert!(fetched.len() > 20, "{} entries read in one go", fetched.len());
    assert!(fetched.values().all(Result::is_ok));
    let together: Vec<_> = vault.load_many(&keys).into_iter().map(outcome).collect();
    assert_eq!(together, expected);
    let one_by_one: Vec<_> = keys.iter().map(|k| outcome(vault.load(k))).collect();
    assert_eq!(one_by_one, expected, "after the earlier keys were moved");
}

/// The D-Bus calls to the Secret Service made while `run` runs, by member
/// name (`SearchItems`, `GetSecret`, ...), seen by `dbus-monitor`.
fn secret_service_calls(run: impl FnOnce()) -> std::collections::BTreeMap<String, usize> {
    use mcp_auth_e2e::{ChildGuard, Lines};
    let mut monitor = ChildGuard(
        Command::new("dbus-monitor")
            .args(["--session", "type='method_call',destination='org.freedesktop.secrets'"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("dbus-monitor: {e}")),
    );
    let lines = Lines::new(monitor.0.stdout.take().unwrap_or_else(|| panic!("stdout")));
    // It prints the bus's greeting once it is listening.
    assert!(lines.next(std::time::Duration::from_secs(20)).is_some(), "dbus-monitor did not start");
    run();
    // A last call of ours, whose sight means every earlier one was seen.
    let probe = Command::new("gdbus")
        .args(["call", "--session", "--dest", "org.freedesktop.secrets", "--object-path", "/org/freedesktop/secrets"])
        .args(["--method", "org.freedesktop.DBus.Peer.Ping"])
        .output()
        .unwrap_or_else(|e| panic!("gdbus: {e}"));
    assert!(probe.status.success());
    let mut calls = std::collections::BTreeMap::new();
    loop {
        let line = lines.next(std::time::Duration::from_secs(20)).unwrap_or_else(|| panic!("dbus-monitor stopped"));
        let Some(member) = line.split("member=").nth(1) else { continue };
        let member = member.trim().to_owned();
        if member == "Ping" {
            return calls;
        }
        *calls.entry(member).or_default() += 1;
    }
}

#[test]
fn status_reads_every_record_in_one_search_of_the_secret_service() {
    if std::env::var_os(INNER).is_none() {
        return run_inside_a_keyring_session("status_reads_every_record_in_one_search_of_the_secret_service");
    }
    const SERVERS: usize = 40;
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let entries: String = (0..SERVERS).map(|i| format!("  s{i:02}:\n    url: {URL}\n    auth: oauth\n")).collect();
    std::fs::write(home.path().join("config.yaml"), format!("mcp_servers:\n{entries}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let vault = Vault::new(Arc::new(KeyringBackend::system(SERVICE).unwrap_or_else(|e| panic!("{e}"))));
    // Every other server signed in (the agent's files too), one of them
    // with a record in several pieces.
    for i in (0..SERVERS).step_by(2) {
        let name = format!("s{i:02}");
        let r = record(&name, URL, None, if i == 0 { 900 } else { 10 });
        vault
            .clone()
            .with_chunk_chars(if i == 0 { 64 } else { 1200 })
            .store(&VaultKey::new(None, &name, URL), &r)
            .unwrap_or_else(|e| panic!("{e}"));
        let paths = mcp_auth_core::AgentPaths::new(&home.path().join("mcp-tokens"), &name);
        mcp_auth_core::write_server_files(&paths, &r.client, None, &r.agent_tokens()).unwrap_or_else(|e| panic!("{e}"));
    }
    let mut out = None;
    let calls = secret_service_calls(|| {
        out = Some(
            Command::new(bin("mcp-auth"))
                .arg("--hermes-home")
                .arg(home.path())
                .args(["status", "--json"])
                .output()
                .unwrap_or_else(|e| panic!("{e}")),
        );
    });
    let out = out.unwrap_or_else(|| panic!("not run"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let states: Vec<(String, String)> =
        rows.iter().map(|r| (r["name"].as_str().unwrap_or_default().to_owned(), r["state"].to_string())).collect();
    let want: Vec<(String, String)> = (0..SERVERS)
        .map(|i| (format!("s{i:02}"), if i % 2 == 0 { "\"connected\"" } else { "\"not_connected\"" }.to_owned()))
        .collect();
    assert_eq!(states, want);
    // One by one this was two searches per server (its key and the earlier
    // one) and a `GetSecret` per entry; now: the keychain check's search and
    // one search for all, on one connection (one key exchange), then a
    // `GetSecret` per entry of ours (the split record has several).
    assert_eq!(calls.get("SearchItems").copied(), Some(2), "{calls:?}");
    assert_eq!(calls.get("OpenSession").copied(), Some(1), "{calls:?}");
    let entries = calls.get("GetSecret").copied().unwrap_or_default();
    assert!((SERVERS / 2..SERVERS).contains(&entries), "{calls:?}");
    // Whose each entry is: a whole record says so itself; only the split
    // record's head and pieces are asked for their attributes.
    let whole = SERVERS / 2 - 1;
    assert_eq!(calls.get("Get").copied().unwrap_or_default(), entries - whole, "{calls:?}");
}

#[test]
fn a_locked_keychain_is_not_read_in_one_go_and_reads_as_unavailable() {
    if std::env::var_os(INNER).is_none() {
        return run_inside_a_keyring_session("a_locked_keychain_is_not_read_in_one_go_and_reads_as_unavailable");
    }
    let backend = Arc::new(KeyringBackend::system(SERVICE).unwrap_or_else(|e| panic!("{e}")));
    let vault = Vault::new(backend.clone());
    let key = VaultKey::new(None, "s00", URL);
    vault.store(&key, &record("s00", URL, None, 10)).unwrap_or_else(|e| panic!("{e}"));
    let lock = Command::new("gdbus")
        .args(["call", "--session", "--dest", "org.freedesktop.secrets", "--object-path", "/org/freedesktop/secrets"])
        .args(["--method", "org.freedesktop.Secret.Service.Lock", "['/org/freedesktop/secrets/collection/login']"])
        .output()
        .unwrap_or_else(|e| panic!("gdbus: {e}"));
    assert!(lock.status.success(), "{}", String::from_utf8_lossy(&lock.stderr));
    // Unlocking needs a prompt: only the one-by-one path asks for it (and
    // here, with no display for the prompt, it is dismissed).
    assert_eq!(backend.read_many(&[key.account()], &|_| None).map(|f| f.is_some()), Ok(false));
    let read = vault.load_many(std::slice::from_ref(&key));
    assert!(matches!(read.as_slice(), [Err(VaultError::Unavailable(_))]), "{read:?}");
}

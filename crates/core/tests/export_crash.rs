//! Killing the process in the middle of exports never leaves a torn file:
//! the agent always reads the old version or the new one.
//!
//! The test binary spawns itself as the writer (the environment variable
//! says which role a process plays), kills it at varying moments with
//! SIGKILL, and checks the file each time.

#[allow(dead_code, reason = "each test file uses part of the shared builders")]
mod builders;

use std::path::Path;
use std::time::Duration;

use mcp_auth_core::{AgentPaths, ClientRecord, SecretString, TokenRecord, write_server_files};

const ROLE: &str = "MCP_AUTH_EXPORT_WRITER_DIR";
const PAD: usize = 256 * 1024;

fn client() -> ClientRecord {
    ClientRecord { redirect_uris: vec!["http://127.0.0.1:1/callback".to_owned()], ..builders::public_client("c") }
}

/// The writer: exports version after version until killed.
fn write_forever(dir: &Path) -> ! {
    let paths = AgentPaths::new(dir, "s");
    // Continue from the version on disk, so versions only ever grow.
    let start = if paths.tokens.exists() { check(&paths) + 1 } else { 1 };
    for version in start.. {
        let tokens = TokenRecord {
            // Large, so a write takes long enough to be interrupted.
            access_token: SecretString::new(format!("v{version}-{}", "x".repeat(PAD))),
            refresh_token: Some(SecretString::new(format!("r{version}"))),
            expires_in: Some(3600),
            expires_at: Some(version as f64),
            scope: None,
            issuer: None,
        };
        if let Err(e) = write_server_files(&paths, &client(), None, &tokens) {
            panic!("export failed: {e}");
        }
    }
    unreachable!("the loop never ends")
}

fn check(paths: &AgentPaths) -> u64 {
    let bytes = std::fs::read(&paths.tokens).unwrap_or_else(|e| panic!("token file missing: {e}"));
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("torn token file ({} bytes): {e}", bytes.len()));
    let access = v["access_token"].as_str().unwrap_or_default();
    let version: u64 = access[1..access.find('-').unwrap_or(1)].parse().unwrap_or(0);
    assert_eq!(access.len(), format!("v{version}-").len() + PAD, "partial token");
    assert_eq!(v["refresh_token"], format!("r{version}"), "tokens from different writes");
    version
}

#[test]
fn a_killed_export_never_leaves_a_torn_file() {
    if let Some(dir) = std::env::var_os(ROLE) {
        write_forever(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let paths = AgentPaths::new(dir.path(), "s");
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut last = 0;
    for round in 0..25u64 {
        let mut writer = std::process::Command::new(&me)
            .args(["--exact", "a_killed_export_never_leaves_a_torn_file", "--nocapture", "--test-threads=1"])
            .env(ROLE, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        // Let it get going: wait until this writer has finished a version
        // of its own (on a loaded machine its start alone can outlast the
        // pause below, and a round killed before writing proves nothing).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !(paths.tokens.exists() && check(&paths) > last) {
            assert!(std::time::Instant::now() < deadline, "the writer never wrote in round {round}");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(3 + (round * 7) % 40));
        writer.kill().unwrap_or_else(|e| panic!("{e}"));
        writer.wait().unwrap_or_else(|e| panic!("{e}"));
        let version = check(&paths);
        assert!(version >= last, "went back from version {last} to {version}");
        last = version;
    }
    assert!(last > 1, "the writer made no progress");
}

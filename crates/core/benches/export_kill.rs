//! Kill-during-export, 1,000 times: a writer process exports version after
//! version of a large token file and is killed with SIGKILL at a varying
//! moment; after each kill the file must hold one whole version, never a
//! torn, mixed or missing one, and never an older one than before.
//!
//! Not part of CI (it takes about a minute): `cargo bench -p mcp-auth-core
//! --bench export_kill [-- ITERATIONS]`. Prints the counts; exits non-zero
//! if any iteration left a bad file.
#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/builders/mod.rs"]
#[allow(dead_code, reason = "each test file uses part of the shared builders")]
mod builders;

use std::path::Path;
use std::time::{Duration, Instant};

use mcp_auth_core::{AgentPaths, ClientRecord, SecretString, TokenRecord, write_server_files};

const ROLE: &str = "MCP_AUTH_EXPORT_BENCH_WRITER_DIR";
const PAD: usize = 256 * 1024;
const DEFAULT_ITERATIONS: u64 = 1000;

fn client() -> ClientRecord {
    ClientRecord { redirect_uris: vec!["http://127.0.0.1:1/callback".to_owned()], ..builders::public_client("c") }
}

/// What one look at the token file found.
#[derive(Debug)]
enum Found {
    Whole(u64),
    Missing,
    /// Not JSON, a short access token, or tokens of two writes.
    Torn,
}

fn look(paths: &AgentPaths) -> Found {
    let Ok(bytes) = std::fs::read(&paths.tokens) else { return Found::Missing };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Found::Torn };
    let access = v["access_token"].as_str().unwrap_or_default();
    let Some(version) = access.get(1..access.find('-').unwrap_or(1)).and_then(|n| n.parse::<u64>().ok()) else {
        return Found::Torn;
    };
    let whole = access.len() == format!("v{version}-").len() + PAD && v["refresh_token"] == format!("r{version}");
    if whole { Found::Whole(version) } else { Found::Torn }
}

/// The writer: exports version after version until killed.
fn write_forever(dir: &Path) -> ! {
    let paths = AgentPaths::new(dir, "s");
    let start = match look(&paths) {
        Found::Whole(v) => v + 1,
        Found::Missing | Found::Torn => 1,
    };
    for version in start.. {
        let tokens = TokenRecord {
            access_token: SecretString::new(format!("v{version}-{}", "x".repeat(PAD))),
            refresh_token: Some(SecretString::new(format!("r{version}"))),
            expires_in: Some(3600),
            expires_at: Some(version as f64),
            scope: None,
            issuer: None,
        };
        if let Err(e) = write_server_files(&paths, &client(), None, &tokens) {
            // The parent sees the missing progress; the reason stays in the exit code.
            let _ = e;
            std::process::exit(3);
        }
    }
    std::process::exit(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = std::env::var_os(ROLE) {
        write_forever(Path::new(&dir));
    }
    let iterations = std::env::args().skip(1).find_map(|a| a.parse::<u64>().ok()).unwrap_or(DEFAULT_ITERATIONS);
    let dir = tempfile::tempdir()?;
    let paths = AgentPaths::new(dir.path(), "s");
    let me = std::env::current_exe()?;
    let (mut torn, mut missing, mut went_back, mut last) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for round in 0..iterations {
        let mut writer = std::process::Command::new(&me)
            .env(ROLE, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        if round == 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !paths.tokens.exists() {
                if Instant::now() > deadline {
                    return Err("the writer never wrote".into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // The kill lands at a different point of a write each round.
        std::thread::sleep(Duration::from_millis(1 + (round * 7) % 40));
        writer.kill()?;
        writer.wait()?;
        match look(&paths) {
            Found::Whole(version) => {
                if version < last {
                    went_back += 1;
                }
                last = last.max(version);
            }
            Found::Missing => missing += 1,
            Found::Torn => torn += 1,
        }
    }
    let bad = torn + missing + went_back;
    println!(
        "kill-during-export: {iterations} iterations in {:.1} s, {} versions written; torn {torn}, missing {missing}, older than before {went_back}",
        started.elapsed().as_secs_f64(),
        last
    );
    println!("{} passed, {bad} failed", iterations - bad);
    if bad > 0 {
        return Err(format!("{bad} of {iterations} kills left a bad token file").into());
    }
    Ok(())
}

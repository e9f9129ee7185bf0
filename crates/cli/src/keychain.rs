//! `mcp-auth keychain-check`: is the OS keychain usable for our tokens?
//!
//! Stores a test record (no real credential) in the keychain, reads it back,
//! compares, and removes it. `--keep` leaves it for a later `--read-back`
//! run in another process, which proves it reached the real store and not a
//! stand-in in memory; `--split` stores it in many small pieces, the path
//! large records take on Windows.

use std::io::Write;
use std::sync::Arc;

use anyhow::bail;
use mcp_auth_core::{ClientRecord, SecretString};
use mcp_auth_core::{CredentialRecord, KeyringBackend, SERVICE, StoredTokens, Vault, VaultKey};

#[derive(Debug, clap::Args)]
pub struct KeychainArgs {
    /// Leave the test record in the keychain.
    #[arg(long, conflicts_with = "read_back")]
    keep: bool,
    /// Only read back (and then remove) a record left by `--keep`.
    #[arg(long)]
    read_back: bool,
    /// Store the record in many small pieces.
    #[arg(long)]
    split: bool,
}

fn probe_key() -> VaultKey {
    VaultKey::new(None, "keychain-check", "https://keychain-check.invalid/")
}

/// A recognisable record with no real credential in it.
fn probe_record() -> CredentialRecord {
    CredentialRecord {
        server: "keychain-check".to_owned(),
        url: "https://keychain-check.invalid/".to_owned(),
        profile: None,
        tokens: StoredTokens {
            access_token: SecretString::new(format!("not-a-token-{}", "0123456789abcdef".repeat(32))),
            refresh_token: Some(SecretString::new("not-a-refresh-token")),
            expires_in: Some(3600),
            expires_at: Some(4_102_444_800.0),
            scope: Some("check".to_owned()),
        },
        issuer: Some("https://keychain-check.invalid".to_owned()),
        client: ClientRecord {
            client_id: "keychain-check".to_owned(),
            client_secret: None,
            redirect_uris: vec!["http://127.0.0.1:1/callback".to_owned()],
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: Vec::new(),
            response_types: Vec::new(),
            scope: None,
            client_name: None,
            client_id_issued_at: None,
        },
        metadata: None,
        obtained_at: 0.0,
        last_error: None,
    }
}

pub fn run(args: &KeychainArgs) -> anyhow::Result<()> {
    let backend = KeyringBackend::system(SERVICE).map_err(|e| anyhow::anyhow!("keychain unavailable: {e}"))?;
    let mut vault = Vault::new(Arc::new(backend));
    if args.split {
        vault = vault.with_chunk_chars(96);
    }
    let key = probe_key();
    let want = probe_record();
    if !args.read_back {
        vault.store(&key, &want)?;
    }
    let got = vault.load(&key)?;
    let matches = got.as_ref() == Some(&want);
    if !args.keep {
        vault.remove(&key)?;
    }
    if !matches {
        bail!(match got {
            None => "the keychain returned nothing for the record just stored".to_owned(),
            Some(_) => "the keychain returned a different record than the one stored".to_owned(),
        });
    }
    let mut out = std::io::stdout().lock();
    let what = match (args.read_back, args.keep) {
        (true, _) => "read back and removed",
        (false, true) => "stored, read back and kept",
        (false, false) => "stored, read back and removed",
    };
    writeln!(out, "keychain OK: {} ({what} a test record under service \"{SERVICE}\")", vault.describe())?;
    Ok(())
}

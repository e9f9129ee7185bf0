use std::sync::Arc;

use pretty_assertions::assert_eq;

use super::*;
use crate::agent_files::ClientRecord;
use crate::secret::SecretString;

fn record(padding: usize) -> CredentialRecord {
    CredentialRecord {
        server: "linear".to_owned(),
        url: "https://mcp.linear.example/mcp".to_owned(),
        profile: None,
        tokens: StoredTokens {
            access_token: SecretString::new(format!("at-{}", "x".repeat(padding))),
            refresh_token: Some(SecretString::new("rt-secret")),
            expires_in: Some(3600),
            expires_at: Some(1_800_000_000.25),
            scope: Some("read write".to_owned()),
        },
        issuer: Some("https://as.example".to_owned()),
        client: ClientRecord {
            client_id: "cid".to_owned(),
            client_secret: Some(SecretString::new("client-secret")),
            redirect_uris: vec!["http://127.0.0.1:4545/callback".to_owned()],
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scope: None,
            client_name: Some("Hermes Agent".to_owned()),
            client_id_issued_at: Some(1_700_000_000),
        },
        metadata: Some(
            serde_json::json!({"issuer": "https://as.example", "token_endpoint": "https://as.example/token"}),
        ),
        obtained_at: 1_799_996_400.0,
        last_error: None,
    }
}

fn key() -> VaultKey {
    VaultKey::new(None, "linear", "https://mcp.linear.example/mcp")
}

#[test]
fn round_trip_in_one_entry() -> Result<(), VaultError> {
    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone());
    assert_eq!(vault.load(&key())?, None);
    vault.store(&key(), &record(10))?;
    assert_eq!(vault.load(&key())?, Some(record(10)));
    assert_eq!(backend.accounts(), vec![key().account().to_owned()]);
    vault.remove(&key())?;
    assert_eq!(vault.load(&key())?, None);
    assert!(backend.accounts().is_empty());
    Ok(())
}

#[test]
fn large_records_are_split_and_shrink_cleanly() -> Result<(), VaultError> {
    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone()).with_chunk_chars(64);
    // Incompressible padding, so it really needs many pieces.
    let noisy: String =
        (0..3000u32).map(|i| char::from(b'a' + ((i.wrapping_mul(2_654_435_761) >> 13) % 26) as u8)).collect();
    let mut big = record(0);
    big.tokens.access_token = SecretString::new(noisy);
    vault.store(&key(), &big)?;
    let pieces = backend.accounts().len();
    assert!(pieces > 10, "expected a split, got {pieces} entries");
    assert_eq!(vault.load(&key())?, Some(big));
    // A smaller record replaces it and leaves no stale pieces behind.
    vault.store(&key(), &record(1))?;
    let fresh = Arc::new(MemoryBackend::default());
    Vault::new(fresh.clone()).with_chunk_chars(64).store(&key(), &record(1))?;
    assert_eq!(backend.accounts().len(), fresh.accounts().len());
    assert!(backend.accounts().len() < pieces);
    assert_eq!(vault.load(&key())?, Some(record(1)));
    Ok(())
}

#[test]
fn every_entry_fits_windows_limits_by_default() -> Result<(), VaultError> {
    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone());
    let noisy: String = (0..9000u32).map(|i| char::from(b'A' + ((i.wrapping_mul(40_503) >> 7) % 26) as u8)).collect();
    let mut big = record(0);
    big.tokens.access_token = SecretString::new(noisy);
    vault.store(&key(), &big)?;
    for account in backend.accounts() {
        let value = backend.read(&account).map_err(VaultError::from)?.unwrap_or_default();
        // UTF-16 bytes, as Windows stores them.
        assert!(value.encode_utf16().count() * 2 <= 2560, "{account} holds {} chars", value.len());
    }
    assert_eq!(vault.load(&key())?, Some(big));
    Ok(())
}

#[test]
fn torn_and_foreign_records_are_reported_not_misread() -> Result<(), VaultError> {
    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone()).with_chunk_chars(64);
    let noisy: String =
        (0..800u32).map(|i| char::from(b'a' + ((i.wrapping_mul(2_654_435_761) >> 13) % 26) as u8)).collect();
    let mut big = record(0);
    big.tokens.access_token = SecretString::new(noisy);
    vault.store(&key(), &big)?;
    // A piece from another write.
    let piece = format!("{}.1", key().account());
    backend.write(&piece, "deadbeef:AAAA").map_err(VaultError::from)?;
    assert!(matches!(vault.load(&key()), Err(VaultError::Corrupt { .. })));
    // Something else under our name.
    backend.write(key().account(), "hunter2").map_err(VaultError::from)?;
    let err = vault.load(&key()).expect_err("foreign");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    Ok(())
}

#[test]
fn keys_change_with_the_url_and_profile() {
    let a = VaultKey::new(None, "s", "https://a.example/mcp");
    assert_eq!(a, VaultKey::new(None, "s", "https://a.example/mcp"));
    assert_ne!(a, VaultKey::new(None, "s", "https://b.example/mcp"));
    assert_ne!(a, VaultKey::new(Some("work"), "s", "https://a.example/mcp"));
    assert!(a.account().starts_with("default/s#"));
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let text = format!("{:?}", record(3));
    for secret in ["at-xxx", "rt-secret", "client-secret"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn file_backend_is_private_and_persistent() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("vault").join("credentials.json");
    let vault = Vault::new(Arc::new(FileBackend::new(&path)));
    vault.store(&key(), &record(5))?;
    let again = Vault::new(Arc::new(FileBackend::new(&path)));
    assert_eq!(again.load(&key())?, Some(record(5)));
    assert!(again.describe().contains("opt-in"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    }
    Ok(())
}

//! Two processes (the tray and the CLI, say) changing the same vault record
//! at once lose no update and never leave a torn record: every
//! read-modify-write runs under the server's lock file, and the opt-in file
//! store locks its whole-file rewrite too.
//!
//! The test binary spawns itself twice as writers (the environment variable
//! says which role a process plays) over one credential file.

use std::path::Path;
use std::sync::Arc;

use mcp_auth_core::{ClientRecord, SecretString};
use mcp_auth_core::{CredentialRecord, FileBackend, StoredTokens, Vault, VaultKey};

const ROLE: &str = "MCP_AUTH_VAULT_WRITER";
const ROUNDS: u32 = 25;

fn vault(dir: &Path) -> Vault {
    // Small pieces: every record is split across several entries.
    Vault::new(Arc::new(FileBackend::new(dir.join("credentials.json"))))
        .with_lock_dir(dir.join("locks"))
        .with_chunk_chars(48)
}

fn shared() -> VaultKey {
    VaultKey::new(None, "shared", "https://mcp.example/mcp")
}

fn own(writer: &str) -> VaultKey {
    VaultKey::new(None, writer, "https://mcp.example/mcp")
}

fn record(name: &str) -> CredentialRecord {
    CredentialRecord {
        server: name.to_owned(),
        url: "https://mcp.example/mcp".to_owned(),
        profile: None,
        tokens: StoredTokens {
            access_token: SecretString::new("at-0"),
            refresh_token: Some(SecretString::new("rt-0")),
            expires_in: Some(3600),
            expires_at: Some(0.0),
            scope: None,
        },
        issuer: Some("https://as.example".to_owned()),
        client: ClientRecord {
            client_id: "cid".to_owned(),
            client_secret: None,
            redirect_uris: vec!["http://127.0.0.1:1/callback".to_owned()],
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: vec![],
            response_types: vec![],
            scope: None,
            client_name: None,
            client_id_issued_at: None,
        },
        metadata: None,
        obtained_at: 0.0,
        last_error: None,
    }
}

/// One read-modify-write: the counter (`expires_at`) goes up by one, and
/// the tokens name the count, so a torn record cannot pass for a whole one.
async fn bump(vault: &Vault, key: &VaultKey, name: &str) {
    let _lock = vault.lock(key).await.unwrap_or_else(|e| panic!("lock: {e}"));
    let mut record = vault.load(key).unwrap_or_else(|e| panic!("load: {e}")).unwrap_or_else(|| record(name));
    let next = record.tokens.expires_at.unwrap_or(0.0) + 1.0;
    record.tokens.expires_at = Some(next);
    record.tokens.access_token = SecretString::new(format!("at-{next}-{}", "p".repeat(120)));
    record.tokens.refresh_token = Some(SecretString::new(format!("rt-{next}")));
    vault.store(key, &record).unwrap_or_else(|e| panic!("store: {e}"));
}

fn count(vault: &Vault, key: &VaultKey) -> u32 {
    let record = vault.load(key).unwrap_or_else(|e| panic!("corrupt record: {e}")).unwrap_or_else(|| panic!("lost"));
    let n = record.tokens.expires_at.unwrap_or(0.0);
    assert_eq!(record.tokens.access_token.expose(), format!("at-{n}-{}", "p".repeat(120)), "pieces of two writes");
    assert_eq!(record.tokens.refresh_token.map(|r| r.expose().to_owned()), Some(format!("rt-{n}")));
    n as u32
}

#[tokio::test]
async fn two_processes_writing_one_record_lose_nothing() {
    if let Ok(role) = std::env::var(ROLE) {
        let (dir, writer) = role.split_once('|').unwrap_or_else(|| panic!("role {role}"));
        let vault = vault(Path::new(dir));
        for _ in 0..ROUNDS {
            bump(&vault, &shared(), "shared").await;
            bump(&vault, &own(writer), writer).await;
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let writers: Vec<_> = ["a", "b"]
        .iter()
        .map(|writer| {
            std::process::Command::new(&me)
                .args(["--exact", "two_processes_writing_one_record_lose_nothing", "--test-threads=1"])
                .env(ROLE, format!("{}|{writer}", dir.path().display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for mut writer in writers {
        assert!(writer.wait().unwrap_or_else(|e| panic!("{e}")).success(), "a writer failed");
    }
    let vault = vault(dir.path());
    assert_eq!(count(&vault, &shared()), 2 * ROUNDS, "updates of the shared record were lost");
    assert_eq!(count(&vault, &own("a")), ROUNDS, "the file store lost a's record updates");
    assert_eq!(count(&vault, &own("b")), ROUNDS, "the file store lost b's record updates");
}

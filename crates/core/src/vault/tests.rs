use std::sync::Arc;

use pretty_assertions::assert_eq;

use super::*;
use crate::oauth::client::ClientRecord;
use crate::util::secret::SecretString;

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
    let piece = backend.accounts().into_iter().find(|a| a != key().account()).expect("a piece");
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
    assert!(a.account().starts_with("~/s#"));
}

#[test]
fn the_default_home_and_a_profile_named_default_never_share_a_record() -> Result<(), VaultError> {
    let vault = Vault::new(Arc::new(MemoryBackend::default()));
    let home = VaultKey::new(None, "linear", "https://mcp.linear.example/mcp");
    let named_default = VaultKey::new(Some("default"), "linear", "https://mcp.linear.example/mcp");
    assert_ne!(home.account(), named_default.account());
    let mut theirs = record(2);
    theirs.profile = Some("default".to_owned());
    vault.store(&home, &record(1))?;
    vault.store(&named_default, &theirs)?;
    assert_eq!(vault.load(&home)?, Some(record(1)));
    assert_eq!(vault.load(&named_default)?, Some(theirs));
    vault.remove(&home)?;
    assert_eq!(vault.load(&home)?, None);
    assert!(vault.load(&named_default)?.is_some(), "removing the default home's record removed the profile's");
    Ok(())
}

#[test]
fn default_home_records_under_the_earlier_key_are_moved() -> Result<(), VaultError> {
    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone());
    let home = key();
    // As an earlier version stored it: the profile's key scheme, "default".
    let earlier = VaultKey::new(Some("default"), "linear", "https://mcp.linear.example/mcp");
    assert!(earlier.account().starts_with("default/linear#"));
    super::chunked::write(backend.as_ref(), earlier.account(), &record(3).to_bytes(), DEFAULT_CHUNK_CHARS, None)?;
    // A profile named `default` does not take it for its own.
    assert_eq!(vault.load(&earlier)?, None);
    assert_eq!(vault.load(&home)?, Some(record(3)), "the earlier key is read when the new one is absent");
    assert_eq!(backend.accounts(), vec![home.account().to_owned()], "moved, not copied");
    assert_eq!(vault.load(&home)?, Some(record(3)));
    Ok(())
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
    assert_eq!(again.plain_file(), Some(path.as_path()));
    assert_eq!(Vault::new(Arc::new(MemoryBackend::default())).plain_file(), None);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    }
    Ok(())
}

/// A memory keychain whose `n`th write from now fails (then works again).
#[derive(Debug, Default)]
struct FailNth {
    inner: MemoryBackend,
    /// Writes left before the failing one; `0`: none fails.
    countdown: std::sync::Mutex<usize>,
}

impl FailNth {
    fn fail_write(&self, n: usize) {
        *self.countdown.lock().expect("lock") = n;
    }
}

impl SecretBackend for FailNth {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.inner.read(account)
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        let mut countdown = self.countdown.lock().expect("lock");
        if *countdown > 0 {
            *countdown -= 1;
            if *countdown == 0 {
                return Err(BackendError::Unavailable("D-Bus timeout".to_owned()));
            }
        }
        drop(countdown);
        self.inner.write(account, value)
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.inner.delete(account)
    }

    fn describe(&self) -> String {
        "fails on demand".to_owned()
    }
}

fn noisy(len: u32, seed: u32) -> String {
    (0..len).map(|i| char::from(b'a' + ((i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) % 26) as u8)).collect()
}

#[test]
fn a_write_failing_halfway_leaves_the_previous_record_readable() -> Result<(), VaultError> {
    let mut old = record(0);
    old.tokens.access_token = SecretString::new(noisy(1500, 1));
    let mut new = record(0);
    new.tokens.access_token = SecretString::new(noisy(1800, 7));
    // How many writes a whole store of `new` takes.
    let probe = Arc::new(MemoryBackend::default());
    Vault::new(probe.clone()).with_chunk_chars(64).store(&key(), &new)?;
    let writes = probe.accounts().len();
    assert!(writes > 10, "expected a split record, got {writes} entries");
    for n in 1..=writes {
        let backend = Arc::new(FailNth::default());
        let vault = Vault::new(backend.clone()).with_chunk_chars(64);
        vault.store(&key(), &old)?;
        let entries = backend.inner.accounts();
        backend.fail_write(n);
        assert!(vault.store(&key(), &new).is_err(), "write {n} of {writes} should have failed");
        assert_eq!(vault.load(&key())?, Some(old.clone()), "the previous record after a failure at write {n}");
        assert_eq!(backend.inner.accounts(), entries, "the failed write left pieces behind (write {n})");
        // And the next write goes through and replaces it cleanly.
        vault.store(&key(), &new)?;
        assert_eq!(vault.load(&key())?, Some(new.clone()));
        assert_eq!(backend.inner.accounts().len(), writes, "stale pieces left after write {n}");
    }
    Ok(())
}

#[test]
fn records_of_the_first_format_are_read_and_then_replaced() -> Result<(), Box<dyn std::error::Error>> {
    use base64::Engine;
    use std::io::Write;
    let mut old = record(0);
    old.tokens.access_token = SecretString::new(noisy(600, 3));
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&old.to_bytes())?;
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(encoder.finish()?);
    // `mcpv1:<gen>:<count>:<piece 0>`, pieces `<account>.<i>` = `<gen>:<piece i>`.
    let pieces: Vec<&str> =
        encoded.as_bytes().chunks(100).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    let backend = Arc::new(MemoryBackend::default());
    let account = key().account().to_owned();
    backend.write(&account, &format!("mcpv1:abcd1234:{}:{}", pieces.len(), pieces[0]))?;
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        backend.write(&format!("{account}.{i}"), &format!("abcd1234:{piece}"))?;
    }
    let vault = Vault::new(backend.clone());
    assert_eq!(vault.load(&key())?, Some(old));
    vault.store(&key(), &record(1))?;
    assert_eq!(vault.load(&key())?, Some(record(1)));
    assert_eq!(backend.accounts(), vec![account], "the first format's pieces are gone");
    Ok(())
}

/// A memory keychain that counts the calls made to it.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryBackend,
    /// Answers `read_many` (else says it cannot, as stores without a search do).
    batches: bool,
    reads: std::sync::atomic::AtomicUsize,
    many: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn calls(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.reads.load(SeqCst), self.many.load(SeqCst))
    }
}

impl SecretBackend for Counting {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.read(account)
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.inner.write(account, value)
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.inner.delete(account)
    }

    fn describe(&self) -> String {
        "counting".to_owned()
    }

    fn read_many(&self, accounts: &[&str], named_by: NamedBy<'_>) -> Result<Option<Fetched>, BackendError> {
        self.many.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.batches { self.inner.read_many(accounts, named_by) } else { Ok(None) }
    }
}

#[test]
fn a_whole_record_names_its_own_account_and_nothing_else_does() -> Result<(), VaultError> {
    let backend = Arc::new(MemoryBackend::default());
    Vault::new(backend.clone()).store(&key(), &record(1))?;
    let head = backend.read(key().account()).map_err(VaultError::from)?.unwrap_or_default();
    assert_eq!(account_named_by(&head).as_deref(), Some(key().account()));
    let profile = VaultKey::new(Some("work"), "linear", "https://mcp.linear.example/mcp");
    Vault::new(backend.clone()).store(&profile, &CredentialRecord { profile: Some("work".to_owned()), ..record(1) })?;
    let head = backend.read(profile.account()).map_err(VaultError::from)?.unwrap_or_default();
    assert_eq!(account_named_by(&head).as_deref(), Some(profile.account()));
    // A split record's head and pieces, and what is not ours, do not say.
    let split = Arc::new(MemoryBackend::default());
    Vault::new(split.clone()).with_chunk_chars(64).store(&key(), &record(600))?;
    for account in split.accounts() {
        let value = split.read(&account).map_err(VaultError::from)?.unwrap_or_default();
        assert_eq!(account_named_by(&value), None, "{account}");
    }
    assert_eq!(account_named_by("hunter2"), None);
    Ok(())
}

#[tokio::test]
async fn a_store_after_a_read_under_the_lock_does_not_read_the_head_again() -> Result<(), VaultError> {
    let backend = Arc::new(Counting::default());
    let vault = Vault::new(backend.clone());
    vault.store(&key(), &record(1))?;
    let lock = vault.lock(&key()).await?;
    let (before, _) = backend.calls();
    assert_eq!(vault.load(&key())?, Some(record(1)));
    vault.store(&key(), &record(2))?;
    assert_eq!(backend.calls().0 - before, 1, "a refresh's read and write: one read in all");
    drop(lock);

    // Another process writes a split record while this one holds no lock:
    // what this one saw before is not trusted under its next lock, so its
    // write finds and removes the other's pieces.
    Vault::new(backend.clone()).with_chunk_chars(64).store(&key(), &record(600))?;
    assert!(backend.inner.accounts().len() > 1);
    let _lock = vault.lock(&key()).await?;
    vault.store(&key(), &record(3))?;
    assert_eq!(backend.inner.accounts(), vec![key().account().to_owned()]);
    assert_eq!(vault.load(&key())?, Some(record(3)));
    Ok(())
}

/// Every kind of record a vault can hold, under keys `k0…`: present, split,
/// absent, foreign, torn, a profile named `default`, and a default-home
/// record under its earlier key.
fn mixed_vault(backend: &Arc<Counting>) -> Result<(Vault, Vec<VaultKey>), VaultError> {
    let vault = Vault::new(backend.clone()).with_chunk_chars(64);
    let url = "https://mcp.linear.example/mcp";
    let keys: Vec<VaultKey> = (0..6).map(|i| VaultKey::new(None, &format!("k{i}"), url)).collect();
    let mut split = record(0);
    split.tokens.access_token = SecretString::new(noisy(900, 5));
    vault.store(&keys[0], &record(1))?;
    vault.store(&keys[1], &split)?;
    // keys[2]: nothing stored.
    backend.inner.write(keys[3].account(), "hunter2")?;
    vault.store(&keys[4], &split)?;
    let piece = backend
        .inner
        .accounts()
        .into_iter()
        .find(|a| a.starts_with(&format!("{}.", keys[4].account())))
        .expect("a piece");
    backend.inner.write(&piece, "deadbeef:AAAA")?;
    let earlier = VaultKey::new(Some("default"), "k5", url);
    super::chunked::write(&backend.inner, earlier.account(), &record(3).to_bytes(), 64, None)?;
    let mut theirs = record(4);
    theirs.profile = Some("work".to_owned());
    let work = VaultKey::new(Some("work"), "k0", url);
    vault.store(&work, &theirs)?;
    let mut all = keys;
    all.extend([earlier, work]);
    Ok((vault, all))
}

/// What a result says, comparable (errors by kind: their texts name accounts).
fn outcome(result: Result<Option<CredentialRecord>, VaultError>) -> Result<Option<CredentialRecord>, &'static str> {
    result.map_err(|e| match e {
        VaultError::Corrupt { .. } => "corrupt",
        VaultError::Unavailable(_) => "unavailable",
        VaultError::Backend(_) => "backend",
        VaultError::Busy { .. } => "busy",
    })
}

#[test]
fn reading_in_one_go_gives_what_reading_one_by_one_gives() -> Result<(), VaultError> {
    let one_by_one = {
        let backend = Arc::new(Counting::default());
        let (vault, keys) = mixed_vault(&backend)?;
        keys.iter().map(|k| outcome(vault.load(k))).collect::<Vec<_>>()
    };
    for batches in [true, false] {
        let backend = Arc::new(Counting { batches, ..Counting::default() });
        let (vault, keys) = mixed_vault(&backend)?;
        let together: Vec<_> = vault.load_many(&keys).into_iter().map(outcome).collect();
        assert_eq!(together, one_by_one, "batches: {batches}");
    }
    let mut split = record(0);
    split.tokens.access_token = SecretString::new(noisy(900, 5));
    let mut theirs = record(4);
    theirs.profile = Some("work".to_owned());
    assert_eq!(
        one_by_one,
        vec![
            Ok(Some(record(1))),
            Ok(Some(split)),
            Ok(None),
            Err("corrupt"),
            Err("corrupt"),
            Ok(Some(record(3))),
            Ok(None),
            Ok(Some(theirs)),
        ]
    );
    Ok(())
}

#[test]
fn reading_in_one_go_asks_the_store_once_and_rereads_only_what_it_cannot_settle() -> Result<(), VaultError> {
    let backend = Arc::new(Counting { batches: true, ..Counting::default() });
    let vault = Vault::new(backend.clone());
    let keys: Vec<VaultKey> = (0..50).map(|i| VaultKey::new(None, &format!("s{i}"), "https://a.example/mcp")).collect();
    for key in keys.iter().step_by(2) {
        vault.store(key, &record(1))?;
    }
    let before = backend.calls();
    let records = vault.load_many(&keys);
    assert_eq!(records.iter().filter(|r| matches!(r, Ok(Some(_)))).count(), 25);
    assert_eq!(records.iter().filter(|r| matches!(r, Ok(None))).count(), 25);
    assert_eq!((backend.calls().0 - before.0, backend.calls().1 - before.1), (0, 1), "(reads, reads in one go)");
    // A damaged record is read again on its own (a record changing while
    // read looks damaged; the single read tries twice), the rest is not.
    backend.inner.write(keys[0].account(), "hunter2")?;
    let before = backend.calls();
    assert!(matches!(vault.load_many(&keys)[0], Err(VaultError::Corrupt { .. })));
    assert_eq!((backend.calls().0 - before.0, backend.calls().1 - before.1), (1, 1));
    // A default-home record under its earlier key is moved, as `load` moves it.
    let earlier = VaultKey::new(Some("default"), "s1", "https://a.example/mcp");
    super::chunked::write(&backend.inner, earlier.account(), &record(2).to_bytes(), DEFAULT_CHUNK_CHARS, None)?;
    assert_eq!(vault.load_many(&keys)[1].as_ref().ok(), Some(&Some(record(2))));
    assert!(!backend.inner.accounts().contains(&earlier.account().to_owned()), "not moved");
    assert_eq!(vault.load(&keys[1])?, Some(record(2)));
    assert!(vault.load_many(&[]).is_empty());
    Ok(())
}

#[test]
fn the_plain_file_is_read_once_for_many_records() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let backend = FileBackend::new(dir.path().join("credentials.json"));
    let vault = Vault::new(Arc::new(FileBackend::new(dir.path().join("credentials.json"))));
    let keys: Vec<VaultKey> = (0..3).map(|i| VaultKey::new(None, &format!("s{i}"), "https://a.example/mcp")).collect();
    vault.store(&keys[0], &record(1))?;
    vault.store(&keys[2], &record(2))?;
    let fetched =
        backend.read_many(&keys.iter().map(VaultKey::account).collect::<Vec<_>>(), &|_| None)?.expect("supported");
    assert_eq!(fetched.len(), 2);
    let records: Vec<_> = vault.load_many(&keys).into_iter().map(outcome).collect();
    assert_eq!(records, vec![Ok(Some(record(1))), Ok(None), Ok(Some(record(2)))]);
    Ok(())
}

#[rstest::rstest]
#[case::itself("~/a#12345678", true)]
#[case::a_piece("~/a#12345678.0badcafe.1", true)]
#[case::a_first_format_piece("~/a#12345678.1", true)]
#[case::another_server("~/a#12345679", false)]
#[case::a_longer_name("~/a#123456789", false)]
#[case::another_profile("work/a#12345678", false)]
fn entries_read_in_one_go_are_the_records_and_their_pieces(#[case] name: &str, #[case] wanted: bool) {
    assert_eq!(super::backend::wanted(&["~/a#12345678", "~/b#00000000"], name), wanted);
}

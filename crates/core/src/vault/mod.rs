//! The token vault: one credential record per server in the OS keychain.
//!
//! - Records are versioned JSON ([`CredentialRecord`]), keyed by a stable
//!   id made of the profile, the server name and a hash of its URL
//!   ([`VaultKey`]), so a server whose URL changed never inherits stale tokens.
//! - The keychain is reached through a [`SecretBackend`]: the OS store
//!   ([`KeyringBackend`]: macOS Keychain, Windows Credential Manager, Secret
//!   Service on Linux), an explicit opt-in file store ([`FileBackend`]), or
//!   memory (tests). There is never a silent fallback from the keychain to a
//!   file: an unavailable keychain is an error the status shows.
//! - Windows limits one credential to 2560 bytes, so a record is compressed
//!   and split across entries when needed ([`chunked`]); the split path is
//!   tested on every OS by forcing small chunks.
//!
//! - Every read-modify-write of a record (sync, adopt, noting a failure,
//!   connect, disconnect, refresh) runs under [`Vault::lock`]: one lock per
//!   server, shared by the tray and the CLI through a lock file (`flock`) in
//!   the vault's lock folder, so two processes never interleave their writes
//!   and lose one.
//!
//! Keychain calls block (D-Bus, Security framework): call them from
//! `spawn_blocking` in async code.

mod backend;
pub(crate) mod changes;
mod chunked;
pub(crate) mod open;
mod record;
#[cfg(target_os = "linux")]
mod secret_service;

use crate::util::text::error_text;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use backend::{BackendError, Fetched, FileBackend, KeyringBackend, MemoryBackend, NamedBy, SecretBackend};
pub use record::{CredentialRecord, RefreshFailure, StoredTokens};

/// The keychain service name all our entries live under.
pub const SERVICE: &str = "mcp-auth-tray";

/// Largest value written to one keychain entry, in characters, unless the
/// store takes more ([`SecretBackend::largest_value_chars`]). Windows
/// stores secrets as UTF-16 within 2560 bytes: 1200 characters leave room.
pub const DEFAULT_CHUNK_CHARS: usize = 1200;

/// Most calls the Secret Service read in one go (Linux) has awaiting an
/// answer on its connection at once; public for the scale bench, which asks
/// the keyring the same way to measure the floor under it.
pub const SECRET_SERVICE_IN_FLIGHT: usize = 32;

/// Where one server's record lives.
///
/// Accounts are `<profile>/<name>#<url hash>` for a profile and
/// `~/<name>#<url hash>` for the default home: `~` is never part of a
/// profile id, so no profile (not even one named `default`) shares a key
/// with the default home. Earlier versions keyed the default home
/// `default/<name>#…`, which a profile named `default` also produced; such
/// records are moved on first read ([`Vault::load`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultKey {
    account: String,
    /// Where a default-home record of an earlier version lives.
    legacy: Option<String>,
    /// Whose record this key names (the record says it too).
    profile: Option<String>,
}

/// The default home's part of an account.
const DEFAULT_HOME: &str = "~";

impl VaultKey {
    /// The key for server `name` at `url` in `profile` (`None`: default home).
    pub fn new(profile: Option<&str>, name: &str, url: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(url.trim().as_bytes());
        let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let account = format!("{}/{name}#{hash}", profile.unwrap_or(DEFAULT_HOME));
        let legacy = profile.is_none().then(|| format!("default/{name}#{hash}"));
        Self { account, legacy, profile: profile.map(str::to_owned) }
    }

    /// The keychain account name.
    pub fn account(&self) -> &str {
        &self.account
    }
}

/// Why the vault could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    /// No keychain, locked, or access denied: nothing stored or read.
    #[error("keychain unavailable: {0}")]
    Unavailable(String),
    /// The stored record cannot be read (damaged, or from a newer version).
    #[error("the keychain record for {account} is unreadable: {reason}")]
    Corrupt { account: String, reason: String },
    #[error("keychain error: {0}")]
    Backend(String),
    /// Another process kept the record's lock for too long.
    #[error("another process has held the lock of the keychain record for {account} too long")]
    Busy { account: String },
}

/// A lock file's name: the account hashed (accounts hold `/` and `#`).
fn lock_file_name(key: &VaultKey) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.account().as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{hex}.lock")
}

impl From<BackendError> for VaultError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unavailable(m) => Self::Unavailable(m),
            BackendError::Other(m) => Self::Backend(m),
        }
    }
}

/// Runs a blocking vault call on tokio's blocking pool (keychain calls block).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, VaultError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| VaultError::Backend(format!("vault task failed: {e}")))?
}

/// How long a read-modify-write waits for another holder of the server's
/// lock: longer than a refresh holds it (the agent's fence, 60 s, plus the
/// token request), so a wait means a stuck process, not a busy one.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(150);

/// One server's lock, held for a whole read-modify-write; released on drop.
#[derive(Debug)]
pub struct VaultLock {
    /// Forgets the record's head as the lock is released (see [`HeadsSeen`]).
    seen: (HeadsSeen, String),
    _file: Option<crate::hermes::fence::FenceGuard>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for VaultLock {
    fn drop(&mut self) {
        // Runs before the fields drop: forgotten while the lock is still held.
        self.seen.0.forget(&self.seen.1);
    }
}

/// The head of each record as this process last read or wrote it, so a
/// write right after a read (a refresh: read under the lock, then store)
/// does not read the head again: one keychain call fewer per refresh.
/// Every writer of a record holds its lock, so what was seen while holding
/// it stays true until it is released; an entry is forgotten when a lock
/// of that record is taken and when it is released, so nothing seen under
/// one holding (or outside any) is trusted under the next. A stale entry
/// could only leave a piece of an older record behind (clutter, never a
/// record lost): the new head is written whole either way.
#[derive(Debug, Clone, Default)]
struct HeadsSeen(Arc<Mutex<HashMap<String, Option<chunked::Head>>>>);

impl HeadsSeen {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<chunked::Head>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(None)`: seen absent; `None`: not known.
    fn get(&self, account: &str) -> Option<Option<chunked::Head>> {
        self.map().get(account).cloned()
    }

    fn saw(&self, account: &str, head: Option<chunked::Head>) {
        self.map().insert(account.to_owned(), head);
    }

    fn forget(&self, account: &str) {
        self.map().remove(account);
    }
}

/// The vault.
#[derive(Debug, Clone)]
pub struct Vault {
    backend: Arc<dyn SecretBackend>,
    chunk_chars: usize,
    /// Where the cross-process lock files live; `None`: this process only (tests).
    lock_dir: Option<PathBuf>,
    /// In-process side of the locks (a file lock taken twice by one process
    /// through two descriptors would also exclude, but would block a thread).
    local_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    heads: HeadsSeen,
}

impl Vault {
    /// A vault over `backend`, locking within this process only (see
    /// [`Vault::with_lock_dir`] for the cross-process locks the apps use).
    pub fn new(backend: Arc<dyn SecretBackend>) -> Self {
        Self {
            chunk_chars: backend.largest_value_chars(),
            backend,
            lock_dir: None,
            local_locks: Arc::default(),
            heads: HeadsSeen::default(),
        }
    }

    /// The same vault taking its per-server locks as files in `dir` (0700,
    /// created on first use), shared with every process that uses `dir`.
    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
    }

    /// Tells the running service (in another process) that a record changed
    /// in a way the user must see (see [`changes`]); nothing without a lock
    /// folder (a vault of this process only). Blocking (a tiny file write).
    pub fn announce_change(&self) {
        if let Some(dir) = &self.lock_dir {
            changes::announce(dir);
        }
    }

    /// Calls `on_change` whenever another process announced a change;
    /// `None` without a lock folder.
    pub fn watch_changes(
        &self,
        on_change: impl Fn() + Send + 'static,
    ) -> Option<Result<changes::ChangeWatcher, notify::Error>> {
        self.lock_dir.as_deref().map(|dir| changes::watch(dir, on_change))
    }

    /// Takes the lock of `key`'s record, waiting at most [`LOCK_TIMEOUT`]:
    /// hold it across load → change → store so no other writer (another
    /// task, the tray, the CLI) interleaves.
    pub async fn lock(&self, key: &VaultKey) -> Result<VaultLock, VaultError> {
        self.lock_within(key, LOCK_TIMEOUT).await
    }

    /// [`Vault::lock`] with another timeout.
    pub async fn lock_within(&self, key: &VaultKey, timeout: Duration) -> Result<VaultLock, VaultError> {
        let local = {
            let mut locks = self.local_locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(key.account().to_owned()).or_default().clone()
        };
        let local = tokio::time::timeout(timeout, local.lock_owned())
            .await
            .map_err(|_| VaultError::Busy { account: key.account().to_owned() })?;
        let file = match &self.lock_dir {
            None => None,
            Some(dir) => {
                let path = dir.join(lock_file_name(key));
                let account = key.account().to_owned();
                let guard = crate::hermes::fence::acquire_async(path, timeout).await.map_err(|e| match e {
                    crate::hermes::fence::FenceError::Timeout { .. } => VaultError::Busy { account },
                    crate::hermes::fence::FenceError::Io { .. } => VaultError::Backend(error_text(&e)),
                })?;
                Some(guard)
            }
        };
        self.heads.forget(key.account());
        Ok(VaultLock { seen: (self.heads.clone(), key.account().to_owned()), _file: file, _local: local })
    }

    /// The same vault writing at most `chars` characters per entry (tests
    /// force the split path with this).
    pub fn with_chunk_chars(mut self, chars: usize) -> Self {
        self.chunk_chars = chars.max(16);
        self
    }

    /// Whether the store answers (a lookup of an entry that never exists).
    pub fn check(&self) -> Result<(), VaultError> {
        Ok(self.backend.check()?)
    }

    /// What stores the secrets ("Secret Service", "file (opt-in)", ...).
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// The plain file the secrets are kept in, when the user chose one
    /// over the keychain (see [`SecretBackend::plain_file`]).
    pub fn plain_file(&self) -> Option<&std::path::Path> {
        self.backend.plain_file()
    }

    /// [`Vault::load`] off the async runtime's threads (keychain calls block).
    pub async fn load_async(&self, key: &VaultKey) -> Result<Option<CredentialRecord>, VaultError> {
        let (vault, key) = (self.clone(), key.clone());
        blocking(move || vault.load(&key)).await
    }

    /// [`Vault::store`] off the async runtime's threads.
    pub async fn store_async(&self, key: &VaultKey, record: &CredentialRecord) -> Result<(), VaultError> {
        let (vault, key, record) = (self.clone(), key.clone(), record.clone());
        blocking(move || vault.store(&key, &record)).await
    }

    /// [`Vault::remove`] off the async runtime's threads.
    pub async fn remove_async(&self, key: &VaultKey) -> Result<(), VaultError> {
        let (vault, key) = (self.clone(), key.clone());
        blocking(move || vault.remove(&key)).await
    }

    /// The record for `key`, if any. A default-home record kept under the
    /// earlier key is moved to the current one.
    pub fn load(&self, key: &VaultKey) -> Result<Option<CredentialRecord>, VaultError> {
        let record = self.load_account(key.account())?;
        let record = match (record, &key.legacy) {
            (Some(record), _) => Some(record),
            (None, Some(legacy)) => self.migrate(key, legacy)?,
            (None, None) => None,
        };
        // Under `default/…` a profile named `default` may find a default-home
        // record of an earlier version, waiting to be moved: not its own.
        Ok(record.filter(|r| r.profile == key.profile))
    }

    /// The records of `keys`, in order, as [`Vault::load`] reads each: the
    /// store is read in one go when it can ([`SecretBackend::read_many`]:
    /// one search of the Secret Service, not two lookups per key). What one
    /// read in one go cannot settle is read again on its own: a record that
    /// does not decode (it may have changed while read: the single read
    /// retries), an entry the batch could not read, a default-home record
    /// still under its earlier key (moved by [`Vault::load`]).
    pub fn load_many(&self, keys: &[VaultKey]) -> Vec<Result<Option<CredentialRecord>, VaultError>> {
        let one_by_one = || keys.iter().map(|key| self.load(key)).collect();
        if keys.is_empty() {
            return Vec::new();
        }
        let accounts: Vec<&str> =
            keys.iter().flat_map(|k| std::iter::once(k.account()).chain(k.legacy.as_deref())).collect();
        let fetched = match self.backend.read_many(&accounts, &account_named_by) {
            Ok(Some(fetched)) => fetched,
            Ok(None) => return one_by_one(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the records in one go; reading them one by one");
                return one_by_one();
            }
        };
        let view = FetchedView(&fetched);
        keys.iter()
            .map(|key| match chunked::read(&view, key.account()) {
                Ok(Some((bytes, _))) => match CredentialRecord::from_bytes(&bytes) {
                    Ok(record) => Ok(Some(record).filter(|r| r.profile == key.profile)),
                    Err(_) => self.load(key),
                },
                Ok(None) => match &key.legacy {
                    Some(legacy) if fetched.contains_key(legacy) => self.load(key),
                    _ => Ok(None),
                },
                Err(_) => self.load(key),
            })
            .collect()
    }

    /// [`Vault::load_many`] off the async runtime's threads.
    pub async fn load_many_async(&self, keys: Vec<VaultKey>) -> Vec<Result<Option<CredentialRecord>, VaultError>> {
        let vault = self.clone();
        let count = keys.len();
        match tokio::task::spawn_blocking(move || vault.load_many(&keys)).await {
            Ok(records) => records,
            Err(e) => vec![Err(VaultError::Backend(format!("vault task failed: {e}"))); count],
        }
    }

    fn load_account(&self, account: &str) -> Result<Option<CredentialRecord>, VaultError> {
        let read = chunked::read(self.backend.as_ref(), account);
        match &read {
            Ok(found) => self.heads.saw(account, found.as_ref().map(|(_, head)| head.clone())),
            Err(_) => self.heads.forget(account),
        }
        let Some((bytes, _)) = read? else { return Ok(None) };
        CredentialRecord::from_bytes(&bytes)
            .map(Some)
            .map_err(|reason| VaultError::Corrupt { account: account.to_owned(), reason })
    }

    /// Moves the default home's record from its earlier key, when the record
    /// there is the default home's (a profile named `default` had the same key).
    fn migrate(&self, key: &VaultKey, legacy: &str) -> Result<Option<CredentialRecord>, VaultError> {
        let record = match self.load_account(legacy) {
            Ok(Some(record)) if record.profile.is_none() => record,
            Ok(_) => return Ok(None),
            Err(VaultError::Corrupt { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.store(key, &record) {
            Ok(()) => {
                if let Err(e) = chunked::delete(self.backend.as_ref(), legacy) {
                    tracing::debug!(error = %e, "cannot remove a record from its earlier key");
                }
                tracing::info!(account = key.account(), "moved a record to its new key");
            }
            // Readable all the same; moved on a later read.
            Err(e) => tracing::debug!(error = %e, "cannot move a record to its new key"),
        }
        Ok(Some(record))
    }

    /// Stores `record` under `key`, replacing what was there.
    pub fn store(&self, key: &VaultKey, record: &CredentialRecord) -> Result<(), VaultError> {
        let account = key.account();
        let previous = self.heads.get(account);
        match chunked::write(self.backend.as_ref(), account, &record.to_bytes(), self.chunk_chars, previous) {
            Ok(head) => {
                self.heads.saw(account, Some(head));
                Ok(())
            }
            Err(e) => {
                self.heads.forget(account);
                Err(e)
            }
        }
    }

    /// Removes the record (absent is fine), and a default-home record still
    /// under its earlier key.
    pub fn remove(&self, key: &VaultKey) -> Result<(), VaultError> {
        self.heads.forget(key.account());
        chunked::delete(self.backend.as_ref(), key.account())?;
        if let Some(legacy) = &key.legacy
            && matches!(self.load_account(legacy), Ok(Some(record)) if record.profile.is_none())
        {
            chunked::delete(self.backend.as_ref(), legacy)?;
        }
        Ok(())
    }
}

/// The account a stored value names by its content: a whole record names
/// its server (profile, name and URL: what its key is made of), which
/// spares the Secret Service a call per entry to ask whose it is. A record
/// kept under a default home's earlier key names its current one: read in
/// one go, it is found there (and moved by the next [`Vault::load`]).
fn account_named_by(value: &str) -> Option<String> {
    let (profile, server, url) = CredentialRecord::key_fields(&chunked::whole(value)?)?;
    Some(VaultKey::new(profile.as_deref(), &server, &url).account)
}

/// Entries read in one go, read like a store (read only).
#[derive(Debug)]
struct FetchedView<'a>(&'a Fetched);

impl SecretBackend for FetchedView<'_> {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.0.get(account).cloned().transpose()
    }

    fn write(&self, _: &str, _: &str) -> Result<(), BackendError> {
        Err(BackendError::Other("entries read in one go are read only".to_owned()))
    }

    fn delete(&self, _: &str) -> Result<(), BackendError> {
        Err(BackendError::Other("entries read in one go are read only".to_owned()))
    }

    fn describe(&self) -> String {
        "entries read in one go".to_owned()
    }
}

#[cfg(test)]
mod tests;

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
mod chunked;
pub(crate) mod open;
mod record;

use crate::util::text::error_text;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use backend::{BackendError, FileBackend, KeyringBackend, MemoryBackend, SecretBackend};
pub use record::{CredentialRecord, RefreshFailure, StoredTokens};

/// The keychain service name all our entries live under.
pub const SERVICE: &str = "mcp-auth-tray";

/// Largest value written to one keychain entry, in characters. Windows
/// stores secrets as UTF-16 within 2560 bytes: 1200 characters leave room.
pub const DEFAULT_CHUNK_CHARS: usize = 1200;

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
    _file: Option<crate::hermes::fence::FenceGuard>,
    _local: tokio::sync::OwnedMutexGuard<()>,
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
}

impl Vault {
    /// A vault over `backend`, locking within this process only (see
    /// [`Vault::with_lock_dir`] for the cross-process locks the apps use).
    pub fn new(backend: Arc<dyn SecretBackend>) -> Self {
        Self { backend, chunk_chars: DEFAULT_CHUNK_CHARS, lock_dir: None, local_locks: Arc::default() }
    }

    /// The same vault taking its per-server locks as files in `dir` (0700,
    /// created on first use), shared with every process that uses `dir`.
    pub fn with_lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = Some(dir.into());
        self
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
        Ok(VaultLock { _file: file, _local: local })
    }

    /// The same vault writing at most `chars` characters per entry (tests
    /// force the split path with this).
    pub fn with_chunk_chars(mut self, chars: usize) -> Self {
        self.chunk_chars = chars.max(16);
        self
    }

    /// What stores the secrets ("Secret Service", "file (opt-in)", ...).
    pub fn describe(&self) -> String {
        self.backend.describe()
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

    fn load_account(&self, account: &str) -> Result<Option<CredentialRecord>, VaultError> {
        let Some(bytes) = chunked::read(self.backend.as_ref(), account)? else { return Ok(None) };
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
        chunked::write(self.backend.as_ref(), key.account(), &record.to_bytes(), self.chunk_chars)
    }

    /// Removes the record (absent is fine), and a default-home record still
    /// under its earlier key.
    pub fn remove(&self, key: &VaultKey) -> Result<(), VaultError> {
        chunked::delete(self.backend.as_ref(), key.account())?;
        if let Some(legacy) = &key.legacy
            && matches!(self.load_account(legacy), Ok(Some(record)) if record.profile.is_none())
        {
            chunked::delete(self.backend.as_ref(), legacy)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

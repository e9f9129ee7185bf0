//! Where the secrets physically go: the OS keychain, an opt-in file, memory.
//!
//! Besides one entry at a time, a backend may read many records' entries in
//! one go ([`SecretBackend::read_many`]): a status of 200 servers is then
//! one search of the store instead of 200 lookups (each a D-Bus round trip
//! or two on Linux). A backend that cannot simply says so and is read entry
//! by entry, with the same results.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::util::atomic_file::{ensure_private_dir, write_private};
use crate::util::read_capped::{Capped, read_capped};
use crate::util::text::error_text;

/// A store of string values by account name (under our service).
pub trait SecretBackend: Send + Sync + std::fmt::Debug {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError>;
    fn write(&self, account: &str, value: &str) -> Result<(), BackendError>;
    /// Deletes; absent is fine.
    fn delete(&self, account: &str) -> Result<(), BackendError>;
    /// For people: "Secret Service", "macOS Keychain", ...
    fn describe(&self) -> String;

    /// `Some(file)` when the secrets are in a plain file instead of a
    /// keychain (the user's opt-in, which every status says).
    fn plain_file(&self) -> Option<&std::path::Path> {
        None
    }

    /// What [`SecretBackend::read`] gives for each of `accounts` and for
    /// every entry whose name starts with `<account>.` (a record's pieces),
    /// fetched together: absent entries are absent from the map, an entry
    /// that cannot be read carries its error. `Ok(None)`: this backend
    /// cannot read in one go now (no such API, or a locked item it would
    /// have to unlock); the caller reads entry by entry instead.
    ///
    /// `named_by` says which account a value belongs to when the value
    /// itself tells (a whole record names its server): a store that has to
    /// ask each entry's name in a call of its own (the Secret Service) asks
    /// only for the entries whose value does not tell.
    fn read_many(&self, accounts: &[&str], named_by: NamedBy<'_>) -> Result<Option<Fetched>, BackendError> {
        let _ = (accounts, named_by);
        Ok(None)
    }

    /// The longest value one entry of this store takes, in characters: a
    /// longer record is split across entries ([`super::chunked`]).
    fn largest_value_chars(&self) -> usize {
        super::DEFAULT_CHUNK_CHARS
    }

    /// Whether the store answers: a lookup of an entry that never exists.
    fn check(&self) -> Result<(), BackendError> {
        self.read(AVAILABILITY_CHECK).map(drop)
    }
}

/// The entry [`SecretBackend::check`] looks for (not an account's shape,
/// so never one of ours).
pub(super) const AVAILABILITY_CHECK: &str = "availability-check";

/// Entries read together by [`SecretBackend::read_many`], by account name.
pub type Fetched = HashMap<String, Result<String, BackendError>>;

/// The account a stored value names by its own content, if it does.
pub type NamedBy<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Whether `name` is one of `accounts` or a piece of one (`<account>.…`).
pub(crate) fn wanted(accounts: &[&str], name: &str) -> bool {
    accounts.iter().any(|a| name.strip_prefix(a).is_some_and(|rest| rest.is_empty() || rest.starts_with('.')))
}

/// The entries of `map` that [`SecretBackend::read_many`] asks for.
fn pick(map: &BTreeMap<String, String>, accounts: &[&str]) -> Fetched {
    map.iter().filter(|(name, _)| wanted(accounts, name)).map(|(k, v)| (k.clone(), Ok(v.clone()))).collect()
}

/// A backend failure. Never carries secret material: keychain crates put
/// raw bytes into some of their errors, so only a description is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No keychain, locked, or access denied.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

/// The OS keychain through `keyring-core` and the platform's store crate.
pub struct KeyringBackend {
    /// Opened on first use: a status on Linux reads only in one go and
    /// checks through [`Self::batch`]'s connection, so it never opens the
    /// store's own (a second bus connection and key exchange).
    store: Mutex<Option<Arc<keyring_core::CredentialStore>>>,
    service: String,
    name: &'static str,
    /// Reads in one go (the store crate reads entry by entry).
    #[cfg(target_os = "linux")]
    batch: super::secret_service::Batch,
}

impl std::fmt::Debug for KeyringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringBackend").field("store", &self.name).field("service", &self.service).finish()
    }
}

impl KeyringBackend {
    /// The platform's keychain, for entries under `service`.
    /// Fails only on a platform with no supported keychain: the store is
    /// reached on first use ([`SecretBackend::check`] says whether it answers).
    pub fn system(service: &str) -> Result<Self, BackendError> {
        let name = STORE_NAME.ok_or_else(unsupported_platform)?;
        Ok(Self {
            store: Mutex::new(None),
            service: service.to_owned(),
            name,
            #[cfg(target_os = "linux")]
            batch: super::secret_service::Batch::default(),
        })
    }

    fn entry(&self, account: &str) -> Result<keyring_core::Entry, BackendError> {
        let store = {
            let mut store = self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match store.as_ref() {
                Some(opened) => opened.clone(),
                None => store.insert(platform_store()?).clone(),
            }
        };
        store.build(&self.service, account, None).map_err(map_keyring_error)
    }
}

/// What the platform's keychain is called, for people; `None`: there is none.
const STORE_NAME: Option<&str> = if cfg!(target_os = "linux") {
    Some("Secret Service")
} else if cfg!(target_os = "macos") {
    Some("macOS Keychain")
} else if cfg!(windows) {
    Some("Windows Credential Manager")
} else {
    None
};

fn unsupported_platform() -> BackendError {
    BackendError::Unavailable("no supported keychain on this platform".to_owned())
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, BackendError> {
    Ok(zbus_secret_service_keyring_store::Store::new().map_err(map_keyring_error)?)
}

#[cfg(target_os = "macos")]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, BackendError> {
    Ok(apple_native_keyring_store::keychain::Store::new().map_err(map_keyring_error)?)
}

#[cfg(windows)]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, BackendError> {
    Ok(windows_native_keyring_store::Store::new().map_err(map_keyring_error)?)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn platform_store() -> Result<Arc<keyring_core::CredentialStore>, BackendError> {
    Err(unsupported_platform())
}

/// Keeps only a description: `BadEncoding`/`BadDataFormat` carry raw bytes.
pub(super) fn map_keyring_error(e: keyring_core::Error) -> BackendError {
    use keyring_core::Error as E;
    match e {
        E::NoStorageAccess(inner) => BackendError::Unavailable(format!("no access to the keychain ({inner})")),
        E::PlatformFailure(inner) => BackendError::Unavailable(format!("the keychain failed ({inner})")),
        E::BadEncoding(_) => BackendError::Other("a keychain item is not UTF-8".to_owned()),
        E::BadDataFormat(_, _) => BackendError::Other("a keychain item has an unexpected format".to_owned()),
        E::TooLong(what, limit) => BackendError::Other(format!("{what} is longer than the keychain allows ({limit})")),
        E::Ambiguous(entries) => BackendError::Other(format!("{} keychain items match one name", entries.len())),
        E::NoEntry => BackendError::Other("no such keychain item".to_owned()),
        other => BackendError::Other(match other {
            E::Invalid(attr, reason) => format!("invalid {attr}: {reason}"),
            E::BadStoreFormat(m) => format!("bad keychain format: {m}"),
            E::NotSupportedByStore(m) => format!("not supported by the keychain: {m}"),
            _ => "keychain error".to_owned(),
        }),
    }
}

impl SecretBackend for KeyringBackend {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        match self.entry(account)?.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.entry(account)?.set_password(value).map_err(map_keyring_error)
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn describe(&self) -> String {
        self.name.to_owned()
    }

    /// The Secret Service keeps values of any size: a record there is one
    /// entry (one keychain call to read or write it, where a record of
    /// 1200-character pieces, a large JWT with the server's metadata, took
    /// two or three of each). Windows keeps 2560 bytes per credential; the
    /// macOS store is left at the same size (only compiled here).
    fn largest_value_chars(&self) -> usize {
        if cfg!(target_os = "linux") { SECRET_SERVICE_VALUE_CHARS } else { super::DEFAULT_CHUNK_CHARS }
    }

    /// On Linux one search on the connection that reads in one go, which
    /// is then open for the status's read (elsewhere: the trait's lookup).
    #[cfg(target_os = "linux")]
    fn check(&self) -> Result<(), BackendError> {
        self.batch.check(&self.service)
    }

    /// One search of the Secret Service for all our items (Linux); the
    /// other platforms' stores read entry by entry (the trait's `None`).
    #[cfg(target_os = "linux")]
    fn read_many(&self, accounts: &[&str], named_by: NamedBy<'_>) -> Result<Option<Fetched>, BackendError> {
        self.batch.read_many(&self.service, accounts, named_by)
    }
}

/// The longest value written to one Secret Service item (a record is a
/// few kilobytes; a larger one is split, as on Windows).
const SECRET_SERVICE_VALUE_CHARS: usize = 256 * 1024;

/// Plain-file storage, only when the user opts in explicitly (machines with
/// no keychain). One JSON map, mode 0600 in a 0700 folder, written atomically.
/// Every change is a read-modify-write of the whole file, so it runs under a
/// lock file beside it (`<file>.lock`, `flock`): the tray and the CLI
/// changing different entries at once must not drop each other's.
#[derive(Debug)]
pub struct FileBackend {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileBackend {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), lock: Mutex::new(()) }
    }

    fn load(&self) -> Result<BTreeMap<String, String>, BackendError> {
        match read_capped(&self.path, 16 * 1024 * 1024) {
            Ok(Capped::Missing) => Ok(BTreeMap::new()),
            Ok(Capped::Bytes(bytes, _)) => serde_json::from_slice(&bytes)
                .map_err(|_| BackendError::Other(format!("{} is not a credential file", self.path.display()))),
            Ok(Capped::TooLarge) => Err(BackendError::Other(format!("{} is too large", self.path.display()))),
            Err(e) => Err(BackendError::Unavailable(format!("cannot read {}: {e}", self.path.display()))),
        }
    }

    fn save(&self, map: &BTreeMap<String, String>) -> Result<(), BackendError> {
        let err = |e: std::io::Error| BackendError::Unavailable(format!("cannot write {}: {e}", self.path.display()));
        if let Some(dir) = self.path.parent() {
            ensure_private_dir(dir).map_err(err)?;
        }
        let bytes = serde_json::to_vec(map).map_err(|e| BackendError::Other(error_text(&e)))?;
        write_private(&self.path, &bytes).map_err(err)
    }

    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    fn with_map<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> (T, bool)) -> Result<T, BackendError> {
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _file_lock = crate::hermes::fence::acquire(&self.lock_path(), super::LOCK_TIMEOUT)
            .map_err(|e| BackendError::Unavailable(error_text(&e)))?;
        let mut map = self.load()?;
        let (out, changed) = f(&mut map);
        if changed {
            self.save(&map)?;
        }
        Ok(out)
    }
}

impl SecretBackend for FileBackend {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.with_map(|m| (m.get(account).cloned(), false))
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.with_map(|m| {
            m.insert(account.to_owned(), value.to_owned());
            ((), true)
        })
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.with_map(|m| ((), m.remove(account).is_some()))
    }

    fn describe(&self) -> String {
        format!("plain file {} (opt-in, not the keychain)", self.path.display())
    }

    fn plain_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    /// One read of the file for every record (its names are at hand).
    fn read_many(&self, accounts: &[&str], _: NamedBy<'_>) -> Result<Option<Fetched>, BackendError> {
        self.with_map(|m| (Some(pick(m, accounts)), false))
    }
}

/// In memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: Mutex<BTreeMap<String, String>>,
}

impl MemoryBackend {
    /// Every account currently stored.
    pub fn accounts(&self) -> Vec<String> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).keys().cloned().collect()
    }
}

impl SecretBackend for MemoryBackend {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        Ok(self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(account).cloned())
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(account.to_owned(), value.to_owned());
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(account);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn read_many(&self, accounts: &[&str], _: NamedBy<'_>) -> Result<Option<Fetched>, BackendError> {
        Ok(Some(pick(&self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner), accounts)))
    }
}

//! Where the secrets physically go: the OS keychain, an opt-in file, memory.

use std::collections::BTreeMap;
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
    store: Arc<keyring_core::CredentialStore>,
    service: String,
    name: &'static str,
}

impl std::fmt::Debug for KeyringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringBackend").field("store", &self.name).field("service", &self.service).finish()
    }
}

impl KeyringBackend {
    /// The platform's keychain, for entries under `service`.
    pub fn system(service: &str) -> Result<Self, BackendError> {
        let (store, name) = platform_store()?;
        Ok(Self { store, service: service.to_owned(), name })
    }

    fn entry(&self, account: &str) -> Result<keyring_core::Entry, BackendError> {
        self.store.build(&self.service, account, None).map_err(map_keyring_error)
    }
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<(Arc<keyring_core::CredentialStore>, &'static str), BackendError> {
    let store = zbus_secret_service_keyring_store::Store::new().map_err(map_keyring_error)?;
    Ok((store, "Secret Service"))
}

#[cfg(target_os = "macos")]
fn platform_store() -> Result<(Arc<keyring_core::CredentialStore>, &'static str), BackendError> {
    let store = apple_native_keyring_store::keychain::Store::new().map_err(map_keyring_error)?;
    Ok((store, "macOS Keychain"))
}

#[cfg(windows)]
fn platform_store() -> Result<(Arc<keyring_core::CredentialStore>, &'static str), BackendError> {
    let store = windows_native_keyring_store::Store::new().map_err(map_keyring_error)?;
    Ok((store, "Windows Credential Manager"))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn platform_store() -> Result<(Arc<keyring_core::CredentialStore>, &'static str), BackendError> {
    Err(BackendError::Unavailable("no supported keychain on this platform".to_owned()))
}

/// Keeps only a description: `BadEncoding`/`BadDataFormat` carry raw bytes.
fn map_keyring_error(e: keyring_core::Error) -> BackendError {
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
}

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
}

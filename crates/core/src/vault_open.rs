//! Choosing the vault's backend from the settings.

use std::sync::Arc;

use crate::settings::AppSettings;
use crate::vault::{FileBackend, KeyringBackend, SERVICE, Vault, VaultError, VaultKey};

/// The opt-in plain credential file: `<data dir>/mcp-auth-tray/credentials.json`.
pub fn default_credential_file() -> Option<std::path::PathBuf> {
    dirs::data_dir().map(|d| d.join("mcp-auth-tray").join("credentials.json"))
}

/// The vault the settings ask for: the OS keychain unless the user opted in
/// to the plain file (`"credential_store": "file"`). Checks that the
/// keychain answers, so a sign-in never starts when its result could not be
/// kept.
pub fn open_vault(settings: &AppSettings) -> Result<Vault, VaultError> {
    match settings.credential_store.as_deref() {
        Some("file") => {
            let path = default_credential_file()
                .ok_or_else(|| VaultError::Unavailable("no data folder for the credential file".to_owned()))?;
            Ok(Vault::new(Arc::new(FileBackend::new(path))))
        }
        None | Some("keychain") => {
            let vault = Vault::new(Arc::new(KeyringBackend::system(SERVICE)?));
            // A read of a key that never exists: fails only if the keychain does.
            match vault.load(&VaultKey::new(None, "availability-check", "-")) {
                Ok(_) | Err(VaultError::Corrupt { .. }) => Ok(vault),
                Err(e) => Err(e),
            }
        }
        Some(other) => Err(VaultError::Unavailable(format!(
            "unknown credential_store `{other}` in the settings (use `keychain` or `file`)"
        ))),
    }
}

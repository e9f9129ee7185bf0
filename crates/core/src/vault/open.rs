//! Choosing the vault's backend from the settings.

use std::collections::HashMap;
use std::sync::Arc;

use crate::app::settings::AppSettings;
use crate::vault::{FileBackend, KeyringBackend, SERVICE, Vault, VaultError, VaultKey};
use crate::view::status::VaultView;

/// The opt-in plain credential file: `<data dir>/mcp-auth-tray/credentials.json`.
///
/// The local data folder, not the roaming one: on Windows the roaming
/// profile is copied to other machines of the domain, and tokens stay on
/// this one (`%LOCALAPPDATA%`, protected by the profile's ACL; on Linux and
/// macOS both are the same folder).
pub fn default_credential_file() -> Option<std::path::PathBuf> {
    dirs::data_local_dir().map(|d| d.join("mcp-auth-tray").join("credentials.json"))
}

/// Where the vault's per-server lock files live: `<data dir>/mcp-auth-tray/locks`.
pub fn default_lock_dir() -> Option<std::path::PathBuf> {
    dirs::data_local_dir().map(|d| d.join("mcp-auth-tray").join("locks"))
}

/// `vault` with the per-user lock folder, so the tray and the CLI exclude
/// each other; without a data folder, locks are per process.
fn with_locks(vault: Vault) -> Vault {
    match default_lock_dir() {
        Some(dir) => vault.with_lock_dir(dir),
        None => vault,
    }
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
            Ok(with_locks(Vault::new(Arc::new(FileBackend::new(path)))))
        }
        None | Some("keychain") => {
            let vault = with_locks(Vault::new(Arc::new(KeyringBackend::system(SERVICE)?)));
            vault.check()?;
            Ok(vault)
        }
        Some(other) => Err(VaultError::Unavailable(format!(
            "unknown credential_store `{other}` in the settings (use `keychain` or `file`)"
        ))),
    }
}

/// The vault of the per-user settings file (see [`open_vault`]).
pub fn open_default_vault() -> Result<Vault, VaultError> {
    let settings = crate::app::settings::SettingsFile::default_location()
        .ok_or_else(|| VaultError::Unavailable("no config folder for the app's settings".to_owned()))?;
    open_vault(&settings.load())
}

/// What the vault holds for each of `keys`, for [`crate::StatusReport::evaluate_with`].
/// Blocking (keychain calls): run it off async threads. When the vault could
/// not be opened, every key reads as unavailable, with the reason.
pub fn vault_views(
    vault: &Result<Vault, VaultError>,
    keys: impl IntoIterator<Item = VaultKey>,
) -> HashMap<VaultKey, VaultView> {
    let keys: Vec<VaultKey> = keys.into_iter().collect();
    match vault {
        // One read of the store for all of them (see `Vault::load_many`).
        Ok(vault) => {
            let records = vault.load_many(&keys);
            keys.into_iter().zip(records).map(|(key, record)| (key, VaultView::of(record))).collect()
        }
        Err(e) => {
            let reason = match e {
                VaultError::Unavailable(reason) => reason.clone(),
                other => other.to_string(),
            };
            keys.into_iter().map(|key| (key, VaultView::Unavailable(reason.clone()))).collect()
        }
    }
}

/// The status of every server of `snapshot` at `now`, with the vault as the
/// source of truth (see [`vault_views`]; blocking), and the last checks of
/// the per-user [`crate::CheckStore`] laid over it.
pub fn vault_status(
    snapshot: &crate::Snapshot,
    vault: &Result<Vault, VaultError>,
    now: std::time::SystemTime,
) -> crate::StatusReport {
    let keys = crate::sign_in::connect::oauth_servers(snapshot)
        .iter()
        .map(crate::sign_in::connect::OAuthServer::vault_key)
        .collect::<Vec<_>>();
    let views = vault_views(vault, keys);
    let lookup = |key: &VaultKey| views.get(key).cloned().unwrap_or(crate::view::status::VaultView::Missing);
    let mut report = crate::StatusReport::evaluate_with(snapshot, now, &lookup);
    if let Some(store) = crate::CheckStore::default_location() {
        report.apply_checks(&store.load());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens in the plain file never roam with a Windows profile.
    #[test]
    fn the_plain_file_and_locks_live_in_the_local_data_folder() {
        let local = dirs::data_local_dir().map(|d| d.join("mcp-auth-tray"));
        assert_eq!(default_credential_file().as_deref().and_then(std::path::Path::parent), local.as_deref());
        assert_eq!(default_lock_dir().as_deref().and_then(std::path::Path::parent), local.as_deref());
    }
}

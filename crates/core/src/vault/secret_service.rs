//! Reading many records from the Secret Service in one go (Linux).
//!
//! keyring-core's store finds every entry with a `SearchItems` of its own
//! and reads it with a `GetSecret`, one call after another on one
//! connection: for 200 servers that is 400 round trips to the keyring (and
//! 200 more for the default home's earlier keys), which is most of what a
//! status of 200 servers costs. Here one `SearchItems` finds every item
//! under our service, and their secrets are asked for concurrently on a
//! connection of our own, so the round trips overlap instead of adding up.
//! A whole record names its own account (the vault's `named_by`), so only
//! the items whose value does not (a split record's pieces, what is not
//! ours) cost a second call, for their attributes. At most
//! [`super::SECRET_SERVICE_IN_FLIGHT`]
//! calls wait at once: the keyring answers them in turn, and a bus limits
//! the replies one connection may await.
//!
//! The answers are the ones the entry-by-entry path gives, so the vault
//! reads the same records either way:
//! - an account held by several items is the same "ambiguous" error;
//! - a secret that is not UTF-8 is the same error, for that entry only;
//! - a locked item is never unlocked here (that needs a prompt, which the
//!   entry-by-entry path asks for): a search that finds one answers
//!   "cannot" and the caller reads entry by entry.
//!
//! Secrets travel in an encrypted session (Diffie-Hellman, AES), as the
//! keyring store's do. A connection that failed is dropped, so the next
//! read connects again (the keyring may have restarted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use secret_service::{EncryptionType, Item, SecretService};

use super::backend::{AVAILABILITY_CHECK, BackendError, Fetched, NamedBy, map_keyring_error, wanted};

use super::SECRET_SERVICE_IN_FLIGHT as IN_FLIGHT;

/// A lazily opened connection for reads in one go.
#[derive(Default)]
pub(super) struct Batch {
    connection: Mutex<Option<Arc<SecretService<'static>>>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

/// Keeps only a description, as the entry-by-entry path does.
fn map_err(e: secret_service::Error) -> BackendError {
    map_keyring_error(zbus_secret_service_keyring_store::errors::decode_error(e))
}

impl Batch {
    /// See [`super::SecretBackend::read_many`]; blocks on the D-Bus calls.
    pub(super) fn read_many(
        &self,
        service: &str,
        accounts: &[&str],
        named_by: NamedBy<'_>,
    ) -> Result<Option<Fetched>, BackendError> {
        self.on_connection(async |ss| fetch(ss, service, accounts, named_by).await)
    }

    /// Whether the Secret Service answers (see [`super::SecretBackend::check`]):
    /// connecting opens the encrypted session, then one search.
    pub(super) fn check(&self, service: &str) -> Result<(), BackendError> {
        self.on_connection(async |ss| {
            let attributes = HashMap::from([("service", service), ("username", AVAILABILITY_CHECK)]);
            ss.search_items(attributes).await.map(drop).map_err(map_err)
        })
    }

    /// Runs `f` on the connection, blocking; a failure drops the connection.
    fn on_connection<T>(
        &self,
        f: impl AsyncFnOnce(&SecretService<'static>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let result = async_io::block_on(async {
            let ss = self.connect().await?;
            f(&ss).await
        });
        if result.is_err() {
            *self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
        result
    }

    async fn connect(&self) -> Result<Arc<SecretService<'static>>, BackendError> {
        if let Some(ss) = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            return Ok(ss.clone());
        }
        let ss = Arc::new(SecretService::connect(EncryptionType::Dh).await.map_err(map_err)?);
        *self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ss.clone());
        Ok(ss)
    }
}

async fn fetch(
    ss: &SecretService<'_>,
    service: &str,
    accounts: &[&str],
    named_by: NamedBy<'_>,
) -> Result<Option<Fetched>, BackendError> {
    let found = ss.search_items(HashMap::from([("service", service)])).await.map_err(map_err)?;
    if !found.locked.is_empty() {
        tracing::debug!(locked = found.locked.len(), "locked keychain items; reading entry by entry");
        return Ok(None);
    }
    // Every item's secret first: a whole record names its own account, so
    // most items need no call to ask whose they are.
    let read: Vec<(Item<'_>, Result<String, BackendError>)> = futures_util::stream::iter(found.unlocked)
        .map(|item| async move {
            let value = match item.get_secret().await {
                Ok(bytes) => {
                    String::from_utf8(bytes).map_err(|_| BackendError::Other("a keychain item is not UTF-8".to_owned()))
                }
                Err(e) => Err(map_err(e)),
            };
            (item, value)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut by_account: HashMap<String, Vec<Result<String, BackendError>>> = HashMap::new();
    let mut unnamed = Vec::new();
    for (item, value) in read {
        match value.as_deref().ok().and_then(named_by).filter(|a| wanted(accounts, a)) {
            Some(account) => by_account.entry(account).or_default().push(value),
            None => unnamed.push((item, value)),
        }
    }
    // The rest (a record's pieces, what is not ours): which account each
    // is, from the `username` the keyring store sets.
    let named: Vec<(Option<String>, Result<String, BackendError>)> = futures_util::stream::iter(unnamed)
        .map(|(item, value)| async move {
            let attributes = item.get_attributes().await.map_err(map_err)?;
            Ok::<_, BackendError>((attributes.get("username").cloned(), value))
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for (account, value) in named {
        if let Some(account) = account.filter(|a| wanted(accounts, a)) {
            by_account.entry(account).or_default().push(value);
        }
    }
    let fetched = by_account
        .into_iter()
        .map(|(account, values)| {
            let value = match <[_; 1]>::try_from(values) {
                Ok([value]) => value,
                Err(many) => Err(BackendError::Other(format!("{} keychain items match one name", many.len()))),
            };
            (account, value)
        })
        .collect();
    Ok(Some(fetched))
}

//! Telling the running service (the tray or the daemon) that another
//! process changed a vault record it shows.
//!
//! The keychain sends no change events, and the service reads a record
//! again only when it may have changed (see the service's invariants). A
//! process that notes a failure the user must act on — a proxy whose grant
//! was revoked, a refresh that failed for good in the CLI — writes a small
//! file, `vault-changed`, in the vault's lock folder (the folder every
//! process of the user already shares for the per-server locks); the service
//! watches that one file and reads the vault again. The file holds only the
//! writer's pid and the time, never a key or a secret.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher as _};

/// The file's name in the lock folder.
pub const CHANGES_FILE: &str = "vault-changed";

/// Where `lock_dir`'s processes announce changes.
pub fn changes_file(lock_dir: &Path) -> PathBuf {
    lock_dir.join(CHANGES_FILE)
}

/// Announces a change (best effort: a failure only delays what the service
/// shows until it reads the vault for another reason).
pub fn announce(lock_dir: &Path) {
    let text = format!("{{\"pid\":{},\"at\":{}}}\n", std::process::id(), crate::util::time::now_secs());
    let written = crate::util::atomic_file::ensure_private_dir(lock_dir)
        .and_then(|()| crate::util::atomic_file::write_private(&changes_file(lock_dir), text.as_bytes()));
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot announce the vault change");
    }
}

/// Watches the changes file; dropping it stops the watching.
pub struct ChangeWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for ChangeWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeWatcher").finish_non_exhaustive()
    }
}

/// Calls `on_change` (on the watcher's thread) whenever another process
/// announced a change in `lock_dir`.
pub fn watch(lock_dir: &Path, on_change: impl Fn() + Send + 'static) -> Result<ChangeWatcher, notify::Error> {
    crate::util::atomic_file::ensure_private_dir(lock_dir).map_err(notify::Error::io)?;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let ours = event.paths.iter().any(|p| p.file_name().is_some_and(|n| n == CHANGES_FILE));
        if ours && matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) {
            on_change();
        }
    })?;
    watcher.watch(lock_dir, RecursiveMode::NonRecursive)?;
    Ok(ChangeWatcher { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn an_announcement_reaches_the_watcher_and_a_lock_file_does_not() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let locks = dir.path().join("locks");
        let (tx, rx) = mpsc::channel();
        let _watcher = watch(&locks, move || {
            let _ = tx.send(());
        })
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(locks.join("0123.lock"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "a lock file counted as a change");
        announce(&locks);
        assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok(), "the announcement was not seen");
        let text = std::fs::read_to_string(changes_file(&locks)).unwrap_or_default();
        assert!(text.contains(&format!("\"pid\":{}", std::process::id())), "{text}");
    }
}

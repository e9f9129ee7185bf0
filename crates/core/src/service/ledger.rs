//! Recognising our own writes to the agent's token files, by content.
//!
//! Every write the service makes to a server's files (sign-in, refresh,
//! sync, re-export) goes through [`LedgerExporter`], which records a
//! fingerprint of the files right after writing them. When the watcher then
//! reports the change, the files still have that fingerprint and the server
//! is not synced again. Content, not modification time: a clock step, a
//! coarse file system timestamp or a copy that keeps times cannot fool it,
//! and a write by the agent is seen even within the same second as ours.
//!
//! The read-back happens while the writer still holds the server's vault
//! lock (and, for a refresh, the agent's fence, which the agent honours for
//! its own writes), so what is recorded is what we wrote.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::hermes::export::{ExportError, ExportTarget, Exporter};
use crate::hermes::files::TokenRecord;
use crate::hermes::layout::AgentPaths;
use crate::oauth::client::ClientRecord;
use crate::util::read_capped::{Capped, read_capped};
use crate::vault::CredentialRecord;

/// The most of one agent file that is read to fingerprint it (the agent's
/// files are small; anything larger is fingerprinted by its size).
const FILE_CAP: u64 = 256 * 1024;

/// A digest of one server's three files (tokens, registration, metadata).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A short prefix, enough to correlate; the files hold secrets, so
        // the digest is never needed in full.
        write!(f, "Fingerprint({:02x}{:02x}{:02x}{:02x})", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// The fingerprint of the files at `paths` now (blocking).
pub fn fingerprint(paths: &AgentPaths) -> Fingerprint {
    let mut hash = Sha256::new();
    for path in [&paths.tokens, &paths.client, &paths.meta] {
        add_file(&mut hash, path);
    }
    Fingerprint(hash.finalize().into())
}

fn add_file(hash: &mut Sha256, path: &Path) {
    match read_capped(path, FILE_CAP) {
        Ok(Capped::Missing) => hash.update(b"missing\0"),
        Ok(Capped::TooLarge) => hash.update(b"too large\0"),
        Ok(Capped::Bytes(bytes, _)) => {
            hash.update(b"bytes\0");
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
        // Unreadable now: a different state from any readable one, so it is
        // looked at again when it becomes readable.
        Err(e) => {
            hash.update(b"error\0");
            hash.update(e.kind().to_string().as_bytes());
        }
    }
}

/// One server's entry: the files' fingerprint as we last wrote or took them
/// in, and how many writes of ours it has seen.
#[derive(Debug, Clone, Copy)]
struct Entry {
    known: Fingerprint,
    writes: u64,
}

/// What we last wrote or took in, per server files (keyed by the token file).
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<HashMap<std::path::PathBuf, Entry>>,
}

impl Ledger {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<std::path::PathBuf, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fingerprint last recorded for `paths`.
    #[cfg(test)]
    pub fn known(&self, paths: &AgentPaths) -> Option<Fingerprint> {
        self.entries().get(&paths.tokens).map(|e| e.known)
    }

    /// How many of our writes were recorded for `paths`.
    pub fn writes(&self, paths: &AgentPaths) -> u64 {
        self.entries().get(&paths.tokens).map_or(0, |e| e.writes)
    }

    /// Records that we just wrote the files at `paths` (blocking: reads them back).
    pub fn wrote(&self, paths: &AgentPaths) {
        let now = fingerprint(paths);
        let mut entries = self.entries();
        let entry = entries.entry(paths.tokens.clone()).or_insert(Entry { known: now, writes: 0 });
        entry.known = now;
        entry.writes += 1;
    }

    /// Records that the files at `paths` had `seen` before a sync that took
    /// them in, unless one of our writes happened since (`writes_before`):
    /// then that write's fingerprint stays, being newer.
    pub fn took_in(&self, paths: &AgentPaths, seen: Fingerprint, writes_before: u64) {
        let mut entries = self.entries();
        let entry = entries.entry(paths.tokens.clone()).or_insert(Entry { known: seen, writes: 0 });
        if entry.writes == writes_before {
            entry.known = seen;
        }
    }

    /// Every fingerprint recorded, by token file.
    pub fn all(&self) -> HashMap<std::path::PathBuf, Fingerprint> {
        self.entries().iter().map(|(path, e)| (path.clone(), e.known)).collect()
    }

    /// Forgets the files of `tokens` (the server left the config).
    pub fn forget(&self, tokens: &Path) {
        self.entries().remove(tokens);
    }
}

/// An exporter that records each write in a [`Ledger`].
#[derive(Debug, Clone)]
pub struct LedgerExporter {
    inner: Arc<dyn Exporter>,
    ledger: Arc<Ledger>,
}

impl LedgerExporter {
    pub fn new(inner: Arc<dyn Exporter>, ledger: Arc<Ledger>) -> Self {
        Self { inner, ledger }
    }

    fn record(&self, target: &ExportTarget) {
        self.ledger.wrote(&AgentPaths::new(&target.home.tokens_dir(), &target.name));
    }
}

impl Exporter for LedgerExporter {
    fn check(&self, target: &ExportTarget) -> Result<(), ExportError> {
        self.inner.check(target)
    }

    fn export(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<(), ExportError> {
        let result = self.inner.export(target, record);
        // Also after a failure: part of the files may have been written.
        self.record(target);
        result
    }

    fn update_tokens(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<bool, ExportError> {
        let result = self.inner.update_tokens(target, record);
        if !matches!(result, Ok(false)) {
            self.record(target);
        }
        result
    }

    fn remove(&self, target: &ExportTarget) -> Result<(), ExportError> {
        let result = self.inner.remove(target);
        self.record(target);
        result
    }

    fn agent_tokens(&self, target: &ExportTarget) -> Option<TokenRecord> {
        self.inner.agent_tokens(target)
    }

    fn agent_registration(&self, target: &ExportTarget) -> Option<(ClientRecord, Option<Value>)> {
        self.inner.agent_registration(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_not_time() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let paths = AgentPaths::new(dir.path(), "s");
        let empty = fingerprint(&paths);
        std::fs::write(&paths.tokens, b"{\"a\":1}")?;
        let one = fingerprint(&paths);
        assert_ne!(one, empty);
        // The same bytes again (a new modification time): the same fingerprint.
        std::fs::write(&paths.tokens, b"{\"a\":1}")?;
        assert_eq!(fingerprint(&paths), one);
        std::fs::write(&paths.tokens, b"{\"a\":2}")?;
        assert_ne!(fingerprint(&paths), one);
        // A change to the registration counts too.
        std::fs::write(&paths.tokens, b"{\"a\":1}")?;
        std::fs::write(&paths.client, b"{}")?;
        assert_ne!(fingerprint(&paths), one);
        Ok(())
    }

    #[test]
    fn a_write_during_a_sync_wins_over_what_the_sync_saw() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let paths = AgentPaths::new(dir.path(), "s");
        let ledger = Ledger::default();
        std::fs::write(&paths.tokens, b"agent")?;
        let seen = fingerprint(&paths);
        let before = ledger.writes(&paths);
        std::fs::write(&paths.tokens, b"ours")?;
        ledger.wrote(&paths);
        ledger.took_in(&paths, seen, before);
        assert_eq!(ledger.known(&paths), Some(fingerprint(&paths)));
        // Without a write in between, what the sync saw is recorded.
        ledger.took_in(&paths, seen, ledger.writes(&paths));
        assert_eq!(ledger.known(&paths), Some(seen));
        Ok(())
    }
}

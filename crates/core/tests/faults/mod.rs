//! Fault injection for the vault and the agent's files: a keychain that
//! refuses writes on demand (locked, access denied) or fails its Nth write,
//! and an agent layout whose files cannot be written (a read-only or full
//! disk — root, which runs these tests, ignores permission bits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mcp_auth_core::{AgentFilesError, ClientRecord, TokenRecord};
use mcp_auth_core::{BackendError, CredentialRecord, MemoryBackend, SecretBackend};
use mcp_auth_core::{ExportError, ExportTarget, Exporter, HermesExporter};

/// A memory keychain whose writes fail while [`FlakyBackend::lock`] is on.
#[derive(Debug, Default)]
pub struct FlakyBackend {
    inner: MemoryBackend,
    locked: AtomicBool,
    /// Writes refused since the keychain was locked.
    pub refused: AtomicUsize,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl FlakyBackend {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Locks (`true`) or unlocks the keychain for writes; reads still work,
    /// as with a keychain that locked after the transaction read it.
    pub fn lock(&self, locked: bool) {
        self.locked.store(locked, Ordering::SeqCst);
    }

    /// The reads and the writes (refused ones too) made so far.
    pub fn calls(&self) -> (usize, usize) {
        (self.reads.load(Ordering::SeqCst), self.writes.load(Ordering::SeqCst))
    }
}

impl SecretBackend for FlakyBackend {
    fn read(&self, account: &str) -> Result<Option<String>, BackendError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(account)
    }

    fn write(&self, account: &str, value: &str) -> Result<(), BackendError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.locked.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(BackendError::Unavailable("the keychain is locked".to_owned()));
        }
        self.inner.write(account, value)
    }

    fn delete(&self, account: &str) -> Result<(), BackendError> {
        self.inner.delete(account)
    }

    fn describe(&self) -> String {
        "flaky memory".to_owned()
    }
}

/// Hermes' layout, but writing fails while [`FailingExporter::fail`] is on.
#[derive(Debug, Default)]
pub struct FailingExporter {
    failing: AtomicBool,
}

impl FailingExporter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check_writable(&self, target: &ExportTarget) -> Result<(), ExportError> {
        if self.failing.load(Ordering::SeqCst) {
            let path = target.home.tokens_dir();
            let source = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
            return Err(ExportError::Files(AgentFilesError::Write { path, source }));
        }
        Ok(())
    }
}

impl Exporter for FailingExporter {
    fn check(&self, target: &ExportTarget) -> Result<(), ExportError> {
        HermesExporter.check(target)
    }

    fn export(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<(), ExportError> {
        self.check_writable(target)?;
        HermesExporter.export(target, record)
    }

    fn update_tokens(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<bool, ExportError> {
        self.check_writable(target)?;
        HermesExporter.update_tokens(target, record)
    }

    fn remove(&self, target: &ExportTarget) -> Result<(), ExportError> {
        HermesExporter.remove(target)
    }

    fn agent_tokens(&self, target: &ExportTarget) -> Option<TokenRecord> {
        HermesExporter.agent_tokens(target)
    }

    fn agent_registration(&self, target: &ExportTarget) -> Option<(ClientRecord, Option<serde_json::Value>)> {
        HermesExporter.agent_registration(target)
    }
}

/// A folder made read-only for real while this lives: root ignores file
/// modes, so as root it is marked immutable (`chattr +i`), otherwise its
/// mode is 0500. Checked by trying to create a file in it.
#[derive(Debug)]
pub struct ReadOnlyDir {
    path: std::path::PathBuf,
    immutable: bool,
}

impl ReadOnlyDir {
    pub fn new(path: &std::path::Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let uid = std::process::Command::new("id").arg("-u").output().expect("id -u");
        let immutable = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if immutable {
            let status = std::process::Command::new("chattr").arg("+i").arg(path).status().expect("chattr");
            assert!(status.success(), "chattr +i {} failed", path.display());
        } else {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        }
        let dir = Self { path: path.to_owned(), immutable };
        assert!(std::fs::File::create(path.join(".probe")).is_err(), "{} is still writable", path.display());
        dir
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = std::process::Command::new("chattr").arg("-i").arg(&self.path).status();
        } else {
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700));
        }
    }
}

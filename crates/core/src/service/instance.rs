//! One service per user: the daemon or the tray, never both.
//!
//! Two services would both refresh the same grants (one would spend a
//! rotated refresh token the other then lacks, and the single-flight
//! transaction is per process). The first to start holds an exclusive lock
//! on `instance.lock` in the user's runtime folder (else the data folder) for
//! its lifetime, and writes `{"kind", "pid"}` into it so a second one can say
//! who is running. The OS releases the lock when the process ends, however
//! it ends: no stale lock to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name of the lock.
const LOCK_FILE: &str = "instance.lock";
/// The most of the lock file that is read (it holds a few bytes of JSON).
const LOCK_CAP: u64 = 4096;

/// Which front end runs the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceKind {
    /// `mcp-auth daemon`.
    Daemon,
    /// The tray app.
    Tray,
}

impl std::fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InstanceKind::Daemon => "daemon (mcp-auth daemon)",
            InstanceKind::Tray => "tray app",
        })
    }
}

/// Who holds the lock, as it wrote in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub kind: InstanceKind,
    pub pid: u32,
}

/// Why this process cannot be the user's service.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("the {} is already running (pid {}); only one daemon or tray runs per user", holder.kind, holder.pid)]
    Running { holder: Holder },
    #[error("another mcp-auth daemon or tray is already running (it holds {})", path.display())]
    RunningUnknown { path: PathBuf },
    #[error("no runtime or data folder to keep the instance lock in")]
    NoFolder,
    #[error("cannot use the instance lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the lifetime of the service; released when dropped.
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// The folder of the lock: `$XDG_RUNTIME_DIR/mcp-auth-tray` (or the
    /// platform's equivalent), else the data folder.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::runtime_dir().or_else(dirs::data_local_dir).map(|d| d.join("mcp-auth-tray"))
    }

    /// Takes the lock in [`InstanceLock::default_dir`].
    pub fn acquire_default(kind: InstanceKind) -> Result<Self, InstanceError> {
        Self::acquire(&Self::default_dir().ok_or(InstanceError::NoFolder)?, kind)
    }

    /// Takes the lock in `dir` as `kind`, or says who holds it.
    pub fn acquire(dir: &Path, kind: InstanceKind) -> Result<Self, InstanceError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| InstanceError::Io { path: path.clone(), source };
        crate::util::atomic_file::ensure_private_dir(dir).map_err(io)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(match read_holder(&mut file) {
                    Some(holder) => InstanceError::Running { holder },
                    None => InstanceError::RunningUnknown { path },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = Holder { kind, pid: std::process::id() };
        let text = serde_json::to_vec(&holder).map_err(|e| io(std::io::Error::other(e)))?;
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_data().map_err(io)?;
        tracing::debug!(path = %path.display(), ?kind, "instance lock taken");
        Ok(Self { file, path })
    }

    /// Where the lock is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // The next holder rewrites it anyway; emptied so nobody reads a pid
        // that is gone.
        let _ = self.file.set_len(0);
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(LOCK_CAP).read_to_end(&mut bytes).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_learns_who_runs() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = InstanceLock::acquire(dir.path(), InstanceKind::Tray).map_err(std::io::Error::other)?;
        match InstanceLock::acquire(dir.path(), InstanceKind::Daemon) {
            Err(InstanceError::Running { holder }) => {
                assert_eq!(holder, Holder { kind: InstanceKind::Tray, pid: std::process::id() });
                assert_eq!(
                    InstanceError::Running { holder }.to_string(),
                    format!(
                        "the tray app is already running (pid {}); only one daemon or tray runs per user",
                        std::process::id()
                    )
                );
            }
            other => panic!("expected Running, got {other:?}"),
        }
        drop(first);
        let again = InstanceLock::acquire(dir.path(), InstanceKind::Daemon).map_err(std::io::Error::other)?;
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
        Ok(())
    }
}

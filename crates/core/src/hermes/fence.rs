//! The agent's refresh fence: `<stem>.json.refresh.lock`.
//!
//! Newer agents hold an exclusive lock on this file across "re-read tokens →
//! refresh at the token endpoint → write tokens", so two processes never
//! spend the same (rotating) refresh token. We take the same lock around our
//! own refreshes: POSIX `flock` (what Python's `fcntl.flock` takes) on Unix;
//! on Windows std's `LockFileEx` covers byte 0, which the agent's
//! `msvcrt.locking(fd, LK_NBLCK, 1)` locks, so the two exclude each other.
//! Like the agent we poll a non-blocking attempt every 50 ms and give up
//! after a timeout (60 s by default): fail closed, never refresh unfenced.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The agent's poll interval.
const POLL: Duration = Duration::from_millis(50);
/// The agent's timeout.
pub const DEFAULT_FENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// The fence could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("another process holds the refresh lock {} (waited {} s); not refreshing", path.display(), waited.as_secs())]
    Timeout { path: PathBuf, waited: Duration },
    #[error("cannot open the refresh lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A held fence; released when dropped.
#[derive(Debug)]
pub struct FenceGuard {
    file: File,
    path: PathBuf,
}

impl FenceGuard {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FenceGuard {
    fn drop(&mut self) {
        // Closing releases it too; unlocking first makes the order explicit.
        let _ = self.file.unlock();
    }
}

/// Takes the fence at `lock_path`, waiting at most `timeout`. Blocking: call
/// it from `spawn_blocking` (or [`acquire_async`]).
pub fn acquire(lock_path: &Path, timeout: Duration) -> Result<FenceGuard, FenceError> {
    let io = |source| FenceError::Io { path: lock_path.to_path_buf(), source };
    if let Some(dir) = lock_path.parent() {
        crate::util::atomic_file::ensure_private_dir(dir).map_err(io)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(lock_path).map_err(io)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(FenceGuard { file, path: lock_path.to_path_buf() }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(FenceError::Timeout { path: lock_path.to_path_buf(), waited });
        }
        std::thread::sleep(POLL.min(timeout - waited));
    }
}

/// [`acquire`] on tokio's blocking pool.
pub async fn acquire_async(lock_path: PathBuf, timeout: Duration) -> Result<FenceGuard, FenceError> {
    let path = lock_path.clone();
    tokio::task::spawn_blocking(move || acquire(&path, timeout))
        .await
        .map_err(|e| FenceError::Io { path: lock_path, source: std::io::Error::other(e) })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_a_second_holder_until_released() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("mcp-tokens").join("s.json.refresh.lock");
        let first = acquire(&path, Duration::from_millis(100))?;
        let err = acquire(&path, Duration::from_millis(200)).expect_err("held");
        assert!(matches!(err, FenceError::Timeout { .. }), "{err}");
        drop(first);
        let _second = acquire(&path, Duration::from_millis(200))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        }
        Ok(())
    }

    /// The agent's side, exactly: Python's `fcntl.flock(LOCK_EX | LOCK_NB)`.
    #[test]
    #[cfg(unix)]
    fn excludes_and_is_excluded_by_the_agents_python_flock() -> Result<(), Box<dyn std::error::Error>> {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.json.refresh.lock");
        let script = r#"
import fcntl, sys
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
sys.stdin.readline()
fcntl.flock(f, fcntl.LOCK_UN)
print("released", flush=True)
sys.stdin.readline()
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("python-got-it", flush=True)
except BlockingIOError:
    print("python-blocked", flush=True)
"#;
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("stdin")?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        assert_eq!(lines.next().transpose()?.as_deref(), Some("locked"));
        // Python holds it: we must wait and then give up.
        assert!(matches!(acquire(&path, Duration::from_millis(300)), Err(FenceError::Timeout { .. })));
        writeln!(stdin)?;
        assert_eq!(lines.next().transpose()?.as_deref(), Some("released"));
        // Now we hold it, and Python must be refused.
        let guard = acquire(&path, Duration::from_millis(300))?;
        writeln!(stdin)?;
        assert_eq!(lines.next().transpose()?.as_deref(), Some("python-blocked"));
        drop(guard);
        child.wait()?;
        Ok(())
    }
    /// The agent's side on Windows, exactly: `msvcrt.locking(fd, LK_NBLCK, 1)`
    /// on byte 0 (the agent seeks to 0 first). Runs only on Windows (CI's
    /// `windows-latest`, with `python` on the PATH).
    #[test]
    #[cfg(windows)]
    fn excludes_and_is_excluded_by_the_agents_msvcrt_locking() -> Result<(), Box<dyn std::error::Error>> {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.json.refresh.lock");
        let script = r#"
import msvcrt, os, sys
f = open(sys.argv[1], "a+")
f.seek(0)
msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
print("locked", flush=True)
sys.stdin.readline()
f.seek(0)
msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
print("released", flush=True)
sys.stdin.readline()
try:
    f.seek(0)
    msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    print("python-got-it", flush=True)
except OSError:
    print("python-blocked", flush=True)
"#;
        let mut child = std::process::Command::new("python")
            .args(["-c", script])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("stdin")?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        assert_eq!(lines.next().transpose()?.as_deref(), Some("locked"));
        assert!(matches!(acquire(&path, Duration::from_millis(300)), Err(FenceError::Timeout { .. })));
        writeln!(stdin)?;
        assert_eq!(lines.next().transpose()?.as_deref(), Some("released"));
        let guard = acquire(&path, Duration::from_millis(300))?;
        writeln!(stdin)?;
        assert_eq!(lines.next().transpose()?.as_deref(), Some("python-blocked"));
        drop(guard);
        child.wait()?;
        Ok(())
    }
}

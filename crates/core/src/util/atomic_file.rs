//! Crash-safe writes of small secret files.
//!
//! A reader (the agent, or us after a crash) must only ever see the old file
//! or the new one, never a torn one, and nobody else may read it: the content
//! goes to a fresh temp file in the same folder (created exclusively, mode
//! 0600 from the start), is flushed to disk, then renamed over the target;
//! the folder is synced so the rename itself survives a power cut.
//!
//! On Windows a file another process has open (the agent reading it, an
//! antivirus scanning it) cannot be replaced for that moment: the rename
//! fails with a sharing violation. The replace is retried briefly
//! ([`retry_while_busy`]) instead of failing the export. File modes mean
//! nothing there: what keeps the files private is the ACL of the user's
//! profile folder, which only the user (and administrators) can read and
//! which new files and folders inside it inherit.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Creates `dir` (and parents) if needed and restricts it to the owner (0700).
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Atomically replaces `path` with `bytes`, readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // tempfile creates with O_EXCL and mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let mut pending = Some(tmp);
    retry_while_busy(
        || match pending.take().map(|t| t.persist(path)) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => {
                pending = Some(e.file);
                Err(e.error)
            }
            None => Err(std::io::Error::other("the temp file is gone")),
        },
        is_busy,
        std::thread::sleep,
    )?;
    sync_dir(dir);
    remove_stale_temp_files(dir);
    Ok(())
}

/// How many times a replace is tried while the target is busy, and the pause
/// between tries: half a second in all, enough for a reader to close it.
const REPLACE_ATTEMPTS: u32 = 10;
const REPLACE_PAUSE: Duration = Duration::from_millis(50);

/// Runs `op` until it succeeds, fails with an error that is not `busy`, or
/// has been tried [`REPLACE_ATTEMPTS`] times (`pause` between tries).
pub fn retry_while_busy<T>(
    mut op: impl FnMut() -> std::io::Result<T>,
    busy: impl Fn(&std::io::Error) -> bool,
    mut pause: impl FnMut(Duration),
) -> std::io::Result<T> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(e) if busy(&e) && attempt < REPLACE_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "the file is in use; trying again");
                attempt += 1;
                pause(REPLACE_PAUSE);
            }
            result => return result,
        }
    }
}

/// Whether a replace failed only because another process has the file open:
/// Windows' sharing and lock violations, and the access denial a rename over
/// a file opened without `FILE_SHARE_DELETE` gets. Elsewhere a rename never
/// fails for that reason.
fn is_busy(e: &std::io::Error) -> bool {
    #[cfg(windows)]
    {
        const ERROR_ACCESS_DENIED: i32 = 5;
        const ERROR_SHARING_VIOLATION: i32 = 32;
        const ERROR_LOCK_VIOLATION: i32 = 33;
        matches!(e.raw_os_error(), Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION | ERROR_LOCK_VIOLATION))
    }
    #[cfg(not(windows))]
    {
        let _ = e;
        false
    }
}

/// Temp files of writes that were killed midway hold secrets: remove ours
/// once they are clearly abandoned (a minute old).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(60));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

const TEMP_PREFIX: &str = ".mcp-auth-";
const TEMP_SUFFIX: &str = ".tmp";

/// Best effort: not every platform can open a folder to sync it.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_temp_files_are_cleaned_up() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let stale = dir.path().join(".mcp-auth-abandoned.tmp");
        let fresh = dir.path().join(".mcp-auth-inflight.tmp");
        let foreign = dir.path().join("notes.tmp");
        for p in [&stale, &fresh, &foreign] {
            std::fs::write(p, b"{}")?;
        }
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&stale)?.set_modified(long_ago)?;
        std::fs::File::options().write(true).open(&foreign)?.set_modified(long_ago)?;
        write_private(&dir.path().join("x.json"), b"{}")?;
        assert!(!stale.exists(), "an abandoned temp file was kept");
        assert!(fresh.exists(), "a write in progress elsewhere must not be disturbed");
        assert!(foreign.exists(), "files not ours are not touched");
        Ok(())
    }

    fn busy() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ResourceBusy, "in use")
    }

    /// A replace failing `fails` times as busy, then succeeding: how many
    /// tries and pauses it took, and the result.
    fn replace_busy(fails: u32, other_error: bool) -> (u32, u32, std::io::Result<()>) {
        let (mut tries, mut pauses) = (0, 0);
        let result = retry_while_busy(
            || {
                tries += 1;
                if tries <= fails {
                    Err(busy())
                } else if other_error {
                    Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"))
                } else {
                    Ok(())
                }
            },
            |e| e.kind() == std::io::ErrorKind::ResourceBusy,
            |d| {
                assert_eq!(d, REPLACE_PAUSE);
                pauses += 1;
            },
        );
        (tries, pauses, result)
    }

    #[rstest::rstest]
    #[case::free_at_once(0, false, 1, true)]
    #[case::busy_twice(2, false, 3, true)]
    #[case::busy_until_the_last_try(REPLACE_ATTEMPTS - 1, false, REPLACE_ATTEMPTS, true)]
    #[case::busy_for_good(u32::MAX, false, REPLACE_ATTEMPTS, false)]
    #[case::another_error_is_not_retried(0, true, 1, false)]
    fn a_busy_replace_is_retried_briefly(
        #[case] fails: u32,
        #[case] other_error: bool,
        #[case] want_tries: u32,
        #[case] want_ok: bool,
    ) {
        let (tries, pauses, result) = replace_busy(fails, other_error);
        assert_eq!((tries, pauses, result.is_ok()), (want_tries, want_tries - 1, want_ok));
    }

    /// A reader holding the token file open without `FILE_SHARE_DELETE` (as
    /// the agent's Python `open()` does) only delays the replace.
    #[cfg(windows)]
    #[test]
    fn replaces_a_file_another_process_holds_open() -> std::io::Result<()> {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ: u32 = 1;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.json");
        write_private(&path, b"{\"v\":1}")?;
        let reader = std::fs::File::options().read(true).share_mode(FILE_SHARE_READ).open(&path)?;
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            drop(reader);
        });
        write_private(&path, b"{\"v\":2}")?;
        let _ = closer.join();
        assert_eq!(std::fs::read(&path)?, b"{\"v\":2}");
        Ok(())
    }

    #[test]
    fn writes_private_files_atomically() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sub = dir.path().join("mcp-tokens");
        ensure_private_dir(&sub)?;
        let path = sub.join("x.json");
        write_private(&path, b"{\"v\":1}")?;
        write_private(&path, b"{\"v\":2}")?;
        assert_eq!(std::fs::read(&path)?, b"{\"v\":2}");
        let leftovers: Vec<_> = std::fs::read_dir(&sub)?.flatten().filter(|e| e.file_name() != "x.json").collect();
        assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&sub)?.permissions().mode() & 0o777, 0o700);
        }
        Ok(())
    }
}

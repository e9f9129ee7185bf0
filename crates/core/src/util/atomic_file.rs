//! Crash-safe writes of small secret files.
//!
//! A reader (the agent, or us after a crash) must only ever see the old file
//! or the new one, never a torn one, and nobody else may read it: the content
//! goes to a fresh temp file in the same folder (created exclusively, mode
//! 0600 from the start), is flushed to disk, then renamed over the target;
//! the folder is synced so the rename itself survives a power cut.

use std::io::Write;
use std::path::Path;

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
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir);
    remove_stale_temp_files(dir);
    Ok(())
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

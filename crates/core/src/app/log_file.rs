//! The tray's log files: one per UTC day, `<prefix>.<YYYY-MM-DD>.<suffix>`
//! (the names `tracing-appender`'s daily rotation used), in a folder only
//! the owner can enter (0700), each file readable by the owner only (0600)
//! whatever the umask, and pruned to the newest few.
//!
//! Nothing secret is logged, but a log still tells which servers a user
//! works with and when: like the agent's token folder, it is private.
//! `tracing-appender` creates its files with the process umask (0644
//! usually), hence this writer; it goes behind
//! `tracing_appender::non_blocking` like any other.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::util::atomic_file::ensure_private_dir;

/// Moves the app's own folder from an earlier name to its current one, once:
/// `current` is a folder the OS path API gives for the app (its log folder,
/// say `~/.local/share/dev.mcpauthtray.tray/logs`), named after the app's
/// identifier `new_name` at some level; the folder named `old_name` at that
/// level moves there, with everything in it (logs, the webview's data),
/// when it exists and the new one does not yet. Returns the folder moved.
///
/// The identifier was `dev.mcpauthtray.app`, and macOS takes any folder
/// ending in `.app` for an application bundle (the log folder opened as an
/// app); the new one does not end so. Nothing is merged or deleted: if both
/// folders exist, the old one is left as it is.
pub fn migrate_app_folder(current: &Path, new_name: &str, old_name: &str) -> std::io::Result<Option<PathBuf>> {
    let Some(new_top) = current.ancestors().find(|p| p.file_name().is_some_and(|n| n == new_name)) else {
        return Ok(None);
    };
    let old_top = new_top.with_file_name(old_name);
    if new_top.exists() || !old_top.is_dir() {
        return Ok(None);
    }
    std::fs::rename(&old_top, new_top)?;
    Ok(Some(old_top))
}

/// A daily-rotating, private log file.
pub struct DailyLog {
    dir: PathBuf,
    prefix: String,
    suffix: String,
    keep: usize,
    clock: Box<dyn Fn() -> u64 + Send>,
    /// The day `file` is for (days since the Unix epoch).
    day: Option<u64>,
    file: Option<File>,
}

impl std::fmt::Debug for DailyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DailyLog").field("dir", &self.dir).field("day", &self.day).finish_non_exhaustive()
    }
}

impl DailyLog {
    /// Opens today's file in `dir` (created 0700, or restricted to 0700),
    /// keeping the newest `keep` files.
    pub fn open(dir: &Path, prefix: &str, suffix: &str, keep: usize) -> std::io::Result<Self> {
        let clock = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self::with_clock(dir, prefix, suffix, keep, Box::new(clock))
    }

    /// [`DailyLog::open`] with the time (Unix seconds) from `clock`.
    pub fn with_clock(
        dir: &Path,
        prefix: &str,
        suffix: &str,
        keep: usize,
        clock: Box<dyn Fn() -> u64 + Send>,
    ) -> std::io::Result<Self> {
        ensure_private_dir(dir)?;
        let mut log = Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            keep: keep.max(1),
            clock,
            day: None,
            file: None,
        };
        log.roll()?;
        Ok(log)
    }

    /// The file for `day`.
    fn path_for(&self, day: u64) -> PathBuf {
        let (y, m, d) = civil_date(day);
        self.dir.join(format!("{}.{y:04}-{m:02}-{d:02}.{}", self.prefix, self.suffix))
    }

    /// Switches to today's file when the day changed (or none is open).
    fn roll(&mut self) -> std::io::Result<&mut File> {
        let today = (self.clock)() / 86_400;
        if self.day != Some(today) || self.file.is_none() {
            let path = self.path_for(today);
            self.file = Some(open_private(&path)?);
            self.day = Some(today);
            self.prune();
        }
        self.file.as_mut().ok_or_else(|| std::io::Error::other("no log file"))
    }

    /// Removes all but the newest `keep` log files (names sort by date).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("{}.", self.prefix)) && n.ends_with(&format!(".{}", self.suffix))
                })
            })
            .collect();
        logs.sort();
        let excess = logs.len().saturating_sub(self.keep);
        for old in &logs[..excess] {
            let _ = std::fs::remove_file(old);
        }
    }
}

impl Write for DailyLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.roll()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Opens `path` for appending, created 0600; an existing file (written by
/// an older version with the umask's mode) is restricted to 0600 too.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
pub(crate) fn civil_date(days: u64) -> (u64, u64, u64) {
    // Shifted to start on 0000-03-01 so leap days end a year; eras of
    // 400 years (146,097 days) repeat exactly.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_app_folder_moves_once_from_its_old_name() -> std::io::Result<()> {
        use super::migrate_app_folder;
        let data = tempfile::tempdir()?;
        let old = data.path().join("dev.mcpauthtray.app");
        std::fs::create_dir_all(old.join("logs"))?;
        std::fs::write(old.join("logs/mcp-auth-tray.2026-11-30.log"), "yesterday")?;
        let logs = data.path().join("dev.mcpauthtray.tray/logs");

        let moved = migrate_app_folder(&logs, "dev.mcpauthtray.tray", "dev.mcpauthtray.app")?;
        assert_eq!(moved.as_deref(), Some(old.as_path()));
        assert_eq!(std::fs::read_to_string(logs.join("mcp-auth-tray.2026-11-30.log"))?, "yesterday");
        assert!(!old.exists(), "the old folder stays behind");

        // Once moved, nothing more happens; a new old folder is not merged in.
        std::fs::create_dir_all(&old)?;
        std::fs::write(old.join("other"), "x")?;
        assert_eq!(migrate_app_folder(&logs, "dev.mcpauthtray.tray", "dev.mcpauthtray.app")?, None);
        assert!(old.join("other").exists() && !logs.join("other").exists());

        // Nothing to move, and a path not named after the app: no change.
        let fresh = tempfile::tempdir()?;
        let fresh_logs = fresh.path().join("dev.mcpauthtray.tray/logs");
        assert_eq!(migrate_app_folder(&fresh_logs, "dev.mcpauthtray.tray", "dev.mcpauthtray.app")?, None);
        assert!(!fresh_logs.exists());
        assert_eq!(migrate_app_folder(fresh.path(), "dev.mcpauthtray.tray", "dev.mcpauthtray.app")?, None);
        Ok(())
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::epoch(0, (1970, 1, 1))]
    #[case::leap_day(11_016, (2000, 2, 29))]
    #[case::after_leap_day(11_017, (2000, 3, 1))]
    #[case::century_not_leap(47_541, (2100, 3, 1))]
    #[case::year_end(20_818, (2026, 12, 31))]
    #[case::new_year(20_819, (2027, 1, 1))]
    fn civil_dates(#[case] days: u64, #[case] want: (u64, u64, u64)) {
        assert_eq!(civil_date(days), want);
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_whatever_the_umask_and_roll_daily() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("logs");
        // An old install left a world-readable folder and today's file.
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let first = dir.join("app.2026-11-29.log");
        std::fs::write(&first, "old\n").expect("write");
        std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o644)).expect("chmod");

        let now = Arc::new(AtomicU64::new(20_786 * 86_400 + 3_600));
        let clock = Arc::clone(&now);
        let mut log =
            DailyLog::with_clock(&dir, "app", "log", 2, Box::new(move || clock.load(Ordering::SeqCst))).expect("open");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&first), 0o600);
        log.write_all(b"one\n").expect("write");
        assert_eq!(std::fs::read_to_string(&first).expect("read"), "old\none\n");

        // Past midnight UTC: a new file, private from the start; the oldest beyond `keep` go.
        for (day, name) in [(20_787, "app.2026-11-30.log"), (20_788, "app.2026-12-01.log")] {
            now.store(day * 86_400 + 10, Ordering::SeqCst);
            log.write_all(b"next\n").expect("write");
            log.flush().expect("flush");
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
            assert_eq!(std::fs::read_to_string(dir.join(name)).expect("read"), "next\n");
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["app.2026-11-30.log", "app.2026-12-01.log"]);
    }
}

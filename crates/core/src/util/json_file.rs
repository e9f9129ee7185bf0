//! Our own small private JSON files (the settings, our server list, the
//! check results): one way to read them and one way to change them.
//!
//! - Read bounded: at most `limit` bytes are read ([`read_capped`]); a larger
//!   file is refused before it costs anything, and the content is parsed
//!   into the caller's type (validation is the type's).
//! - Written whole and atomically ([`write_private`]): pretty JSON ending in
//!   a newline, 0600, in a folder made 0700; a reader sees the old file or
//!   the new one, never a torn one.
//! - Changed under a lock file beside it (`<name>.lock`, std `File::lock`):
//!   a read-modify-write holds [`JsonFile::lock`] across the read and the
//!   write, so the tray and the CLI never lose each other's changes. The
//!   lock is a separate file because the data file is replaced by rename.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::util::atomic_file::{ensure_private_dir, write_private};
use crate::util::read_capped::{Capped, read_capped};

/// Why a file could not be read as what it should hold.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonReadError {
    #[error("cannot read the file")]
    Io(#[source] std::io::Error),
    #[error("larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not valid at line {line}, column {column}")]
    Invalid { line: usize, column: usize },
}

/// A small JSON file of ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonFile<'a> {
    path: &'a Path,
    limit: u64,
}

/// A held [`JsonFile::lock`]; released when dropped.
#[derive(Debug)]
pub(crate) struct JsonFileLock {
    _file: std::fs::File,
}

impl<'a> JsonFile<'a> {
    /// The file at `path`, read up to `limit` bytes.
    pub(crate) fn new(path: &'a Path, limit: u64) -> Self {
        Self { path, limit }
    }

    /// The content; `None` when there is no file.
    pub(crate) fn read<T: DeserializeOwned>(&self) -> Result<Option<T>, JsonReadError> {
        match read_capped(self.path, self.limit).map_err(JsonReadError::Io)? {
            Capped::Missing => Ok(None),
            Capped::TooLarge => Err(JsonReadError::TooLarge { limit: self.limit }),
            Capped::Bytes(bytes, _) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| JsonReadError::Invalid { line: e.line(), column: e.column() }),
        }
    }

    /// Replaces the file with `value` (see the module docs).
    pub(crate) fn write<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        self.ensure_dir()?;
        let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        write_private(self.path, &bytes)
    }

    /// Waits for the file's lock (other processes hold it only for one
    /// read-modify-write); creates the folder first.
    pub(crate) fn lock(&self) -> std::io::Result<JsonFileLock> {
        self.ensure_dir()?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(self.lock_path())?;
        file.lock()?;
        Ok(JsonFileLock { _file: file })
    }

    /// `<name>.lock` beside the file.
    fn lock_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.path.with_file_name(name)
    }

    fn ensure_dir(&self) -> std::io::Result<()> {
        match self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => ensure_private_dir(dir),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pretty_assertions::assert_eq;

    use super::*;

    type Map = BTreeMap<String, u32>;

    #[test]
    fn reads_what_it_wrote_privately() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub").join("x.json");
        let file = JsonFile::new(&path, 1024);
        assert!(file.read::<Map>()?.is_none(), "a missing file is none");
        let value = Map::from([("a".to_owned(), 1)]);
        file.write(&value)?;
        assert_eq!(file.read::<Map>()?, Some(value));
        assert!(std::fs::read_to_string(&path)?.ends_with("}\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(dir.path().join("sub"))?.permissions().mode() & 0o777, 0o700);
        }
        Ok(())
    }

    #[test]
    fn refuses_large_and_invalid_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\n  \"a\": oops }")?;
        let file = JsonFile::new(&path, 16);
        assert!(matches!(file.read::<Map>(), Err(JsonReadError::Invalid { line: 2, column: 8 })));
        std::fs::write(&path, format!("{{\"a\": {}}}", "1".repeat(20)))?;
        assert!(matches!(file.read::<Map>(), Err(JsonReadError::TooLarge { limit: 16 })));
        Ok(())
    }

    /// Read-modify-writes from many threads at once: none is lost.
    #[test]
    fn changes_under_the_lock_are_never_lost() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.json");
        std::thread::scope(|s| {
            for i in 0..8u32 {
                let path = &path;
                s.spawn(move || -> std::io::Result<()> {
                    let file = JsonFile::new(path, 1 << 20);
                    let _lock = file.lock()?;
                    let mut map = file.read::<Map>().map_err(std::io::Error::other)?.unwrap_or_default();
                    map.insert(format!("k{i}"), i);
                    file.write(&map)
                });
            }
        });
        let map = JsonFile::new(&path, 1 << 20).read::<Map>()?.unwrap_or_default();
        assert_eq!(map.len(), 8, "{map:?}");
        assert!(dir.path().join("x.json.lock").exists());
        Ok(())
    }
}

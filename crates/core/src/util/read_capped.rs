//! Reading a file the user (or another program) controls, with a size cap.
//!
//! Every input from the user's files is bounded: we read at most `limit + 1`
//! bytes, so an enormous or endless file costs nothing before it is refused.

use std::io::Read;
use std::path::Path;

/// What [`read_capped`] found.
#[derive(Debug)]
pub(crate) enum Capped {
    /// No such file.
    Missing,
    /// Larger than the limit; not read further.
    TooLarge,
    /// The whole content, with the metadata read at open time.
    Bytes(Vec<u8>, std::fs::Metadata),
}

/// Reads `path` if it has at most `limit` bytes.
pub(crate) fn read_capped(path: &Path, limit: u64) -> std::io::Result<Capped> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Capped::Missing),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Capped::TooLarge);
    }
    Ok(Capped::Bytes(bytes, meta))
}

/// The last whole lines of `path` within its final `max_bytes` bytes (a
/// log tail: however large the file grows, this reads a bounded amount).
/// A missing file has no lines.
pub fn tail_lines(path: &Path, max_bytes: u64) -> std::io::Result<Vec<String>> {
    use std::io::{Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_whole_lines_only() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        assert!(tail_lines(&path, 10)?.is_empty());
        std::fs::write(&path, "first line\nsecond\nthird\n")?;
        assert_eq!(tail_lines(&path, 1000)?, vec!["first line", "second", "third"]);
        assert_eq!(tail_lines(&path, 14)?, vec!["second", "third"]);
        Ok(())
    }

    #[test]
    fn caps_and_reports_missing() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("f");
        assert!(matches!(read_capped(&path, 4)?, Capped::Missing));
        std::fs::write(&path, b"1234")?;
        assert!(matches!(read_capped(&path, 4)?, Capped::Bytes(b, _) if b == b"1234"));
        std::fs::write(&path, b"12345")?;
        assert!(matches!(read_capped(&path, 4)?, Capped::TooLarge));
        Ok(())
    }
}

//! Errors that make a whole config file unreadable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a config file could not be read at all. Per-server problems are not
/// errors of the file: they mark only that server as invalid.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file is larger than we are willing to parse.
    #[error("{} is larger than {limit} bytes; refusing to read it", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    /// A variable of the home's `.env` expands beyond the bounds of
    /// [`crate::hermes::dotenv`] (an expansion bomb): refused whole, as a half-read
    /// `.env` would give servers the wrong values.
    #[error("{}:{line}: `{key}` expands to more than {limit} bytes; refusing this file's variables", path.display())]
    EnvTooLarge { path: PathBuf, key: String, line: usize, limit: usize },
    /// The file is not UTF-8 text.
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    /// YAML syntax error, with its position (1-based; 0 when unknown).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax { path: PathBuf, line: u64, column: u64, message: String },
    /// Valid YAML of the wrong shape (e.g. `mcp_servers` is a list).
    #[error("{}:{line}: {message}", path.display())]
    Shape { path: PathBuf, line: u64, message: String },
}

/// A parse error before the file path is attached.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DocumentError {
    Syntax { line: u64, column: u64, message: String },
    Shape { line: u64, message: String },
}

impl DocumentError {
    pub(crate) fn at(self, path: &Path) -> ConfigError {
        let path = path.to_path_buf();
        match self {
            Self::Syntax { line, column, message } => ConfigError::Syntax { path, line, column, message },
            Self::Shape { line, message } => ConfigError::Shape { path, line, message },
        }
    }
}

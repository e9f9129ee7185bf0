//! The agent's `config.yaml`: read leniently, then validated per server.
//!
//! Two stages, so that one bad entry never hides the others:
//! 1. [`raw`] parses the YAML document. Only a syntax error or a top level of
//!    the wrong shape fails the whole file; every server entry is kept as a
//!    generic value with its line number, and unknown keys are ignored.
//! 2. [`model`] expands `${VAR}` placeholders (environment + `<home>/.env`) and
//!    validates each entry on its own into a [`ServerConfig`], or a reason why
//!    it is invalid.

mod error;
mod model;
mod raw;

use std::sync::Arc;

pub use error::ConfigError;
pub(crate) use model::DEFAULT_OAUTH_TIMEOUT_SECS;
pub use model::{AuthKind, EnvRef, HeaderAuth, OAuthSettings, RedirectKind, ServerConfig, ServerEntry, SignInFlow};

use crate::hermes::dotenv;
use crate::hermes::home::Home;
use crate::hermes::interpolate::EnvScope;
use crate::util::read_capped::{Capped, read_capped};

/// Config files above this size are refused rather than parsed.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The servers of one home's config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigLoad {
    /// Every entry of `mcp_servers`, in file order; invalid ones carry a reason.
    pub servers: Vec<ServerEntry>,
    /// The config file does not exist (the list is empty then).
    pub missing: bool,
}

/// Reads and validates `<home>/config.yaml`, expanding variables from the
/// process environment and `<home>/.env` as the agent does.
///
/// A missing file is an empty list (`missing: true`), not an error.
pub fn load_home_config(home: &Home) -> Result<ConfigLoad, ConfigError> {
    let path = home.config_path();
    let text = match read_bounded(&path)? {
        Some(text) => text,
        None => return Ok(ConfigLoad { servers: Vec::new(), missing: true }),
    };
    let entries = raw::parse_document(&text).map_err(|e| e.at(&path))?;
    let dotenv_pairs = match read_bounded(&home.env_path()) {
        Ok(Some(text)) => dotenv::parse(&text, &|name| std::env::var(name).ok()).map_err(|e| {
            ConfigError::EnvTooLarge { path: home.env_path(), key: e.key, line: e.line, limit: e.limit }
        })?,
        Ok(None) => Vec::new(),
        Err(e) => {
            tracing::warn!(path = %home.env_path().display(), error = %e, "ignoring unreadable .env");
            Vec::new()
        }
    };
    let scope = EnvScope::from_process_and(dotenv_pairs);
    let servers = entries.into_iter().map(|raw| model::validate(raw, &scope)).collect();
    Ok(ConfigLoad { servers, missing: false })
}

/// The two stages of [`load_home_config`] without the files: the document's
/// text validated with the variables of `scope` (for the fuzzing facade).
pub(crate) fn servers_from_text(text: &str, scope: &EnvScope) -> Result<Vec<ServerEntry>, error::DocumentError> {
    let entries = raw::parse_document(text)?;
    Ok(entries.into_iter().map(|raw| model::validate(raw, scope)).collect())
}

/// Reads a UTF-8 file of at most [`MAX_CONFIG_BYTES`]; `None` when absent.
fn read_bounded(path: &std::path::Path) -> Result<Option<String>, ConfigError> {
    let bytes = match read_capped(path, MAX_CONFIG_BYTES) {
        Ok(Capped::Missing) => return Ok(None),
        Ok(Capped::TooLarge) => {
            return Err(ConfigError::TooLarge { path: path.to_path_buf(), limit: MAX_CONFIG_BYTES });
        }
        Ok(Capped::Bytes(bytes, _)) => bytes,
        Err(source) => return Err(ConfigError::Io { path: path.to_path_buf(), source: Arc::new(source) }),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| ConfigError::NotUtf8 { path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expansion_bomb_in_dotenv_is_refused_naming_the_file_and_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.yaml"), "mcp_servers:\n  a:\n    url: https://a/${W40}\n")
            .expect("write");
        let mut bomb = "W0=0123456789abcdef\n".to_owned();
        for i in 1..=40 {
            bomb.push_str(&format!("W{i}=${{W{}}}${{W{}}}\n", i - 1, i - 1));
        }
        std::fs::write(dir.path().join(".env"), bomb).expect("write");
        let home = Home { profile: None, path: dir.path().to_path_buf() };
        let started = std::time::Instant::now();
        let err = load_home_config(&home).expect_err("refused");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
        assert_eq!(
            err.to_string(),
            format!(
                "{}:14: `W13` expands to more than 65536 bytes; refusing this file's variables",
                home.env_path().display()
            )
        );
    }
}

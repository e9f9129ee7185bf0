//! The app's own small settings file (not the agent's config).
//!
//! Holds what must stay the same across runs, above all the loopback
//! redirect port: registrations name `http://127.0.0.1:PORT/callback`
//! exactly, so a port that drifted would break every one of them. The file
//! is JSON, written atomically; keys we don't know are kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::util::atomic_file::{ensure_private_dir, write_private};
use crate::util::read_capped::{Capped, read_capped};

/// The settings we keep.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppSettings {
    /// The loopback port every sign-in redirects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_port: Option<u16>,
    /// Where credentials are kept: `keychain` (default) or `file`, an
    /// explicit opt-in for machines without a keychain (plain 0600 file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_store: Option<String>,
    /// `mcp-auth proxy --connect` may open the browser to sign in (default:
    /// no, it prints the URL on stderr): a proxy is started by another
    /// program, which should not make browsers appear unless allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy_opens_browser: bool,
    /// Settings of newer versions, kept as they are.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Where the settings live.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    path: PathBuf,
}

/// Why the settings could not be saved.
#[derive(Debug, thiserror::Error)]
#[error("cannot save settings to {}", path.display())]
pub struct SettingsError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl SettingsFile {
    /// The settings at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The per-user default: `<config dir>/mcp-auth-tray/settings.json`
    /// (`~/.config` on Linux, `~/Library/Application Support` on macOS,
    /// `%APPDATA%` on Windows).
    pub fn default_location() -> Option<Self> {
        dirs::config_dir().map(|d| Self::at(d.join("mcp-auth-tray").join("settings.json")))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved settings; defaults when the file is missing or unreadable
    /// (an unreadable file is logged, never fatal).
    pub fn load(&self) -> AppSettings {
        match read_capped(&self.path, 64 * 1024) {
            Ok(Capped::Bytes(bytes, _)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "settings file is not valid; using defaults");
                AppSettings::default()
            }),
            Ok(Capped::Missing) => AppSettings::default(),
            Ok(Capped::TooLarge) | Err(_) => {
                tracing::warn!(path = %self.path.display(), "settings file unreadable; using defaults");
                AppSettings::default()
            }
        }
    }

    /// Saves `settings` atomically (0600, folder 0700).
    pub fn save(&self, settings: &AppSettings) -> Result<(), SettingsError> {
        let err = |source| SettingsError { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            ensure_private_dir(dir).map_err(err)?;
        }
        let bytes = serde_json::to_vec_pretty(settings).map_err(|e| err(std::io::Error::other(e)))?;
        write_private(&self.path, &bytes).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_keys() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = SettingsFile::at(dir.path().join("sub").join("settings.json"));
        assert_eq!(file.load(), AppSettings::default());
        std::fs::create_dir_all(dir.path().join("sub"))?;
        std::fs::write(file.path(), r#"{"redirect_port": 4242, "future": {"x": 1}}"#)?;
        let mut s = file.load();
        assert_eq!(s.redirect_port, Some(4242));
        s.redirect_port = Some(5000);
        file.save(&s)?;
        let text = std::fs::read_to_string(file.path())?;
        assert!(text.contains("\"future\""), "{text}");
        assert_eq!(file.load().redirect_port, Some(5000));
        std::fs::write(file.path(), "not json")?;
        assert_eq!(file.load(), AppSettings::default());
        Ok(())
    }
}

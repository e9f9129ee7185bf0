//! The app's own small settings file (not the agent's config).
//!
//! Holds what must stay the same across runs, above all the loopback
//! redirect port: registrations name `http://127.0.0.1:PORT/callback`
//! exactly, so a port that drifted would break every one of them. The file
//! is JSON, read bounded and written atomically under its lock
//! ([`JsonFile`]); keys we don't know are kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::util::json_file::JsonFile;

/// Largest settings file read.
const MAX_BYTES: u64 = 64 * 1024;

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
        match self.file().read() {
            Ok(settings) => settings.unwrap_or_default(),
            Err(e) => {
                let e = crate::util::text::error_text(&e);
                tracing::warn!(path = %self.path.display(), error = %e, "settings file unreadable; using defaults");
                AppSettings::default()
            }
        }
    }

    /// Saves `settings` atomically (0600, folder 0700), under the file's lock.
    pub fn save(&self, settings: &AppSettings) -> Result<(), SettingsError> {
        let err = |source| SettingsError { path: self.path.clone(), source };
        let file = self.file();
        let _lock = file.lock().map_err(err)?;
        file.write(settings).map_err(err)
    }

    fn file(&self) -> JsonFile<'_> {
        JsonFile::new(&self.path, MAX_BYTES)
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

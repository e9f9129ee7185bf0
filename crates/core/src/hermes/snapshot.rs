//! Everything the app knows about the agent's configuration at one moment.
//!
//! A [`SnapshotLoader`] reads every home (default + profiles) and remembers the
//! last list of servers that loaded. When a config file later becomes
//! unreadable, the snapshot keeps that last good list and carries the error
//! beside it, so a typo in an editor never blanks the tray.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::hermes::config::{ConfigError, ServerEntry, load_home_config};
use crate::hermes::home::{HermesRoot, Home};

/// The state of one home's config.
#[derive(Debug, Clone)]
pub struct HomeSnapshot {
    /// Which home this is.
    pub home: Home,
    /// Its servers, in file order (the last good list when `error` is set).
    pub servers: Vec<ServerEntry>,
    /// `config.yaml` does not exist.
    pub config_missing: bool,
    /// The config file could not be read this time.
    pub error: Option<ConfigError>,
}

/// All homes under one root.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The Hermes root folder.
    pub root: PathBuf,
    /// The default home first, then the profiles.
    pub homes: Vec<HomeSnapshot>,
}

/// Loads snapshots, keeping each home's last good server list.
#[derive(Debug, Default)]
pub struct SnapshotLoader {
    last_good: HashMap<PathBuf, Vec<ServerEntry>>,
}

impl SnapshotLoader {
    /// A loader with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every home under `root` now.
    pub fn load(&mut self, root: &HermesRoot) -> Snapshot {
        let homes = root.homes().into_iter().map(|home| self.load_home(home)).collect();
        Snapshot { root: root.path().to_path_buf(), homes }
    }

    fn load_home(&mut self, home: Home) -> HomeSnapshot {
        match load_home_config(&home) {
            Ok(load) => {
                self.last_good.insert(home.path.clone(), load.servers.clone());
                HomeSnapshot { home, servers: load.servers, config_missing: load.missing, error: None }
            }
            Err(error) => {
                tracing::info!(%error, "config unreadable; keeping the last good server list");
                let servers = self.last_good.get(&home.path).cloned().unwrap_or_default();
                HomeSnapshot { home, servers, config_missing: false, error: Some(error) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_last_good_list_when_the_file_breaks() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = HermesRoot::at(dir.path());
        let config = dir.path().join("config.yaml");
        let mut loader = SnapshotLoader::new();

        let snap = loader.load(&root);
        assert!(snap.homes[0].config_missing);
        assert!(snap.homes[0].servers.is_empty());

        std::fs::write(&config, "mcp_servers:\n  a:\n    command: x\n")?;
        assert_eq!(loader.load(&root).homes[0].servers.len(), 1);

        std::fs::write(&config, "mcp_servers:\n  a: [\n")?;
        let snap = loader.load(&root);
        assert_eq!(snap.homes[0].servers.len(), 1, "last good list kept");
        assert!(matches!(snap.homes[0].error, Some(ConfigError::Syntax { .. })));

        std::fs::write(&config, "mcp_servers:\n  b:\n    command: x\n  c:\n    command: y\n")?;
        let snap = loader.load(&root);
        assert!(snap.homes[0].error.is_none());
        assert_eq!(snap.homes[0].servers.len(), 2);
        Ok(())
    }
}

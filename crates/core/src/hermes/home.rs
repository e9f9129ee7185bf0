//! Where the agent keeps its data: the Hermes root and its profiles.
//!
//! Mirrors `hermes_constants.py`: the home is `$HERMES_HOME`, else `~/.hermes`
//! (`%LOCALAPPDATA%\hermes` on Windows). Profiles live in `<root>/profiles/<id>`
//! and each is a home of its own (own `config.yaml`, `.env`, `mcp-tokens/`).
//! When `HERMES_HOME` itself points at a profile, the root is found the way the
//! agent finds it, so every profile is still listed.

use std::path::{Path, PathBuf};

/// The folder that holds the default home and the `profiles/` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HermesRoot {
    root: PathBuf,
}

/// One agent home: the default one (`profile: None`) or a named profile.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Home {
    /// `None` for the default home, else the profile id.
    pub profile: Option<String>,
    /// The home folder (holds `config.yaml`, `.env`, `mcp-tokens/`).
    pub path: PathBuf,
}

impl Home {
    /// The agent's config file in this home.
    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.yaml")
    }

    /// The `.env` file whose variables the agent adds to its environment.
    pub fn env_path(&self) -> PathBuf {
        self.path.join(".env")
    }

    /// The folder of the agent's own OAuth token files.
    pub fn tokens_dir(&self) -> PathBuf {
        self.path.join("mcp-tokens")
    }

    /// The profile name shown to people: the id, or "default".
    pub fn display_profile(&self) -> &str {
        self.profile.as_deref().unwrap_or("default")
    }
}

/// Whether `id` is a valid profile id: `[a-z0-9][a-z0-9_-]{0,63}` (the agent's rule).
pub fn is_profile_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit() => {}
        _ => return false,
    }
    bytes.len() <= 64
        && bytes[1..].iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

impl HermesRoot {
    /// Resolve the root from an explicit `--hermes-home`, else `$HERMES_HOME`,
    /// else the platform default.
    pub fn resolve(explicit: Option<&Path>) -> Self {
        let env_home = std::env::var_os("HERMES_HOME").map(PathBuf::from).filter(|p| !p.as_os_str().is_empty());
        Self::resolve_from(explicit, env_home.as_deref(), &platform_default_home())
    }

    /// Pure form of [`HermesRoot::resolve`], for tests.
    ///
    /// A home under the native default is served from the native root; a path
    /// `<x>/profiles/<id>` elsewhere has `<x>` as root (Docker layouts); any
    /// other path is the root itself.
    pub fn resolve_from(explicit: Option<&Path>, env_home: Option<&Path>, native: &Path) -> Self {
        let Some(home) = explicit.or(env_home) else {
            return Self { root: native.to_path_buf() };
        };
        if home.starts_with(native) {
            return Self { root: native.to_path_buf() };
        }
        if let Some(parent) = home.parent()
            && parent.file_name().is_some_and(|n| n == "profiles")
            && let Some(grand) = parent.parent()
        {
            return Self { root: grand.to_path_buf() };
        }
        Self { root: home.to_path_buf() }
    }

    /// A root at exactly this folder.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The folder holding the profiles.
    pub fn profiles_dir(&self) -> PathBuf {
        self.root.join("profiles")
    }

    /// The default home followed by every profile, sorted by id. Folders whose
    /// names are not valid profile ids are skipped, as the agent skips them.
    pub fn homes(&self) -> Vec<Home> {
        let mut homes = vec![Home { profile: None, path: self.root.clone() }];
        let mut profiles: Vec<Home> = std::fs::read_dir(self.profiles_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| {
                let id = entry.file_name().into_string().ok()?;
                is_profile_id(&id).then(|| Home { profile: Some(id), path: entry.path() })
            })
            .collect();
        profiles.sort();
        homes.append(&mut profiles);
        homes
    }
}

/// `~/.hermes`, or `%LOCALAPPDATA%\hermes` on Windows.
fn platform_default_home() -> PathBuf {
    if cfg!(windows) {
        if let Some(local) = std::env::var_os("LOCALAPPDATA").filter(|v| !v.is_empty()) {
            return PathBuf::from(local).join("hermes");
        }
        return user_home().join("AppData").join("Local").join("hermes");
    }
    user_home().join(".hermes")
}

fn user_home() -> PathBuf {
    std::env::home_dir().unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use rstest::rstest;

    #[rstest]
    #[case(None, None, "/home/u/.hermes")]
    #[case(None, Some("/home/u/.hermes/profiles/coder"), "/home/u/.hermes")]
    #[case(None, Some("/opt/data"), "/opt/data")]
    #[case(None, Some("/opt/data/profiles/coder"), "/opt/data")]
    #[case(Some("/srv/h"), Some("/opt/data"), "/srv/h")]
    fn root_resolution(#[case] explicit: Option<&str>, #[case] env: Option<&str>, #[case] want: &str) {
        let root = HermesRoot::resolve_from(explicit.map(Path::new), env.map(Path::new), Path::new("/home/u/.hermes"));
        assert_eq!(root.path(), Path::new(want));
    }

    #[rstest]
    #[case("coder", true)]
    #[case("0work_2-x", true)]
    #[case("Coder", false)]
    #[case("-x", false)]
    #[case("_x", false)]
    #[case("", false)]
    #[case("a.b", false)]
    fn profile_ids(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(is_profile_id(id), ok);
        assert_eq!(is_profile_id(&"a".repeat(64)), true);
        assert_eq!(is_profile_id(&"a".repeat(65)), false);
    }

    #[test]
    fn lists_default_home_then_sorted_valid_profiles() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        for p in ["work", "alpha", "Bad Name", ".hidden"] {
            std::fs::create_dir_all(dir.path().join("profiles").join(p))?;
        }
        std::fs::write(dir.path().join("profiles").join("afile"), b"")?;
        let homes = HermesRoot::at(dir.path()).homes();
        let ids: Vec<Option<&str>> = homes.iter().map(|h| h.profile.as_deref()).collect();
        assert_eq!(ids, vec![None, Some("alpha"), Some("work")]);
        assert_eq!(homes[1].path, dir.path().join("profiles").join("alpha"));
        Ok(())
    }
}

//! Our own list of remote servers, for those in no client's config (and not
//! in the agent's): `<config dir>/mcp-auth-tray/servers.json`.
//!
//! `{"servers": {"<name>": {"url": "https://…"}}}`, unknown keys kept on
//! rewrite; written atomically (0600 in a 0700 folder); read bounded. A
//! broken file is reported, never silently replaced: `add`/`remove` refuse
//! to write over what they could not read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::util::atomic_file::{ensure_private_dir, write_private};
use crate::util::read_capped::{Capped, read_capped};

const MAX_BYTES: u64 = 1024 * 1024;

/// One server of our list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnServer {
    pub url: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct OwnFileBody {
    #[serde(default)]
    servers: std::collections::BTreeMap<String, OwnServer>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// The list as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnList {
    body: OwnFileBody,
}

impl OwnList {
    /// `(name, url)` of every entry, sorted by name.
    pub fn servers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.body.servers.iter().map(|(n, s)| (n.as_str(), s.url.as_str()))
    }

    /// The URL of `name`.
    pub fn url_of(&self, name: &str) -> Option<&str> {
        self.body.servers.get(name).map(|s| s.url.as_str())
    }
}

/// Why the list could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum OwnListError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid server list ({reason}); fix or remove it", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{name}` is not a usable server name (letters, digits, `.`, `_`, `-`; at most 64)")]
    BadName { name: String },
    #[error("`{name}`: {reason}")]
    BadUrl { name: String, reason: String },
    #[error("`{name}` is already in the list, with another URL; remove it first")]
    Exists { name: String },
    #[error("`{name}` is not in the list")]
    NotFound { name: String },
}

/// The list's file.
#[derive(Debug, Clone)]
pub struct OwnListFile {
    path: PathBuf,
}

impl OwnListFile {
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `<config dir>/mcp-auth-tray/servers.json`, beside the settings.
    pub fn default_location() -> Option<Self> {
        dirs::config_dir().map(|d| Self::at(d.join("mcp-auth-tray").join("servers.json")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The list; a missing file is an empty list.
    pub fn load(&self) -> Result<OwnList, OwnListError> {
        let invalid = |reason: String| OwnListError::Invalid { path: self.path.clone(), reason };
        match read_capped(&self.path, MAX_BYTES) {
            Ok(Capped::Missing) => Ok(OwnList::default()),
            Ok(Capped::TooLarge) => Err(invalid("larger than 1 MiB".to_owned())),
            Ok(Capped::Bytes(bytes, _)) => serde_json::from_slice(&bytes)
                .map(|body| OwnList { body })
                .map_err(|e| invalid(format!("line {}, column {}", e.line(), e.column()))),
            Err(source) => Err(OwnListError::Read { path: self.path.clone(), source }),
        }
    }

    /// Adds `name` at `url`. The same name with the same URL again is a
    /// no-op (returns `false`); with another URL, an error.
    pub fn add(&self, name: &str, url: &str) -> Result<bool, OwnListError> {
        check_name(name)?;
        let url = check_url(name, url)?;
        let mut list = self.load()?;
        match list.body.servers.get(name) {
            Some(existing) if existing.url == url => return Ok(false),
            Some(_) => return Err(OwnListError::Exists { name: name.to_owned() }),
            None => {}
        }
        list.body.servers.insert(name.to_owned(), OwnServer { url, extra: serde_json::Map::new() });
        self.save(&list)?;
        Ok(true)
    }

    /// Removes `name`.
    pub fn remove(&self, name: &str) -> Result<(), OwnListError> {
        let mut list = self.load()?;
        if list.body.servers.remove(name).is_none() {
            return Err(OwnListError::NotFound { name: name.to_owned() });
        }
        self.save(&list)
    }

    fn save(&self, list: &OwnList) -> Result<(), OwnListError> {
        let err = |source| OwnListError::Write { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            ensure_private_dir(dir).map_err(err)?;
        }
        let mut bytes = serde_json::to_vec_pretty(&list.body).map_err(|e| err(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        write_private(&self.path, &bytes).map_err(err)
    }
}

fn check_name(name: &str) -> Result<(), OwnListError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with(['.', '-']);
    if ok { Ok(()) } else { Err(OwnListError::BadName { name: name.to_owned() }) }
}

/// An https URL, or http to a loopback host (as the MCP spec allows).
fn check_url(name: &str, text: &str) -> Result<String, OwnListError> {
    let bad = |reason: &str| OwnListError::BadUrl { name: name.to_owned(), reason: reason.to_owned() };
    let url = url::Url::parse(text.trim()).map_err(|_| bad("the URL cannot be parsed"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad("the URL has no host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(bad("use https (plain http only to this machine)")),
        _ => return Err(bad("not an http(s) URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a URL with a user name or password is not kept (it would be shown)"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn add_list_remove_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = OwnListFile::at(dir.path().join("cfg").join("servers.json"));
        assert_eq!(file.load()?, OwnList::default());
        assert!(file.add("linear", "https://mcp.linear.app/mcp")?);
        assert!(!file.add("linear", "https://mcp.linear.app/mcp")?, "the same entry again changes nothing");
        assert!(matches!(file.add("linear", "https://other.example/mcp"), Err(OwnListError::Exists { .. })));
        file.add("local", "http://127.0.0.1:8080/mcp")?;
        let list = file.load()?;
        let got: Vec<_> = list.servers().collect();
        assert_eq!(got, vec![("linear", "https://mcp.linear.app/mcp"), ("local", "http://127.0.0.1:8080/mcp")]);
        file.remove("linear")?;
        assert_eq!(file.load()?.url_of("linear"), None);
        assert!(matches!(file.remove("linear"), Err(OwnListError::NotFound { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(file.path())?.permissions().mode() & 0o777, 0o600);
        }
        Ok(())
    }

    #[test]
    fn unknown_keys_survive_and_a_broken_file_is_never_overwritten() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = OwnListFile::at(dir.path().join("servers.json"));
        std::fs::write(file.path(), r#"{"future": 1, "servers": {"a": {"url": "https://a.example/", "note": "x"}}}"#)?;
        file.add("b", "https://b.example/mcp")?;
        let text = std::fs::read_to_string(file.path())?;
        assert!(text.contains("\"future\": 1") && text.contains("\"note\": \"x\""), "{text}");
        std::fs::write(file.path(), "{ not json")?;
        assert!(matches!(file.add("c", "https://c.example/"), Err(OwnListError::Invalid { .. })));
        assert_eq!(std::fs::read_to_string(file.path())?, "{ not json");
        Ok(())
    }

    #[rstest]
    #[case::plain_http("http://mcp.example/mcp", false)]
    #[case::loopback_http("http://localhost:3000/mcp", true)]
    #[case::https("https://mcp.example/mcp", true)]
    #[case::ftp("ftp://mcp.example/", false)]
    #[case::password("https://u:p@mcp.example/", false)]
    #[case::garbage("not a url", false)]
    fn urls(#[case] url: &str, #[case] ok: bool) {
        assert_eq!(check_url("x", url).is_ok(), ok);
    }

    #[rstest]
    #[case("linear", true)]
    #[case("my_server-2.prod", true)]
    #[case("", false)]
    #[case("-x", false)]
    #[case("a/b", false)]
    #[case("sp ace", false)]
    fn names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(check_name(name).is_ok(), ok);
    }
}

//! `mcp-auth setup <client>`: the change to a client's config that routes
//! its servers through us, as a diff; written only when asked.
//!
//! Invariants:
//! - The edit is made on the file's own syntax tree (JSONC: `jsonc-parser`'s
//!   CST; TOML: `toml_edit`), so comments, key order and layout outside the
//!   touched entries stay byte for byte.
//! - Only transport keys of a routed entry change (`url`, `headers`, `type`,
//!   `command`, `args`, ...); its other keys (`env`, `timeout`, `enabled`,
//!   unknown ones) stay.
//! - Idempotent: an entry that already runs `mcp-auth proxy` (or, for Claude
//!   Code, asks `mcp-auth headers`) is left alone, so a second run changes
//!   nothing and writes nothing.
//! - Writing: the file must still be what the plan was made from; a
//!   timestamped copy is made first (`<file>.mcp-auth-backup-<UTC time>`),
//!   then the new text goes to a temp file in the same folder, synced, and is
//!   renamed over the original, keeping its permissions: the client sees the
//!   old file or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jsonc_parser::cst::{CstInputValue, CstObject, CstObjectProp, CstRootNode};

use super::paths::{ConfigLocation, LocationEnv, Platform, Shape, config_locations};
use super::read::{MAX_CONFIG_BYTES, parse_text};
use super::{ClientKind, Routing, Transport};
use crate::util::read_capped::{Capped, read_capped};
use crate::util::secret::SecretString;

/// What to change.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    /// The file to edit (see [`setup_location`]).
    pub location: ConfigLocation,
    /// Entry names to route; empty: every remote entry not routed yet.
    pub servers: Vec<String>,
    /// How the client starts us: `mcp-auth`, or the full path of this binary
    /// (GUI clients do not see the shell's `PATH`).
    pub program: String,
}

/// What happens to one server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum SetupAction {
    /// An existing entry now goes through us.
    Routed { name: String, url: String },
    /// A new entry, for a server of the agent or our list.
    Added { name: String, url: String },
    /// Already through us: untouched.
    AlreadyRouted { name: String },
}

/// The planned change of one file. Its `Debug` leaves the texts out: they
/// hold the client's header and environment secrets.
#[derive(Clone)]
pub struct SetupPlan {
    pub path: PathBuf,
    /// The file as read (empty when it does not exist yet).
    pub old: String,
    pub new: String,
    pub exists: bool,
    pub actions: Vec<SetupAction>,
    /// Header and environment values of the file, hidden in [`SetupPlan::diff`].
    secrets: Vec<SecretString>,
}

impl std::fmt::Debug for SetupPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupPlan")
            .field("path", &self.path)
            .field("exists", &self.exists)
            .field("changes", &self.changes())
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

impl SetupPlan {
    /// Whether writing would change the file.
    pub fn changes(&self) -> bool {
        self.old != self.new
    }

    /// The change as a unified diff (empty when there is none), with every
    /// header and environment value of the file shown as `[redacted]`.
    pub fn diff(&self) -> String {
        if !self.changes() {
            return String::new();
        }
        let name = self.path.display().to_string();
        let (old, new) = (self.redacted(&self.old), self.redacted(&self.new));
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .context_radius(3)
            .header(&if self.exists { name.clone() } else { "/dev/null".to_owned() }, &name)
            .to_string()
    }

    fn redacted(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            // Very short values would blot out ordinary text; they are no
            // credential anyway.
            if secret.expose().chars().count() >= 4 {
                text = text.replace(secret.expose(), crate::view::status::REDACTED);
            }
        }
        text
    }
}

/// Why a setup cannot be planned or written.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} cannot be changed safely: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error("`{name}` is a local command in {client}'s config, not a remote server")]
    NotRemote { name: String, client: &'static str },
    #[error("no server `{name}` in {client}'s config, the agent's or our list")]
    NotFound { name: String, client: &'static str },
    #[error("{} changed while the change was prepared; run the command again", path.display())]
    Changed { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The user-level file `setup` edits for `client`: Claude Code's
/// `~/.claude.json`, ...; for opencode the `.jsonc` when only that exists.
pub fn setup_location(platform: Platform, env: &LocationEnv, client: ClientKind) -> Option<ConfigLocation> {
    let all: Vec<_> = config_locations(platform, env).into_iter().filter(|l| l.client == client).collect();
    all.iter().find(|l| l.path.exists()).or(all.first()).cloned()
}

/// Plans the change. `resolve` gives the URL of a server named on the
/// command line that the file does not have (the agent's or our list's).
pub fn plan(request: &SetupRequest, resolve: &dyn Fn(&str) -> Option<url::Url>) -> Result<SetupPlan, SetupError> {
    let location = &request.location;
    let path = location.path.clone();
    let (old, exists) = match read_capped(&path, MAX_CONFIG_BYTES) {
        Ok(Capped::Missing) => (String::new(), false),
        Ok(Capped::TooLarge) => {
            return Err(SetupError::Unusable { path, reason: "larger than the read limit".to_owned() });
        }
        Ok(Capped::Bytes(bytes, _)) => match String::from_utf8(bytes) {
            Ok(text) => (text, true),
            Err(_) => return Err(SetupError::Unusable { path, reason: "not UTF-8 text".to_owned() }),
        },
        Err(source) => return Err(SetupError::Read { path, source }),
    };
    let read = parse_text(location, &old);
    if exists && read.servers.is_empty() && !read.problems.is_empty() {
        let reason = read.problems.join("; ");
        return Err(SetupError::Unusable { path, reason });
    }
    // Only the user-wide entries: a project's list is the project's business.
    let entries: Vec<_> = read.servers.iter().filter(|s| s.project == location.project).collect();
    let client = location.client.label();
    let mut work: Vec<(String, url::Url, bool)> = Vec::new();
    let mut actions = Vec::new();
    let names: Vec<String> = if request.servers.is_empty() {
        entries.iter().filter(|s| s.is_remote() && s.enabled).map(|s| s.name.clone()).collect()
    } else {
        request.servers.clone()
    };
    for name in names {
        match entries.iter().find(|s| s.name == name) {
            Some(s) if already_routed(location.client, &s.routing) => {
                actions.push(SetupAction::AlreadyRouted { name });
            }
            Some(s) => match (&s.url, s.transport) {
                (Some(url), _) => {
                    actions.push(SetupAction::Routed { name: name.clone(), url: url.to_string() });
                    work.push((name, url.clone(), true));
                }
                (None, Transport::Stdio) => return Err(SetupError::NotRemote { name, client }),
                (None, _) => return Err(SetupError::NotFound { name, client }),
            },
            None => match resolve(&name) {
                Some(url) => {
                    actions.push(SetupAction::Added { name: name.clone(), url: url.to_string() });
                    work.push((name, url, false));
                }
                None => return Err(SetupError::NotFound { name, client }),
            },
        }
    }
    let new = if work.is_empty() {
        old.clone()
    } else if location.shape == Shape::Codex {
        edit_toml(&old, &work, &request.program)
            .map_err(|reason| SetupError::Unusable { path: path.clone(), reason })?
    } else {
        edit_jsonc(location, &old, &work, &request.program)
            .map_err(|reason| SetupError::Unusable { path: path.clone(), reason })?
    };
    let mut secrets: Vec<SecretString> =
        read.servers.iter().flat_map(|s| s.headers.iter().chain(&s.env).map(|(_, v)| v.clone())).collect();
    // Longest first, so a value containing another is hidden whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
    Ok(SetupPlan { path, old, new, exists, actions, secrets })
}

/// Claude Code counts as routed only through `headersHelper` or the proxy;
/// every other client only through the proxy.
fn already_routed(client: ClientKind, routing: &Routing) -> bool {
    match routing {
        Routing::Proxy { .. } => true,
        Routing::Headers { .. } => client == ClientKind::ClaudeCode,
        Routing::Direct => false,
    }
}

/// Keys that say how a client reaches a server, in any client's spelling.
const TRANSPORT_KEYS: [&str; 9] =
    ["type", "url", "httpUrl", "serverUrl", "transport", "headers", "headersHelper", "command", "args"];

fn quoted(program: &str) -> String {
    if program.contains([' ', '"', '\'']) {
        format!("\"{}\"", program.replace('"', "\\\""))
    } else {
        program.to_owned()
    }
}

/// The keys a routed entry gets, per client.
fn routed_keys(client: ClientKind, program: &str, url: &url::Url) -> Vec<(String, CstInputValue)> {
    let s = |v: &str| CstInputValue::String(v.to_owned());
    let args = CstInputValue::Array(vec![s("proxy"), s(url.as_str())]);
    match client {
        ClientKind::ClaudeCode => vec![
            ("type".to_owned(), s("http")),
            ("url".to_owned(), s(url.as_str())),
            ("headersHelper".to_owned(), s(&format!("{} headers {}", quoted(program), url.as_str()))),
        ],
        ClientKind::VsCode => {
            vec![("type".to_owned(), s("stdio")), ("command".to_owned(), s(program)), ("args".to_owned(), args)]
        }
        ClientKind::Opencode => vec![
            ("type".to_owned(), s("local")),
            ("command".to_owned(), CstInputValue::Array(vec![s(program), s("proxy"), s(url.as_str())])),
        ],
        ClientKind::ClaudeDesktop | ClientKind::Cursor | ClientKind::GeminiCli | ClientKind::Codex => {
            vec![("command".to_owned(), s(program)), ("args".to_owned(), args)]
        }
    }
}

pub(crate) fn edit_jsonc(
    location: &ConfigLocation,
    text: &str,
    work: &[(String, url::Url, bool)],
    program: &str,
) -> Result<String, String> {
    let root = CstRootNode::parse(text, &jsonc_parser::ParseOptions::default())
        .map_err(|e| format!("cannot parse it: {}", e.kind()))?;
    let top = root.object_value_or_set();
    let key = match location.shape {
        Shape::VsCode => "servers",
        Shape::Opencode => "mcp",
        _ => "mcpServers",
    };
    // A key given twice counts by its last occurrence, as readers take it.
    let map = match named(&top, key).pop().and_then(|p| p.object_value()) {
        Some(map) => map,
        None => top.object_value_or_set(key),
    };
    for (name, url, existing) in work {
        let keys = routed_keys(location.client, program, url);
        let entry = match (existing, named(&map, name).pop().and_then(|p| p.object_value())) {
            (true, Some(entry)) => entry,
            _ => {
                map.append(name, CstInputValue::Object(keys));
                continue;
            }
        };
        // Claude Code keeps its direct HTTP entry (headers, too: the
        // helper's Authorization wins over a static one).
        let keep: &[&str] = if location.client == ClientKind::ClaudeCode { &["headers"] } else { &[] };
        for k in TRANSPORT_KEYS {
            if !keep.contains(&k) && !keys.iter().any(|(n, _)| n == k) {
                named(&entry, k).into_iter().for_each(CstObjectProp::remove);
            }
        }
        if location.client == ClientKind::ClaudeCode {
            named(&entry, "env").into_iter().for_each(CstObjectProp::remove);
        }
        set_all(&entry, keys);
    }
    Ok(root.to_string())
}

/// Every property called `name`: JSON allows a key twice (readers take the
/// last), so an edit that changed only the first would leave the old value
/// in force.
fn named(entry: &CstObject, name: &str) -> Vec<CstObjectProp> {
    entry
        .properties()
        .into_iter()
        .filter(|p| p.name().and_then(|n| n.decoded_value().ok()).is_some_and(|n| n == name))
        .collect()
}

/// Sets each key once: the first occurrence keeps its place (and comments),
/// later duplicates go.
fn set_all(entry: &CstObject, keys: Vec<(String, CstInputValue)>) {
    for (k, v) in keys {
        let mut props = named(entry, &k).into_iter();
        match props.next() {
            Some(first) => {
                first.set_value(v);
                props.for_each(CstObjectProp::remove);
            }
            None => {
                entry.append(&k, v);
            }
        }
    }
}

pub(crate) fn edit_toml(text: &str, work: &[(String, url::Url, bool)], program: &str) -> Result<String, String> {
    use toml_edit::{Array, DocumentMut, Item, Table, value};
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        format!("cannot parse it: {}", e.message().lines().next().unwrap_or_default())
    })?;
    if !doc.contains_key("mcp_servers") {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert("mcp_servers", Item::Table(t));
    }
    let servers = doc["mcp_servers"].as_table_like_mut().ok_or("`mcp_servers` is not a table")?;
    for (name, url, _) in work {
        if servers.get(name).and_then(Item::as_table_like).is_none() {
            servers.insert(name, Item::Table(Table::new()));
        }
        let entry = servers.get_mut(name).and_then(Item::as_table_like_mut).ok_or("an entry is not a table")?;
        // A comment above a removed key moves to the first new one.
        let mut comment = None;
        for k in ["url", "bearer_token_env_var", "http_headers", "env_http_headers", "command", "args"] {
            if comment.is_none() {
                comment = entry.key(k).and_then(|key| key.leaf_decor().prefix()).cloned();
            }
            entry.remove(k);
        }
        entry.insert("command", value(program));
        if let (Some(prefix), Some(mut key)) = (comment, entry.key_mut("command")) {
            key.leaf_decor_mut().set_prefix(prefix);
        }
        let mut args = Array::new();
        args.push("proxy");
        args.push(url.as_str());
        entry.insert("args", value(args));
    }
    Ok(doc.to_string())
}

/// `YYYYMMDDTHHMMSSZ` of `now`.
fn utc_stamp(now: SystemTime) -> String {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let (y, m, d) = crate::app::log_file::civil_date(secs / 86_400);
    let rest = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

/// Writes `plan` (nothing when it changes nothing): backup, then an atomic
/// replace. Returns the backup's path (`None` for a new file or no change).
pub fn apply(plan: &SetupPlan, now: SystemTime) -> Result<Option<PathBuf>, SetupError> {
    if !plan.changes() {
        return Ok(None);
    }
    let path = &plan.path;
    let current = match read_capped(path, MAX_CONFIG_BYTES) {
        Ok(Capped::Missing) => None,
        Ok(Capped::Bytes(bytes, meta)) => Some((bytes, meta)),
        Ok(Capped::TooLarge) => return Err(SetupError::Changed { path: path.clone() }),
        Err(source) => return Err(SetupError::Read { path: path.clone(), source }),
    };
    let still = match &current {
        None => !plan.exists,
        Some((bytes, _)) => plan.exists && bytes.as_slice() == plan.old.as_bytes(),
    };
    if !still {
        return Err(SetupError::Changed { path: path.clone() });
    }
    let werr = |source| SetupError::Write { path: path.clone(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(werr)?;
    let backup = match &current {
        Some((bytes, meta)) => Some(write_backup(path, bytes, meta, now).map_err(werr)?),
        None => None,
    };
    let mut tmp = tempfile::Builder::new().prefix(".mcp-auth-setup-").suffix(".tmp").tempfile_in(dir).map_err(werr)?;
    tmp.write_all(plan.new.as_bytes()).map_err(werr)?;
    if let Some((_, meta)) = &current {
        tmp.as_file().set_permissions(meta.permissions()).map_err(werr)?;
    }
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(backup)
}

fn write_backup(path: &Path, bytes: &[u8], meta: &std::fs::Metadata, now: SystemTime) -> std::io::Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stamp = utc_stamp(now);
    for n in 0..100 {
        let suffix = if n == 0 { String::new() } else { format!("-{n}") };
        let backup = path.with_file_name(format!("{name}.mcp-auth-backup-{stamp}{suffix}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&backup) {
            Ok(mut file) => {
                // Same permissions as the original before any byte lands.
                file.set_permissions(meta.permissions())?;
                file.write_all(bytes)?;
                file.sync_all()?;
                return Ok(backup);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many backups with the same time stamp"))
}

#[cfg(test)]
mod tests;

//! Reading the clients' config files: raw and lenient first, then validated.
//!
//! JSON files are read with a JSONC parser (comments, trailing commas) since
//! VS Code and opencode allow them and a strict parser would call a valid
//! file broken; TOML (Codex) with `toml_edit`. Each entry is deserialised on
//! its own, so one odd entry costs only itself. Nothing here writes, and no
//! error message carries a header value: parse errors name a position, never
//! the text around it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::paths::{ConfigLocation, LocationEnv, Platform, Shape, config_locations, project_mcp_json};
use super::{ClientFile, ClientKind, ClientServer, Routing, Transport};
use crate::util::read_capped::{Capped, read_capped};
use crate::util::secret::SecretString;

/// Largest config file read. `~/.claude.json` also keeps Claude Code's
/// per-project history and grows to megabytes.
pub const MAX_CONFIG_BYTES: u64 = 32 * 1024 * 1024;

/// Most projects of `~/.claude.json` whose `.mcp.json` is read.
pub const MAX_PROJECTS: usize = 200;

/// Every client's servers on this machine, for files that exist.
pub fn read_all(platform: Platform, env: &LocationEnv) -> Vec<ClientFile> {
    let mut files = Vec::new();
    for location in config_locations(platform, env) {
        let Some(file) = read_location(&location) else { continue };
        // Claude Code's projects each may have a shared `.mcp.json`.
        let projects: Vec<PathBuf> = if location.shape == Shape::ClaudeUser {
            claude_projects(&location.path).into_iter().take(MAX_PROJECTS).collect()
        } else {
            Vec::new()
        };
        files.push(file);
        files.extend(projects.iter().filter_map(|p| read_location(&project_mcp_json(p))));
    }
    files
}

/// The file at `location`, or `None` when it does not exist.
pub fn read_location(location: &ConfigLocation) -> Option<ClientFile> {
    let text = match read_capped(&location.path, MAX_CONFIG_BYTES) {
        Ok(Capped::Missing) => return None,
        Ok(Capped::TooLarge) => {
            return Some(broken(location, format!("larger than {} MiB; not read", MAX_CONFIG_BYTES >> 20)));
        }
        Ok(Capped::Bytes(bytes, _)) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return Some(broken(location, "not UTF-8 text".to_owned())),
        },
        Err(e) => return Some(broken(location, format!("cannot read it: {e}"))),
    };
    Some(parse_text(location, &text))
}

/// Parses `text` as the file at `location` (pure; the tests' entry point).
pub fn parse_text(location: &ConfigLocation, text: &str) -> ClientFile {
    let mut file = ClientFile { location: location.clone(), servers: Vec::new(), problems: Vec::new() };
    let entries: Vec<(Option<PathBuf>, String, RawEntry)> = match location.shape {
        Shape::Codex => match codex_entries(text) {
            Ok(entries) => entries.into_iter().map(|(n, e)| (location.project.clone(), n, e)).collect(),
            Err(problem) => return broken(location, problem),
        },
        shape => {
            let root = match parse_jsonc(text) {
                Ok(root) => root,
                Err(problem) => return broken(location, problem),
            };
            let mut maps: Vec<(Option<PathBuf>, &Value)> = Vec::new();
            let key = match shape {
                Shape::VsCode => "servers",
                Shape::Opencode => "mcp",
                _ => "mcpServers",
            };
            if let Some(map) = root.get(key) {
                maps.push((location.project.clone(), map));
            }
            if shape == Shape::ClaudeUser
                && let Some(Value::Object(projects)) = root.get("projects")
            {
                for (path, project) in projects {
                    if let Some(map) = project.get("mcpServers") {
                        maps.push((Some(PathBuf::from(path)), map));
                    }
                }
            }
            let mut entries = Vec::new();
            for (project, map) in maps {
                let Value::Object(map) = map else {
                    file.problems.push(format!("`{key}` is not an object; ignored"));
                    continue;
                };
                for (name, value) in map {
                    match RawEntry::deserialize(value) {
                        Ok(raw) => entries.push((project.clone(), name.clone(), raw)),
                        Err(e) => file.problems.push(format!("server `{name}`: {}", safe_serde_error(&e))),
                    }
                }
            }
            entries
        }
    };
    for (project, name, raw) in entries {
        match validate(location, project, &name, raw) {
            Ok(server) => file.servers.push(server),
            Err(problem) => file.problems.push(format!("server `{name}`: {problem}")),
        }
    }
    file
}

fn broken(location: &ConfigLocation, problem: String) -> ClientFile {
    ClientFile { location: location.clone(), servers: Vec::new(), problems: vec![problem] }
}

/// The project folders `~/.claude.json` knows.
fn claude_projects(path: &Path) -> Vec<PathBuf> {
    let Ok(Capped::Bytes(bytes, _)) = read_capped(path, MAX_CONFIG_BYTES) else { return Vec::new() };
    let Ok(text) = String::from_utf8(bytes) else { return Vec::new() };
    match parse_jsonc(&text) {
        Ok(Value::Object(root)) => match root.get("projects") {
            Some(Value::Object(projects)) => projects.keys().map(PathBuf::from).collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// JSON with comments and trailing commas; an empty file is an empty object.
pub(crate) fn parse_jsonc(text: &str) -> Result<Value, String> {
    match jsonc_parser::parse_to_serde_value::<Option<Value>>(text, &jsonc_parser::ParseOptions::default()) {
        Ok(None) => Ok(Value::Object(serde_json::Map::new())),
        Ok(Some(v @ Value::Object(_))) => Ok(v),
        Ok(Some(_)) => Err("the file is not a JSON object".to_owned()),
        // The parser's message names the position and kind, not the text.
        Err(e) => {
            Err(format!("cannot parse it: {} (line {}, column {})", e.kind(), e.line_display(), e.column_display()))
        }
    }
}

/// A serde error without the offending value (it could be a header secret).
fn safe_serde_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json quotes the unexpected value: `invalid type: string "…", expected …`.
    match (text.find("invalid type"), text.find(", expected")) {
        (Some(_), Some(at)) => format!("a field has the wrong type{}", &text[at..]),
        _ => "an entry of an unexpected shape".to_owned(),
    }
}

/// An entry as written, in every client's spelling. Unknown keys ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEntry {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    /// Gemini CLI's Streamable HTTP URL (`url` there is SSE).
    #[serde(rename = "httpUrl")]
    http_url: Option<String>,
    /// A string, or opencode's array (command and arguments).
    command: Option<Value>,
    args: Option<Vec<Value>>,
    headers: Option<BTreeMap<String, Value>>,
    /// `env` (most clients) or `environment` (opencode).
    #[serde(alias = "environment")]
    env: Option<BTreeMap<String, Value>>,
    #[serde(rename = "headersHelper")]
    headers_helper: Option<String>,
    enabled: Option<bool>,
    disabled: Option<bool>,
}

/// Codex's `[mcp_servers.<name>]` tables, as raw entries.
fn codex_entries(text: &str) -> Result<Vec<(String, RawEntry)>, String> {
    let doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| format!("cannot parse it: {}", first_line(e.message())))?;
    let Some(servers) = doc.get("mcp_servers") else { return Ok(Vec::new()) };
    let Some(servers) = servers.as_table_like() else { return Err("`mcp_servers` is not a table".to_owned()) };
    let string = |item: Option<&toml_edit::Item>| item.and_then(toml_edit::Item::as_str).map(str::to_owned);
    let mut out = Vec::new();
    for (name, item) in servers.iter() {
        let Some(table) = item.as_table_like() else { continue };
        let args = table
            .get("args")
            .and_then(toml_edit::Item::as_array)
            .map(|a| a.iter().map(|v| v.as_str().map_or(Value::Null, |s| Value::String(s.to_owned()))).collect());
        let map = |key: &str| {
            table.get(key).and_then(toml_edit::Item::as_table_like).map(|h| {
                h.iter()
                    .map(|(k, v)| (k.to_owned(), v.as_str().map_or(Value::Null, |s| Value::String(s.to_owned()))))
                    .collect()
            })
        };
        let (headers, env) = (map("http_headers"), map("env"));
        out.push((
            name.to_owned(),
            RawEntry {
                url: string(table.get("url")),
                command: string(table.get("command")).map(Value::String),
                args,
                headers,
                env,
                enabled: table.get("enabled").and_then(toml_edit::Item::as_bool),
                ..RawEntry::default()
            },
        ));
    }
    Ok(out)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text).trim()
}

/// Raw → model.
fn validate(
    location: &ConfigLocation,
    project: Option<PathBuf>,
    name: &str,
    raw: RawEntry,
) -> Result<ClientServer, String> {
    let argv: Vec<String> = match (&raw.command, &raw.args) {
        (Some(Value::String(c)), args) => std::iter::once(c.clone())
            .chain(args.iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)))
            .collect(),
        (Some(Value::Array(parts)), _) => parts.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        (Some(_), _) => return Err("`command` is neither a string nor a list".to_owned()),
        (None, _) => Vec::new(),
    };
    let kind = raw.kind.as_deref().map(str::to_ascii_lowercase);
    let (url_text, transport) = match (&raw.http_url, &raw.url, argv.is_empty()) {
        (Some(u), _, _) => (Some(u.as_str()), Transport::Http),
        (None, Some(u), _) => {
            let sse = kind.as_deref() == Some("sse") || (location.client == ClientKind::GeminiCli);
            (Some(u.as_str()), if sse { Transport::Sse } else { Transport::Http })
        }
        (None, None, false) => (None, Transport::Stdio),
        (None, None, true) => return Err("neither a `url` nor a `command`".to_owned()),
    };
    let mut routing = Routing::Direct;
    let mut url = match url_text {
        Some(text) => Some(parse_remote_url(text)?),
        None => None,
    };
    if transport == Transport::Stdio {
        let (r, bridged) = routing_of_argv(&argv);
        routing = r;
        url = bridged;
    }
    if let Some(helper) = &raw.headers_helper
        && let Some(target) = headers_helper_target(helper)
    {
        routing = Routing::Headers { target };
    }
    let secrets = |map: Option<BTreeMap<String, Value>>| -> Vec<(String, SecretString)> {
        map.unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, SecretString::new(v.as_str().unwrap_or_default())))
            .collect()
    };
    let (headers, env) = (secrets(raw.headers), secrets(raw.env));
    let enabled = raw.enabled.unwrap_or(true) && !raw.disabled.unwrap_or(false);
    Ok(ClientServer {
        client: location.client,
        config: location.path.clone(),
        project,
        name: name.to_owned(),
        url,
        transport,
        routing,
        headers,
        env,
        enabled,
    })
}

/// An http(s) URL, or why not (the text itself is not repeated: it may hold a key).
fn parse_remote_url(text: &str) -> Result<url::Url, String> {
    match url::Url::parse(text.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        Ok(_) => Err("the url is not an http(s) address".to_owned()),
        Err(e) => Err(format!("the url cannot be parsed ({e})")),
    }
}

/// A program's name without folder and `.exe`, lower-cased, without an npm
/// version suffix (`mcp-remote@0.1`).
fn program_name(arg: &str) -> String {
    let base = arg.rsplit(['/', '\\']).next().unwrap_or(arg).to_ascii_lowercase();
    let base = base.strip_suffix(".exe").or_else(|| base.strip_suffix(".cmd")).unwrap_or(&base).to_owned();
    match base.split_once('@') {
        Some((name, _)) if !name.is_empty() => name.to_owned(),
        _ => base,
    }
}

/// The first argument after `start` that is not an option.
fn first_operand(args: &[String]) -> Option<String> {
    args.iter().find(|a| !a.starts_with('-')).cloned()
}

/// Whether `argv` runs `mcp-auth proxy <target>` (possibly behind a wrapper
/// such as `cmd /c` or `env`), or a known bridge to a URL (`mcp-remote`).
pub(crate) fn routing_of_argv(argv: &[String]) -> (Routing, Option<url::Url>) {
    for (i, arg) in argv.iter().enumerate() {
        let program = program_name(arg);
        if program == "mcp-auth" && argv.get(i + 1).map(String::as_str) == Some("proxy") {
            let target = first_operand(&argv[i + 2..]);
            let url = target.as_deref().and_then(|t| parse_remote_url(t).ok());
            return (Routing::Proxy { target }, url);
        }
        if program == "mcp-remote" {
            let url = first_operand(&argv[i + 1..]).and_then(|t| parse_remote_url(&t).ok());
            return (Routing::Direct, url);
        }
    }
    (Routing::Direct, None)
}

/// For a `headersHelper` command line that runs `mcp-auth headers [target]`:
/// `Some(target)`.
pub(crate) fn headers_helper_target(command: &str) -> Option<Option<String>> {
    let words: Vec<String> =
        command.split_whitespace().map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_owned()).collect();
    let at = words.iter().position(|w| program_name(w) == "mcp-auth")?;
    (words.get(at + 1).map(String::as_str) == Some("headers")).then(|| first_operand(&words[at + 2..]))
}

#[cfg(test)]
mod tests;

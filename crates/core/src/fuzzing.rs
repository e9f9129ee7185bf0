//! Entry points for the `cargo fuzz` targets in `fuzz/` (not an API).
//!
//! Each function feeds arbitrary bytes to one of the parsers that read what
//! others wrote — a server's `WWW-Authenticate` header, the browser's
//! redirect, the agent's `config.yaml` and `.env`, the agent's token and
//! client files, the keychain's entries — through the same private code the
//! app runs, and checks the properties that are cheap to check. A broken
//! property is an `Err` naming it; the fuzz target turns it into a crash.
//! Panics, overflows and runaway allocations are found by the fuzzer itself.
//!
//! The module is compiled in every build (it is a few thin wrappers, with no
//! state and no behaviour of its own) rather than behind a cargo feature:
//! that way clippy checks it with the rest, and the unit test below replays
//! the seed corpus and every kept crash (`fuzz/corpus`, `fuzz/regressions`)
//! in the ordinary `cargo test`, on stable, without libFuzzer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::hermes::config::{AuthKind, servers_from_text};
use crate::hermes::interpolate::EnvScope;
use crate::hermes::layout::AgentPaths;
use crate::oauth::callback::{CallbackRouter, Delivery, IssCheck};
use crate::oauth::www_authenticate::{bearer_challenge, parse_challenges};
use crate::util::secret::SecretString;
use crate::vault::{CredentialRecord, MemoryBackend, SecretBackend, Vault, VaultKey};

/// One fuzz target: its name (the directory names under `fuzz/corpus` and
/// `fuzz/regressions`, and the binary in `fuzz/fuzz_targets`) and its check.
pub type Target = (&'static str, fn(&[u8]) -> Result<(), String>);

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    ("www_authenticate", www_authenticate),
    ("callback_query", callback_query),
    ("config", config),
    ("agent_files", agent_files),
    ("dotenv", dotenv),
    ("vault_record", vault_record),
    ("client_config", client_config),
];

/// The `WWW-Authenticate` tokenizer: it only ever cuts the input into
/// pieces, so what it returns is never longer than what it was given, every
/// scheme appears in the input, and the Bearer summary agrees with the list.
pub fn www_authenticate(data: &[u8]) -> Result<(), String> {
    let header = String::from_utf8_lossy(data);
    let challenges = parse_challenges(&header);
    let returned: usize = challenges
        .iter()
        .map(|c| {
            c.scheme.len()
                + c.token68.as_ref().map_or(0, String::len)
                + c.params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        })
        .sum();
    if returned > header.len() {
        return Err(format!("{returned} bytes returned from a {}-byte header", header.len()));
    }
    for c in &challenges {
        if c.scheme.is_empty() || !header.contains(c.scheme.as_str()) {
            return Err(format!("scheme {:?} is not in the header", c.scheme));
        }
        if let Some((name, _)) = c.params.iter().find(|(k, _)| k.is_empty() || *k != k.to_ascii_lowercase()) {
            return Err(format!("parameter name {name:?} is empty or not lower-cased"));
        }
    }
    let first = challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer"));
    let bearer = bearer_challenge([header.as_ref()]);
    match (first, &bearer) {
        (None, None) => {}
        (Some(c), Some(b)) => {
            if b.resource_metadata.as_deref() != c.param("resource_metadata") || b.error.as_deref() != c.param("error")
            {
                return Err("the Bearer summary disagrees with its challenge".to_owned());
            }
        }
        _ => return Err("the Bearer summary disagrees with the challenge list".to_owned()),
    }
    Ok(())
}

/// The redirect's query string, as the loopback listener and the tray's deep
/// link hand it over: a matched flow is gone afterwards, an unmatched one is
/// still waiting, and what the browser page and the terminal will show has
/// no control characters and a bounded length.
pub fn callback_query(data: &[u8]) -> Result<(), String> {
    let query = String::from_utf8_lossy(data);
    let router = CallbackRouter::new();
    let iss = IssCheck { issuer: "https://as.example".to_owned(), required: data.first() == Some(&b'i') };
    let pending = router.register(&SecretString::new("fuzz-state"), Some(iss));
    let delivery = router.deliver(&query);
    let (matched, shown) = match &delivery {
        Delivery::Completed => (true, None),
        Delivery::Refused(text) => (true, Some(text)),
        Delivery::UnknownState => (false, None),
        Delivery::Malformed(text) => (false, Some(text)),
    };
    let expected_waiting = usize::from(!matched);
    if router.waiting_count() != expected_waiting {
        return Err(format!("{delivery:?} left {} flows waiting", router.waiting_count()));
    }
    if let Some(text) = shown {
        if text.chars().any(char::is_control) {
            return Err(format!("control characters reach the user: {text:?}"));
        }
        if text.chars().count() > 1024 {
            return Err(format!("a {}-character message for the user", text.chars().count()));
        }
    }
    drop(pending);
    Ok(())
}

/// The config loader, from `config.yaml` text and, after a NUL byte, `.env`
/// text (no process environment: the run must not depend on the machine).
/// Server names are unique, and what validation accepts the engine can use.
pub fn config(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let (yaml, env) = text.split_once('\0').unwrap_or((&text, ""));
    let scope = EnvScope::from_pairs(dotenv_pairs(env, &|_| None).unwrap_or_default());
    let Ok(servers) = servers_from_text(yaml, &scope) else { return Ok(()) };
    for (i, server) in servers.iter().enumerate() {
        if servers[..i].iter().any(|s| s.name == server.name) {
            return Err(format!("server {:?} is listed twice", server.name));
        }
        if let Ok(cfg) = &server.config
            && let AuthKind::OAuth(oauth) = &cfg.auth
            && Duration::try_from_secs_f64(oauth.timeout_secs).is_err()
        {
            return Err(format!("oauth timeout {} is no duration", oauth.timeout_secs));
        }
    }
    Ok(())
}

/// The agent's token and client files, read by the very functions the app
/// uses (from a scratch folder: plain writes, no fsync, so it stays fast).
/// What the status calls usable, the adopter can read, and they agree on
/// the refresh token; what we write back reads as what we read.
pub fn agent_files(data: &[u8]) -> Result<(), String> {
    const MTIME: f64 = 1_700_000_000.0;
    let paths = scratch_paths()?;
    let write = |path: &std::path::Path, bytes: &[u8]| std::fs::write(path, bytes).map_err(|e| e.to_string());
    write(&paths.tokens, data)?;
    write(&paths.client, data)?;
    let summary = crate::hermes::token_file::summarize(data, MTIME);
    let tokens = crate::hermes::files::read_tokens(&paths);
    match (&summary, &tokens) {
        (Ok(_), None) => return Err("the status calls the file usable, the adopter cannot read it".to_owned()),
        (Ok(s), Some(t)) if s.has_refresh_token != t.refresh_token.is_some() => {
            return Err("the status and the adopter disagree about the refresh token".to_owned());
        }
        _ => {}
    }
    if let Some(tokens) = tokens {
        let written = serde_json::to_vec(&tokens.to_json()).map_err(|e| e.to_string())?;
        write(&paths.tokens, &written)?;
        if crate::hermes::files::read_tokens(&paths).as_ref() != Some(&tokens) {
            return Err("the tokens change when written and read back".to_owned());
        }
        if let Err(reason) = crate::hermes::token_file::summarize(&written, MTIME) {
            return Err(format!("the status rejects the token file we write: {reason}"));
        }
    }
    if let Some(client) = crate::hermes::files::read_client(&paths) {
        let written = serde_json::to_vec(&client.to_json()).map_err(|e| e.to_string())?;
        write(&paths.client, &written)?;
        if crate::hermes::files::read_client(&paths).as_ref() != Some(&client) {
            return Err("the client registration changes when written and read back".to_owned());
        }
    }
    Ok(())
}

/// One server's file names in a folder of this process, made once: in
/// memory (`/dev/shm`) where there is one, as a disk makes the target ~100
/// times slower.
fn scratch_paths() -> Result<AgentPaths, String> {
    static DIR: OnceLock<Result<tempfile::TempDir, String>> = OnceLock::new();
    let make = || tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).map_err(|e| e.to_string());
    let dir = DIR.get_or_init(make).as_ref().map_err(Clone::clone)?;
    Ok(AgentPaths::new(dir.path(), "fuzz"))
}

/// `.env` text: keys are non-empty words, and every entry takes at least
/// one line of the file.
pub fn dotenv(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| (name == "FROM_ENV").then(|| "from-env".to_owned());
    let Some(pairs) = dotenv_pairs(&text, &env) else { return Ok(()) };
    if let Some((key, _)) = pairs.iter().find(|(k, _)| k.is_empty() || k.chars().any(char::is_whitespace)) {
        return Err(format!("key {key:?} is empty or has blanks"));
    }
    let lines = text.split('\n').count();
    if pairs.len() > lines {
        return Err(format!("{} entries from {lines} lines", pairs.len()));
    }
    Ok(())
}

/// The pairs of a `.env` text; `None` when the file is refused (expansion
/// bounds).
fn dotenv_pairs(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<Vec<(String, String)>> {
    crate::hermes::dotenv::parse(text, env).ok()
}

/// Another MCP client's config file: the first byte picks the shape (Claude
/// Code, `mcpServers`, VS Code, Codex TOML, opencode), the rest is the file.
/// Properties: no panic; a header or env value never appears in a problem
/// line; routing every remote entry gives a file that parses back with each
/// of them through us and every other entry unchanged, and routing that
/// file again changes nothing.
pub fn client_config(data: &[u8]) -> Result<(), String> {
    use crate::clients::paths::{ConfigLocation, Shape};
    use crate::clients::{ClientKind, read::parse_text, setup};
    let Some((&pick, rest)) = data.split_first() else { return Ok(()) };
    let (client, shape) = match pick % 5 {
        0 => (ClientKind::ClaudeCode, Shape::ClaudeUser),
        1 => (ClientKind::Cursor, Shape::McpServers),
        2 => (ClientKind::VsCode, Shape::VsCode),
        3 => (ClientKind::Codex, Shape::Codex),
        _ => (ClientKind::Opencode, Shape::Opencode),
    };
    let location = ConfigLocation::new(client, "/fuzz/config".into(), shape);
    let text = String::from_utf8_lossy(rest);
    let file = parse_text(&location, &text);
    for s in &file.servers {
        for (_, v) in s.headers.iter().chain(&s.env) {
            if v.expose().len() >= 4 && file.problems.iter().any(|p| p.contains(v.expose())) {
                return Err("a header or env value in a problem line".to_owned());
            }
        }
    }
    let work: Vec<(String, url::Url, bool)> = file
        .servers
        .iter()
        .filter(|s| s.project.is_none() && !s.routing.is_ours())
        .filter_map(|s| s.url.clone().map(|u| (s.name.clone(), u, true)))
        .collect();
    // Duplicate keys (JSON allows them) make "the entry" ambiguous: skip.
    let mut names: Vec<&str> = file.servers.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if work.is_empty() || names.windows(2).any(|w| w[0] == w[1]) {
        return Ok(());
    }
    let edit = |text: &str| {
        if shape == Shape::Codex {
            setup::edit_toml(text, &work, "mcp-auth")
        } else {
            setup::edit_jsonc(&location, text, &work, "mcp-auth")
        }
    };
    let Ok(new) = edit(&text) else { return Ok(()) };
    let after = parse_text(&location, &new);
    for (name, _, _) in &work {
        match after.servers.iter().find(|s| &s.name == name && s.project.is_none()) {
            Some(s) if s.routing.is_ours() && s.url.is_some() => {}
            other => return Err(format!("entry not routed after setup: {other:?}")),
        }
    }
    let untouched = |f: &crate::clients::ClientFile| -> Vec<String> {
        let mut v: Vec<String> = f
            .servers
            .iter()
            .filter(|s| s.project.is_some() || !work.iter().any(|(n, _, _)| n == &s.name))
            .map(|s| format!("{s:?}"))
            .collect();
        v.sort();
        v
    };
    if untouched(&file) != untouched(&after) {
        return Err("setup changed another entry".to_owned());
    }
    Ok(())
}

/// The keychain record: the first byte picks the piece size; the rest is
/// read twice — as keychain entries (the first line is the head entry, each
/// further line `<suffix>\t<value>` the entry `<account><suffix>`), and as a
/// record's JSON. Whatever decodes must survive being stored and loaded
/// again unchanged (decode(encode(x)) == x), at that piece size.
pub fn vault_record(data: &[u8]) -> Result<(), String> {
    let Some((&size, rest)) = data.split_first() else { return Ok(()) };
    let chunk_chars = 16 + usize::from(size) * 8;
    let key = VaultKey::new(None, "fuzz", "https://mcp.example/mcp");

    let entries = Arc::new(MemoryBackend::default());
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let head = lines.next().unwrap_or_default();
    let store_err = |e: crate::vault::BackendError| e.to_string();
    entries.write(key.account(), head).map_err(store_err)?;
    for line in lines {
        if let Some((suffix, value)) = line.split_once('\t') {
            entries.write(&format!("{}{suffix}", key.account()), value).map_err(store_err)?;
        }
    }
    if let Ok(Some(record)) = Vault::new(entries).load(&key) {
        store_and_load(&key, &record, chunk_chars)?;
    }

    if let Ok(record) = CredentialRecord::from_bytes(rest) {
        if CredentialRecord::from_bytes(&record.to_bytes()).as_ref() != Ok(&record) {
            return Err("the record changes when serialised and parsed again".to_owned());
        }
        store_and_load(&key, &record, chunk_chars)?;
    }
    Ok(())
}

fn store_and_load(key: &VaultKey, record: &CredentialRecord, chunk_chars: usize) -> Result<(), String> {
    let backend = Arc::new(MemoryBackend::default());
    let vault = Vault::new(backend.clone()).with_chunk_chars(chunk_chars);
    if vault.store(key, record).is_err() {
        // Too many pieces at this size: refused whole, nothing half-written.
        return match vault.load(key) {
            Ok(None) => Ok(()),
            other => Err(format!("a refused store left {other:?}")),
        };
    }
    match vault.load(key) {
        Ok(Some(loaded)) if loaded == *record => {}
        other => return Err(format!("stored {record:?}, loaded {other:?}")),
    }
    vault.remove(key).map_err(|e| e.to_string())?;
    if !backend.accounts().is_empty() {
        return Err(format!("entries left after remove: {:?}", backend.accounts()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::hermes::files::TokenRecord;

    /// Every seed and every kept crash input still holds its target's
    /// properties (the regressions are crashes the fuzzer found and we fixed).
    #[test]
    fn corpus_and_regressions_hold_their_properties() -> Result<(), Box<dyn std::error::Error>> {
        let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut checked = 0;
        let mut failures = Vec::new();
        for (name, check) in TARGETS {
            let mut files = 0;
            for kind in ["corpus", "regressions"] {
                let dir = fuzz.join(kind).join(name);
                if !dir.exists() {
                    continue;
                }
                for entry in std::fs::read_dir(&dir)? {
                    let path = entry?.path();
                    if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                        continue;
                    }
                    if let Err(e) = check(&std::fs::read(&path)?) {
                        failures.push(format!("{}: {e}", path.display()));
                    }
                    files += 1;
                }
            }
            assert!(files > 0, "no seed corpus for {name}");
            checked += files;
        }
        assert_eq!(failures, Vec::<String>::new());
        assert!(checked >= TARGETS.len());
        Ok(())
    }

    /// Found by the vault_record target: serde_json's default float parser is
    /// off by one unit in the last place for about one fractional timestamp
    /// in eight (`1764583200.0003703` came back as `…705`), so an expiry
    /// changed on its way through the agent's file and the keychain.
    #[test]
    fn fractional_timestamps_come_back_bit_for_bit() -> Result<(), Box<dyn std::error::Error>> {
        let at = 1_764_583_200.000_370_3;
        let tokens = TokenRecord {
            access_token: SecretString::new("a"),
            refresh_token: None,
            expires_in: None,
            expires_at: Some(at),
            scope: None,
            issuer: None,
        };
        let dir = tempfile::tempdir()?;
        let paths = AgentPaths::new(dir.path(), "s");
        std::fs::write(&paths.tokens, serde_json::to_vec(&tokens.to_json())?)?;
        assert_eq!(crate::hermes::files::read_tokens(&paths), Some(tokens));

        let minimal = br#"{"v":1,"server":"s","url":"u","access_token":"a","client":{"client_id":"c","redirect_uris":["r"]},"obtained_at":0}"#;
        let mut record = CredentialRecord::from_bytes(minimal)?;
        record.obtained_at = at;
        record.tokens.expires_at = Some(at);
        let key = VaultKey::new(None, "s", "u");
        store_and_load(&key, &record, 64)?;
        Ok(())
    }
}

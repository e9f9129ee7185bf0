//! Reading and writing the agent's credential files for one server:
//! `<stem>.json` (tokens), `<stem>.client.json` (registration) and
//! `<stem>.meta.json` (authorization server metadata), in exactly the shapes
//! the agent (hermes-agent 0.19 with mcp 1.26) loads.
//!
//! Writes are atomic and private (see [`crate::util::atomic_file`]), the folder is
//! 0700, and the tokens file is written last: the agent reloads everything
//! when the tokens file's mtime changes, so the registration it pairs with
//! must already be in place.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::hermes::layout::AgentPaths;
use crate::hermes::token_file::{usable_expires_at, usable_expires_in};
use crate::oauth::client::ClientRecord;
use crate::util::atomic_file::{ensure_private_dir, write_private};
use crate::util::insert_some;
use crate::util::read_capped::{Capped, read_capped};
use crate::util::secret::SecretString;

/// Tokens as the agent stores them.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Lifetime granted, seconds.
    pub expires_in: Option<u64>,
    /// Absolute expiry, epoch seconds.
    pub expires_at: Option<f64>,
    pub scope: Option<String>,
    /// The issuer that granted the tokens (`hermes_issuer`, read by newer agents).
    pub issuer: Option<String>,
}

/// Why the agent's files could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AgentFilesError {
    #[error("cannot write {}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: std::path::PathBuf, reason: String },
}

impl TokenRecord {
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("access_token".to_owned(), json!(self.access_token.expose()));
        m.insert("token_type".to_owned(), json!("Bearer"));
        insert_some(&mut m, "expires_in", self.expires_in.map(|e| json!(e)));
        insert_some(&mut m, "scope", self.scope.as_ref().map(|s| json!(s)));
        insert_some(&mut m, "refresh_token", self.refresh_token.as_ref().map(|r| json!(r.expose())));
        insert_some(&mut m, "expires_at", self.expires_at.map(|t| json!(t)));
        insert_some(&mut m, "hermes_issuer", self.issuer.as_ref().map(|i| json!(i)));
        Value::Object(m)
    }
}

/// Writes one server's files: registration and metadata first, tokens last.
pub fn write_server_files(
    paths: &AgentPaths,
    client: &ClientRecord,
    metadata: Option<&Value>,
    tokens: &TokenRecord,
) -> Result<(), AgentFilesError> {
    let write = |path: &Path, value: &Value| {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| AgentFilesError::Write { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
        write_private(path, &bytes).map_err(|source| AgentFilesError::Write { path: path.to_path_buf(), source })
    };
    if let Some(dir) = paths.tokens.parent() {
        ensure_private_dir(dir).map_err(|source| AgentFilesError::Write { path: dir.to_path_buf(), source })?;
    }
    write(&paths.client, &client.to_json())?;
    if let Some(meta) = metadata {
        write(&paths.meta, meta)?;
    }
    write(&paths.tokens, &tokens.to_json())
}

/// Reads a JSON file the agent keeps; `None` when missing or not JSON.
pub fn read_json(path: &Path) -> Option<Value> {
    match read_capped(path, 256 * 1024) {
        Ok(Capped::Bytes(bytes, _)) => serde_json::from_slice(&bytes).ok(),
        _ => None,
    }
}

/// The stored registration, when the client file holds a usable one.
pub fn read_client(paths: &AgentPaths) -> Option<ClientRecord> {
    read_json(&paths.client).as_ref().and_then(ClientRecord::from_json)
}

/// The tokens in the agent's token file, secrets included (for adopting a
/// refresh the agent made); `None` when missing or unusable.
pub fn read_tokens(paths: &AgentPaths) -> Option<TokenRecord> {
    let v = read_json(&paths.tokens)?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if !s("token_type").is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
        return None;
    }
    Some(TokenRecord {
        access_token: SecretString::new(s("access_token")?),
        refresh_token: s("refresh_token").filter(|r| !r.is_empty()).map(SecretString::new),
        // Odd numbers are clamped or dropped here, at the edge, so nothing
        // downstream (timers, status, the vault) computes with them.
        expires_in: v.get("expires_in").and_then(usable_expires_in).map(|(secs, _)| secs),
        expires_at: v.get("expires_at").and_then(Value::as_f64).and_then(|e| usable_expires_at(e).ok()),
        scope: s("scope"),
        issuer: s("hermes_issuer"),
    })
}

/// Removes the server's three files (missing ones are fine).
pub fn remove_server_files(paths: &AgentPaths) -> Result<(), AgentFilesError> {
    for path in [&paths.tokens, &paths.client, &paths.meta] {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AgentFilesError::Write { path: path.clone(), source }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn client() -> ClientRecord {
        ClientRecord {
            client_id: "cid".to_owned(),
            client_secret: None,
            redirect_uris: vec!["http://127.0.0.1:4545/callback".to_owned()],
            token_endpoint_auth_method: "none".to_owned(),
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            response_types: vec!["code".to_owned()],
            scope: Some("mcp:read".to_owned()),
            client_name: Some("Hermes Agent".to_owned()),
            client_id_issued_at: Some(1_700_000_000),
        }
    }

    #[test]
    fn writes_the_agents_shapes() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let paths = AgentPaths::new(&dir.path().join("mcp-tokens"), "my server");
        let tokens = TokenRecord {
            access_token: SecretString::new("at"),
            refresh_token: Some(SecretString::new("rt")),
            expires_in: Some(3600),
            expires_at: Some(1_800_000_000.5),
            scope: Some("mcp:read".to_owned()),
            issuer: Some("https://as.example".to_owned()),
        };
        let meta = json!({"issuer": "https://as.example", "authorization_endpoint": "https://as.example/a", "token_endpoint": "https://as.example/t"});
        write_server_files(&paths, &client(), Some(&meta), &tokens)?;
        assert!(paths.tokens.ends_with("mcp-tokens/my_server.json"));
        insta::assert_json_snapshot!(read_json(&paths.tokens), @r#"
        {
          "access_token": "at",
          "token_type": "Bearer",
          "expires_in": 3600,
          "scope": "mcp:read",
          "refresh_token": "rt",
          "expires_at": 1800000000.5,
          "hermes_issuer": "https://as.example"
        }
        "#);
        insta::assert_json_snapshot!(read_json(&paths.client), @r#"
        {
          "redirect_uris": [
            "http://127.0.0.1:4545/callback"
          ],
          "token_endpoint_auth_method": "none",
          "grant_types": [
            "authorization_code",
            "refresh_token"
          ],
          "response_types": [
            "code"
          ],
          "client_id": "cid",
          "scope": "mcp:read",
          "client_name": "Hermes Agent",
          "client_id_issued_at": 1700000000
        }
        "#);
        assert_eq!(read_json(&paths.meta), Some(meta));
        assert_eq!(read_client(&paths), Some(client()));
        // What the status reader (and so the agent) makes of it.
        let summary = crate::hermes::token_file::read_token_file(&paths.tokens)?.expect("present");
        assert_eq!(summary.expires_at, Some(1_800_000_000.5));
        assert!(summary.has_refresh_token);

        remove_server_files(&paths)?;
        assert!(!paths.tokens.exists() && !paths.client.exists() && !paths.meta.exists());
        remove_server_files(&paths)?;
        Ok(())
    }

    /// What the agent's file says, as we adopt it: odd numbers clamped or
    /// dropped, never a panic.
    #[rstest::rstest]
    #[case::sane(r#""expires_in":3600,"expires_at":1800000000.5"#, Some(3600), Some(1_800_000_000.5))]
    #[case::huge(r#""expires_in":1e20,"expires_at":1e20"#, Some(crate::hermes::token_file::MAX_LIFETIME_SECS), None)]
    #[case::max_integer(
        r#""expires_in":18446744073709551615"#,
        Some(crate::hermes::token_file::MAX_LIFETIME_SECS),
        None
    )]
    #[case::negative(r#""expires_in":-1,"expires_at":-1e20"#, None, Some(0.0))]
    #[case::milliseconds(r#""expires_at":1700000000000"#, None, None)]
    #[case::string_lifetime(r#""expires_in":"120""#, Some(120), None)]
    #[case::not_numbers(r#""expires_in":[1],"expires_at":{}"#, None, None)]
    fn odd_numbers_in_the_agents_file(
        #[case] fields: &str,
        #[case] expires_in: Option<u64>,
        #[case] expires_at: Option<f64>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let paths = AgentPaths::new(dir.path(), "s");
        std::fs::write(&paths.tokens, format!(r#"{{"access_token":"a","token_type":"Bearer",{fields}}}"#))?;
        let tokens = read_tokens(&paths).ok_or("unreadable")?;
        assert_eq!((tokens.expires_in, tokens.expires_at), (expires_in, expires_at));
        Ok(())
    }

    #[test]
    fn a_secret_is_never_sent_with_none() {
        let read = |v: Value| ClientRecord::from_json(&v).map(|c| c.token_endpoint_auth_method);
        let base = json!({"client_id": "c", "redirect_uris": ["u"]});
        let with = |extra: Value| {
            let mut v = base.clone();
            if let Some(m) = v.as_object_mut() {
                m.extend(extra.as_object().cloned().unwrap_or_default());
            }
            v
        };
        assert_eq!(
            read(with(json!({"client_secret": "s", "token_endpoint_auth_method": "none"}))).as_deref(),
            Some("client_secret_post")
        );
        assert_eq!(read(with(json!({"client_secret": "s"}))).as_deref(), Some("client_secret_post"));
        assert_eq!(
            read(with(json!({"client_secret": "s", "token_endpoint_auth_method": "client_secret_basic"}))).as_deref(),
            Some("client_secret_basic")
        );
        assert_eq!(read(with(json!({"token_endpoint_auth_method": "none"}))).as_deref(), Some("none"));
        // And what we write always names the method.
        let written = client().to_json();
        assert_eq!(written["token_endpoint_auth_method"], json!("none"));
    }

    #[test]
    fn removing_leaves_the_agents_own_markers() -> Result<(), Box<dyn std::error::Error>> {
        // `.cimd-off` (the server refused the agent's CIMD document) is the
        // agent's to clear; the fence's lock file must keep its inode.
        let dir = tempfile::tempdir()?;
        let paths = AgentPaths::new(dir.path(), "s");
        let cimd_off = dir.path().join("s.cimd-off");
        for path in [&paths.tokens, &paths.client, &paths.meta, &paths.refresh_lock, &cimd_off] {
            std::fs::write(path, b"{}")?;
        }
        remove_server_files(&paths)?;
        assert!(cimd_off.exists() && paths.refresh_lock.exists());
        assert!(!paths.tokens.exists() && !paths.client.exists() && !paths.meta.exists());
        Ok(())
    }

    #[test]
    fn unusable_client_files() {
        assert_eq!(ClientRecord::from_json(&json!({"client_id": "x"})), None, "no redirect_uris");
        assert_eq!(ClientRecord::from_json(&json!({"redirect_uris": ["u"]})), None, "no client_id");
        assert_eq!(ClientRecord::from_json(&json!("text")), None);
    }
}

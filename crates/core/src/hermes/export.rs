//! Handing credentials from the vault to an agent, in the layout it reads.
//!
//! An interface, so other agents' layouts can be added without touching the
//! vault; [`HermesExporter`] writes Hermes Agent's `mcp-tokens/` files (see
//! [`crate::hermes::files`]: atomic, private, tokens last).

use serde_json::Value;

use crate::hermes::files::{
    AgentFilesError, TokenRecord, read_client, read_json, read_tokens, remove_server_files, write_server_files,
};
use crate::hermes::home::Home;
use crate::hermes::layout::{AgentPaths, token_file_stem};
use crate::oauth::client::ClientRecord;
use crate::vault::CredentialRecord;

/// One server as an exporter sees it.
#[derive(Debug, Clone)]
pub struct ExportTarget {
    pub home: Home,
    pub name: String,
    /// Every server name in the same home (to detect file name clashes).
    pub siblings: Vec<String>,
}

/// Why an export was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Two names map to one file: writing either would feed the other's tokens to it.
    #[error(
        "`{name}` and `{other}` would share the token file `{stem}.json`; rename one of them in the agent's config"
    )]
    Collision { name: String, other: String, stem: String },
    #[error(transparent)]
    Files(#[from] AgentFilesError),
}

/// An agent's credential layout.
pub trait Exporter: Send + Sync + std::fmt::Debug {
    /// Whether `target` can be exported at all (checked before a sign-in).
    fn check(&self, target: &ExportTarget) -> Result<(), ExportError>;
    /// Writes `record` for `target`.
    fn export(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<(), ExportError>;
    /// Writes only the tokens, if the agent still holds this server's files
    /// (missing files are the agent's decision; they are not recreated).
    /// Returns whether anything was written.
    fn update_tokens(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<bool, ExportError>;
    /// Removes what was exported for `target`.
    fn remove(&self, target: &ExportTarget) -> Result<(), ExportError>;
    /// The tokens the agent currently has for `target`.
    fn agent_tokens(&self, target: &ExportTarget) -> Option<TokenRecord>;
    /// The registration the agent currently has for `target`, with its
    /// authorization server metadata (when the agent keeps any).
    fn agent_registration(&self, target: &ExportTarget) -> Option<(ClientRecord, Option<Value>)>;
}

/// Hermes Agent's `<home>/mcp-tokens/` layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct HermesExporter;

impl HermesExporter {
    /// The files for `target`, refusing names that clash with a sibling.
    pub fn paths(target: &ExportTarget) -> Result<AgentPaths, ExportError> {
        let stem = token_file_stem(&target.name);
        if let Some(other) = target.siblings.iter().find(|s| **s != target.name && token_file_stem(s) == stem) {
            return Err(ExportError::Collision { name: target.name.clone(), other: other.clone(), stem });
        }
        Ok(AgentPaths::new(&target.home.tokens_dir(), &target.name))
    }
}

fn write(
    paths: &AgentPaths,
    client: &ClientRecord,
    metadata: Option<&Value>,
    record: &CredentialRecord,
) -> Result<(), ExportError> {
    let mut tokens = record.agent_tokens();
    // The agent compares `hermes_issuer` with `meta.json`'s `issuer` (both
    // without a trailing `/`) and strips the refresh token on a mismatch:
    // bind the tokens to exactly the issuer of the metadata written beside them.
    if let Some(issuer) = metadata.and_then(|m| m.get("issuer")).and_then(Value::as_str) {
        tokens.issuer = Some(issuer.to_owned());
    }
    write_server_files(paths, client, metadata, &tokens).map_err(Into::into)
}

impl Exporter for HermesExporter {
    fn check(&self, target: &ExportTarget) -> Result<(), ExportError> {
        Self::paths(target).map(|_| ())
    }

    fn export(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<(), ExportError> {
        let paths = Self::paths(target)?;
        write(&paths, &record.client, record.metadata.as_ref(), record)
    }

    fn update_tokens(&self, target: &ExportTarget, record: &CredentialRecord) -> Result<bool, ExportError> {
        let paths = Self::paths(target)?;
        if !paths.tokens.exists() {
            return Ok(false);
        }
        write(&paths, &record.client, record.metadata.as_ref(), record)?;
        Ok(true)
    }

    fn remove(&self, target: &ExportTarget) -> Result<(), ExportError> {
        let paths = Self::paths(target)?;
        remove_server_files(&paths).map_err(Into::into)
    }

    fn agent_tokens(&self, target: &ExportTarget) -> Option<TokenRecord> {
        Self::paths(target).ok().and_then(|p| read_tokens(&p))
    }

    fn agent_registration(&self, target: &ExportTarget) -> Option<(ClientRecord, Option<Value>)> {
        let paths = Self::paths(target).ok()?;
        let client = read_client(&paths)?;
        Some((client, read_json(&paths.meta)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dir: &std::path::Path, name: &str, siblings: &[&str]) -> ExportTarget {
        ExportTarget {
            home: Home { profile: None, path: dir.to_path_buf() },
            name: name.to_owned(),
            siblings: siblings.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn clashing_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = HermesExporter::paths(&target(dir.path(), "my server", &["my server", "my_server", "x"]))
            .expect_err("clash");
        assert_eq!(
            err.to_string(),
            "`my server` and `my_server` would share the token file `my_server.json`; rename one of them in the agent's config"
        );
        assert!(HermesExporter::paths(&target(dir.path(), "x", &["my server", "my_server", "x"])).is_ok());
    }
}

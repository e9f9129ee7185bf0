//! The versioned record kept for one server.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hermes::files::TokenRecord;
use crate::oauth::client::ClientRecord;
use crate::oauth::tokens::TokenSet;
use crate::util::secret::SecretString;

/// The current record format.
pub const RECORD_VERSION: u32 = 1;

/// Tokens as kept in the vault.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<u64>,
    /// Absolute expiry, epoch seconds.
    pub expires_at: Option<f64>,
    pub scope: Option<String>,
}

impl StoredTokens {
    /// Tokens just received from a token endpoint.
    pub fn from_response(tokens: &TokenSet) -> Self {
        Self {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expires_in: tokens.expires_in,
            expires_at: tokens.expires_at(),
            scope: tokens.scope.clone(),
        }
    }

    /// Tokens read from the agent's file.
    pub fn from_agent(file: &TokenRecord) -> Self {
        Self {
            access_token: file.access_token.clone(),
            refresh_token: file.refresh_token.clone(),
            expires_in: file.expires_in,
            expires_at: file.expires_at,
            scope: file.scope.clone(),
        }
    }
}

/// The last refresh of a record that failed (kept so every front end, and
/// the next run, can say so); cleared by the next success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshFailure {
    /// Why, in words (never a secret).
    pub message: String,
    /// Refreshing cannot succeed: the user must sign in again.
    pub needs_reauth: bool,
    /// When, epoch seconds.
    pub at: f64,
}

/// Everything we keep about one server's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRecord {
    pub server: String,
    pub url: String,
    pub profile: Option<String>,
    pub tokens: StoredTokens,
    /// The issuer the tokens and registration are bound to.
    pub issuer: Option<String>,
    pub client: ClientRecord,
    /// Authorization server metadata (RFC 8414), as received.
    pub metadata: Option<Value>,
    /// When these tokens were obtained, epoch seconds.
    pub obtained_at: f64,
    /// The last refresh failed (and how); `None` after a success.
    pub last_error: Option<RefreshFailure>,
}

/// The serialised form. Secrets appear only here, on their way into the
/// keychain, never in a Debug or log.
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u32,
    server: String,
    url: String,
    #[serde(default)]
    profile: Option<String>,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    expires_at: Option<f64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    client: Value,
    #[serde(default)]
    metadata: Option<Value>,
    obtained_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<RefreshFailure>,
}

impl CredentialRecord {
    /// The tokens in the agent's file shape (with the issuer they are bound to).
    pub fn agent_tokens(&self) -> TokenRecord {
        TokenRecord {
            access_token: self.tokens.access_token.clone(),
            refresh_token: self.tokens.refresh_token.clone(),
            expires_in: self.tokens.expires_in,
            expires_at: self.tokens.expires_at,
            scope: self.tokens.scope.clone(),
            issuer: self.issuer.clone(),
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            v: RECORD_VERSION,
            server: self.server.clone(),
            url: self.url.clone(),
            profile: self.profile.clone(),
            access_token: self.tokens.access_token.expose().to_owned(),
            refresh_token: self.tokens.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            expires_in: self.tokens.expires_in,
            expires_at: self.tokens.expires_at,
            scope: self.tokens.scope.clone(),
            issuer: self.issuer.clone(),
            client: self.client.to_json(),
            metadata: self.metadata.clone(),
            obtained_at: self.obtained_at,
            last_error: self.last_error.clone(),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// What a stored record's key is made of (profile, server name, URL),
    /// read without touching its secrets; `None` for anything else.
    pub(crate) fn key_fields(bytes: &[u8]) -> Option<(Option<String>, String, String)> {
        #[derive(Deserialize)]
        struct KeyFields {
            v: u32,
            server: String,
            url: String,
            #[serde(default)]
            profile: Option<String>,
        }
        let fields: KeyFields = serde_json::from_slice(bytes).ok()?;
        (fields.v == RECORD_VERSION).then_some((fields.profile, fields.server, fields.url))
    }

    /// Parses a stored record; the error is a reason without any content.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let version = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| v.get("v").and_then(Value::as_u64));
        match version {
            Some(v) if v == u64::from(RECORD_VERSION) => {}
            Some(v) => return Err(format!("record version {v} is not supported by this version of the app")),
            None => return Err("not a credential record".to_owned()),
        }
        let wire: Wire = serde_json::from_slice(bytes).map_err(|_| "a field has the wrong type".to_owned())?;
        let client = ClientRecord::from_json(&wire.client).ok_or("the client registration is incomplete")?;
        Ok(Self {
            server: wire.server,
            url: wire.url,
            profile: wire.profile,
            tokens: StoredTokens {
                access_token: SecretString::new(wire.access_token),
                refresh_token: wire.refresh_token.map(SecretString::new),
                expires_in: wire.expires_in,
                expires_at: wire.expires_at,
                scope: wire.scope,
            },
            issuer: wire.issuer,
            client,
            metadata: wire.metadata,
            obtained_at: wire.obtained_at,
            last_error: wire.last_error,
        })
    }
}

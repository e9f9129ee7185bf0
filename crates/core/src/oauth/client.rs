//! The OAuth client registration (RFC 7591 client information), in the
//! shape the MCP SDKs store it (`OAuthClientInformationFull`): what dynamic
//! registration returned, or what the user configured. The engine, the vault
//! and the agent's `client.json` all use this one type.

use serde_json::{Map, Value, json};

use crate::util::insert_some;
use crate::util::secret::SecretString;

/// A client registration (`OAuthClientInformationFull`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post`, `client_secret_basic` or `private_key_jwt`.
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub scope: Option<String>,
    pub client_name: Option<String>,
    pub client_id_issued_at: Option<i64>,
}

impl ClientRecord {
    /// The agent's `client.json` shape (includes the secret: for files and the vault only).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("redirect_uris".to_owned(), json!(self.redirect_uris));
        m.insert("token_endpoint_auth_method".to_owned(), json!(self.token_endpoint_auth_method));
        m.insert("grant_types".to_owned(), json!(self.grant_types));
        m.insert("response_types".to_owned(), json!(self.response_types));
        m.insert("client_id".to_owned(), json!(self.client_id));
        insert_some(&mut m, "scope", self.scope.as_ref().map(|s| json!(s)));
        insert_some(&mut m, "client_name", self.client_name.as_ref().map(|s| json!(s)));
        insert_some(&mut m, "client_secret", self.client_secret.as_ref().map(|s| json!(s.expose())));
        insert_some(&mut m, "client_id_issued_at", self.client_id_issued_at.map(|t| json!(t)));
        Value::Object(m)
    }

    /// Parses a client file; `None` when it is not a usable registration
    /// (the agent would re-register then, and so do we).
    pub fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let redirect_uris = list("redirect_uris");
        let client_id = s("client_id").filter(|c| !c.is_empty())?;
        if redirect_uris.is_empty() {
            return None;
        }
        let client_secret = s("client_secret").filter(|c| !c.is_empty()).map(SecretString::new);
        // As newer agents read it (`_coerce_secret_auth_method`): a secret
        // with no method, or with `none`, is posted in the form.
        let token_endpoint_auth_method = match s("token_endpoint_auth_method").filter(|m| !m.is_empty()) {
            Some(m) if m == "none" && client_secret.is_some() => "client_secret_post".to_owned(),
            Some(m) => m,
            None => "client_secret_post".to_owned(),
        };
        Some(Self {
            client_id,
            client_secret,
            redirect_uris,
            token_endpoint_auth_method,
            grant_types: list("grant_types"),
            response_types: list("response_types"),
            scope: s("scope"),
            client_name: s("client_name"),
            client_id_issued_at: v.get("client_id_issued_at").and_then(Value::as_i64),
        })
    }
}

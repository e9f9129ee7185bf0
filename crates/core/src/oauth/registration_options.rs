//! What the agent's config says about a new client registration (newer
//! agents' `oauth.application_type` and `oauth.token_endpoint_auth_method`),
//! applied to the RFC 7591 request rmcp builds: an [`OAuthHttpClient`] that
//! rewrites the one JSON POST carrying `redirect_uris` and passes everything
//! else untouched.
//!
//! `application_type` defaults to `native` (OIDC-strict servers accept
//! loopback redirects only for native apps); the auth method is set only
//! when configured (otherwise rmcp's choice from the metadata stands).

use std::sync::Arc;

use rmcp::transport::auth::{OAuthHttpClient, OAuthHttpClientFuture, OAuthHttpRequest};

/// The registration fields taken from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationOptions {
    /// `oauth.application_type` (`None`: `native`).
    pub application_type: Option<String>,
    /// `oauth.token_endpoint_auth_method` (`None`: leave rmcp's).
    pub token_endpoint_auth_method: Option<String>,
}

/// An [`OAuthHttpClient`] that applies [`RegistrationOptions`] to registrations.
pub struct WithRegistrationOptions(pub Arc<dyn OAuthHttpClient>, pub RegistrationOptions);

impl std::fmt::Debug for WithRegistrationOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WithRegistrationOptions").field(&self.1).finish_non_exhaustive()
    }
}

impl OAuthHttpClient for WithRegistrationOptions {
    fn execute(&self, mut request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        if request.request.method() == oauth2::http::Method::POST
            && let Some(body) = self.1.apply(request.request.body())
        {
            *request.request.body_mut() = body;
        }
        self.0.execute(request)
    }
}

impl RegistrationOptions {
    /// The registration body with the options applied, or `None` when `body`
    /// is not a registration request (a JSON object with `redirect_uris`).
    pub fn apply(&self, body: &[u8]) -> Option<Vec<u8>> {
        let mut json: serde_json::Value = serde_json::from_slice(body).ok()?;
        let object = json.as_object_mut()?;
        object.get("redirect_uris")?;
        let application_type = self.application_type.as_deref().unwrap_or("native");
        object.insert("application_type".to_owned(), application_type.into());
        if let Some(method) = &self.token_endpoint_auth_method {
            object.insert("token_endpoint_auth_method".to_owned(), method.as_str().into());
        }
        serde_json::to_vec(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    fn applied(options: &RegistrationOptions, body: Value) -> Option<Value> {
        let bytes = options.apply(&serde_json::to_vec(&body).ok()?)?;
        serde_json::from_slice(&bytes).ok()
    }

    #[test]
    fn registrations_get_the_configured_fields() {
        let body = json!({"client_name": "x", "redirect_uris": ["http://127.0.0.1:1/callback"], "token_endpoint_auth_method": "none"});
        let defaults = RegistrationOptions::default();
        assert_eq!(
            applied(&defaults, body.clone()),
            Some(
                json!({"client_name": "x", "redirect_uris": ["http://127.0.0.1:1/callback"], "token_endpoint_auth_method": "none", "application_type": "native"})
            )
        );
        let configured = RegistrationOptions {
            application_type: Some("web".to_owned()),
            token_endpoint_auth_method: Some("client_secret_post".to_owned()),
        };
        assert_eq!(
            applied(&configured, body),
            Some(
                json!({"client_name": "x", "redirect_uris": ["http://127.0.0.1:1/callback"], "token_endpoint_auth_method": "client_secret_post", "application_type": "web"})
            )
        );
    }

    #[test]
    fn other_requests_pass_untouched() {
        let options = RegistrationOptions::default();
        assert_eq!(applied(&options, json!({"jsonrpc": "2.0", "method": "initialize"})), None);
        assert_eq!(options.apply(b"grant_type=refresh_token&refresh_token=r"), None);
    }
}

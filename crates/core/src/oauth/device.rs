//! The device authorization grant (RFC 8628), for machines whose browser
//! cannot reach our loopback listener: the user opens a short URL on any
//! device and enters a code while we poll the token endpoint.
//!
//! Everything before the grant is the browser flow's own code: the probe,
//! discovery with its PRM/issuer/S256 checks, and the client identity
//! (pre-registered, CIMD, kept, or registered). A registration made here also
//! asks for the device grant type, and still names our loopback redirect URI:
//! the agent only accepts registrations with one, and later browser sign-ins
//! can reuse it. The grant itself is the `oauth2` crate's
//! ([`TokenEndpoint::device_authorization`], [`TokenEndpoint::device_token`]).

use std::sync::Arc;

use rmcp::transport::auth::{OAuthHttpClient, OAuthHttpClientFuture, OAuthHttpRequest};

use super::engine::{
    Authorized, ClientSource, Discovered, Engine, EngineError, Step, Target, check_secret_binding, initial_scopes,
    rejects_client, same_issuer,
};
use super::tokens::{TokenEndpoint, TokenSet};
use crate::oauth::client::ClientRecord;
use crate::util::text::server_text_max;

/// The grant type of RFC 8628 §3.4.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Adds [`DEVICE_GRANT`] to registration requests (rmcp registers for the
/// browser grant types only). A registration request is the one JSON POST
/// with `grant_types`; everything else passes untouched.
struct WithDeviceGrant(Arc<dyn OAuthHttpClient>);

impl OAuthHttpClient for WithDeviceGrant {
    fn execute(&self, mut request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        if request.request.method() == oauth2::http::Method::POST
            && let Some(body) = with_device_grant(request.request.body())
        {
            *request.request.body_mut() = body;
        }
        self.0.execute(request)
    }
}

/// The registration body with the device grant added, or `None` when `body`
/// is not a registration request or already asks for it.
fn with_device_grant(body: &[u8]) -> Option<Vec<u8>> {
    let mut json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let grants = json.get_mut("grant_types")?.as_array_mut()?;
    if grants.iter().any(|g| g == DEVICE_GRANT) {
        return None;
    }
    grants.push(DEVICE_GRANT.into());
    serde_json::to_vec(&json).ok()
}

impl Engine {
    /// Signs in with the device authorization grant. Fails with
    /// [`EngineError::NoDeviceEndpoint`] when the authorization server does
    /// not offer it. `redirect_uri` goes into a new registration (see the
    /// module docs); `stored` is reused when it allows the device grant.
    #[tracing::instrument(skip_all, fields(server = %target.name), err)]
    pub async fn authorize_device(
        &self,
        target: &Target,
        redirect_uri: &str,
        stored: Option<(ClientRecord, Option<String>)>,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Authorized, EngineError> {
        let client = Arc::new(WithDeviceGrant(self.oauth_http(target)));
        let (mut manager, discovered) = self.find_authorization_server(target, client, progress).await?;
        let Some(device_url) = discovered.device_authorization_endpoint.clone() else {
            let issuer = discovered.issuer.clone().unwrap_or_else(|| target.url.to_string());
            return Err(EngineError::NoDeviceEndpoint { issuer });
        };
        let scopes = initial_scopes(&manager, target).await;
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        progress(Step::Registering);
        check_secret_binding(target, stored.as_ref(), &discovered)?;
        // The device grant sends no redirect, so any registration of this
        // issuer allowing it will do: the agent's own device login registers
        // `http://127.0.0.1:8420/callback`, not our redirect URI.
        let kept = stored
            .filter(|(client, issuer)| {
                same_issuer(issuer.as_deref(), discovered.issuer.as_deref())
                    && client.grant_types.iter().any(|g| g == DEVICE_GRANT)
            })
            .map(|(client, _)| client);
        let mut identify = async |kept| {
            let (mut client, source) =
                self.client_identity(&mut manager, target, &discovered, redirect_uri, &scope_refs, kept).await?;
            if source == ClientSource::Registered {
                client.grant_types.push(DEVICE_GRANT.to_owned());
            }
            Ok::<_, EngineError>((client, source))
        };
        let (mut client, source) = identify(kept).await?;
        let tokens = match self.device_step(target, &discovered, &client, &device_url, &scopes, progress).await {
            Ok(tokens) => tokens,
            // A kept registration the server no longer knows: register anew, once.
            Err(e) if source == ClientSource::Kept && rejects_client(&e) => {
                tracing::info!(error = %e, "the stored registration was rejected; registering again");
                progress(Step::Registering);
                client = identify(None).await?.0;
                self.device_step(target, &discovered, &client, &device_url, &scopes, progress).await?
            }
            Err(e) => return Err(e),
        };
        Ok(Authorized { tokens, client, discovered, authorizations: 1, manager })
    }

    /// Gets a user code, shows it, and polls until approved or timed out
    /// (the code's lifetime or `oauth.timeout`, whichever ends first).
    async fn device_step(
        &self,
        target: &Target,
        discovered: &Discovered,
        client: &ClientRecord,
        device_url: &str,
        scopes: &[String],
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<TokenSet, EngineError> {
        let endpoint = TokenEndpoint {
            token_url: discovered.token_endpoint.clone(),
            revocation_url: None,
            client: client.clone(),
            resource: (!target.omit_resource).then(|| target.url.to_string()),
        };
        let http = self.http().with_token_user_agent(target.user_agent.as_deref());
        let details = endpoint.device_authorization(&http, device_url, scopes).await?;
        let wait = target.timeout.min(details.expires_in());
        // Shown on a terminal or in a notification: server text, made safe.
        progress(Step::WaitingForDevice {
            user_code: server_text_max(details.user_code().secret(), 64),
            verification_uri: server_text_max(details.verification_uri(), 500),
            verification_uri_complete: details.verification_uri_complete().map(|u| server_text_max(u.secret(), 500)),
            timeout: wait,
        });
        Ok(endpoint.device_token(&http, &details, wait).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_device_grant_to_registrations_only() {
        let registration = br#"{"client_name":"x","grant_types":["authorization_code","refresh_token"]}"#;
        let changed: serde_json::Value =
            serde_json::from_slice(&with_device_grant(registration).unwrap_or_default()).unwrap_or_default();
        assert_eq!(changed["grant_types"], serde_json::json!(["authorization_code", "refresh_token", DEVICE_GRANT]));
        assert_eq!(with_device_grant(&serde_json::to_vec(&changed).unwrap_or_default()), None, "already there");
        assert_eq!(with_device_grant(b"grant_type=refresh_token&refresh_token=x"), None, "a form body");
        assert_eq!(with_device_grant(br#"{"jsonrpc":"2.0"}"#), None);
    }
}

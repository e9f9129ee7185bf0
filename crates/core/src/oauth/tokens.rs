//! Tokens we hold, and the token-endpoint operations rmcp does not offer:
//! refresh with our own registration, revocation (RFC 7009), the
//! client-credentials grant and the device authorization grant (RFC 8628) —
//! all through the `oauth2` crate and our [`Http`] client.

use std::time::{SystemTime, UNIX_EPOCH};

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponse, DeviceCodeErrorResponseType,
    RefreshToken, RequestTokenError, Scope, StandardDeviceAuthorizationResponse, StandardErrorResponse, TokenResponse,
    TokenUrl,
};

use super::http::Http;
use crate::agent_files::ClientRecord;
use crate::secret::SecretString;

/// A set of tokens from a token endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Lifetime granted, seconds.
    pub expires_in: Option<u64>,
    /// When the response arrived (epoch seconds): with `expires_in`, the expiry.
    pub received_at: f64,
    /// Granted scope (space-separated), when the server said.
    pub scope: Option<String>,
}

impl TokenSet {
    /// Absolute expiry, epoch seconds.
    pub fn expires_at(&self) -> Option<f64> {
        self.expires_in.map(|e| self.received_at + e as f64)
    }

    /// Converts an oauth2/rmcp token response. Only Bearer tokens are usable
    /// by the agent (it rejects `DPoP`), so anything else is an error.
    pub fn from_response<R: TokenResponse>(response: &R) -> Result<Self, TokenError>
    where
        R::TokenType: AsRef<str>,
    {
        let token_type = response.token_type().as_ref().to_owned();
        if !token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::NotBearer { token_type });
        }
        Ok(Self {
            access_token: SecretString::new(response.access_token().secret().clone()),
            refresh_token: response.refresh_token().map(|r| SecretString::new(r.secret().clone())),
            expires_in: response.expires_in().map(|d| d.as_secs()),
            received_at: now(),
            scope: response
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str().to_owned()).collect::<Vec<_>>().join(" "))
                .filter(|s| !s.is_empty()),
        })
    }
}

pub(crate) fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Why a token-endpoint operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `invalid_grant`: the refresh token is spent, revoked or expired. Only a
    /// new sign-in helps.
    #[error("the authorization server rejected the refresh token ({description}); sign in again")]
    Rejected { description: String },
    /// `invalid_client`: the registration is gone or the secret is wrong.
    #[error("the authorization server no longer accepts this client registration ({description})")]
    ClientRejected { description: String },
    /// Another error answer from the server.
    #[error("the token endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
    /// Network trouble, timeouts, 5xx: worth retrying later.
    #[error("token request failed: {0}")]
    Transport(String),
    /// The response was not a token response.
    #[error("the token endpoint answered something unreadable: {0}")]
    BadResponse(String),
    /// The token type is not Bearer.
    #[error("the server issued a `{token_type}` token; only Bearer tokens can be handed to the agent")]
    NotBearer { token_type: String },
    /// The metadata lacks what the operation needs.
    #[error("{0}")]
    Config(String),
}

impl TokenError {
    /// Whether retrying later can help (as opposed to needing a new sign-in).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport(_))
    }
}

/// The token endpoint and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub token_url: String,
    pub revocation_url: Option<String>,
    pub client: ClientRecord,
    /// RFC 8707 resource to send (`None`: omit, for servers that reject it).
    pub resource: Option<String>,
}

impl TokenEndpoint {
    fn oauth2_client(
        &self,
    ) -> Result<
        BasicClient<
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        TokenError,
    > {
        let token_url = TokenUrl::new(self.token_url.clone())
            .map_err(|e| TokenError::Config(format!("bad token endpoint: {e}")))?;
        let mut client = BasicClient::new(ClientId::new(self.client.client_id.clone())).set_token_uri(token_url);
        if let Some(secret) = &self.client.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_owned()));
        }
        let auth_type = match self.client.token_endpoint_auth_method.as_str() {
            "client_secret_basic" => AuthType::BasicAuth,
            _ => AuthType::RequestBody,
        };
        Ok(client.set_auth_type(auth_type))
    }

    /// Refreshes with `refresh_token`. When the response has no refresh
    /// token, the old one is kept (servers that don't rotate often omit it).
    pub async fn refresh(
        &self,
        http: &Http,
        refresh_token: &SecretString,
        scope: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        let client = self.oauth2_client()?;
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let mut request = client.exchange_refresh_token(&token);
        if let Some(resource) = &self.resource {
            request = request.add_extra_param("resource", resource.clone());
        }
        if let Some(scope) = scope {
            request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())));
        }
        let caller = adapter(http);
        let response = request.request_async(&caller).await.map_err(classify)?;
        let mut tokens = TokenSet::from_response(&response)?;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh_token.clone());
        }
        Ok(tokens)
    }

    /// Revokes `token` (RFC 7009). Servers answer 200 even for unknown tokens.
    ///
    /// A plain form POST rather than `oauth2`'s revocation request: that one
    /// refuses `http://` endpoints even on loopback, where local and test
    /// servers live. The endpoint must be HTTPS or loopback here too.
    pub async fn revoke(&self, http: &Http, token: &SecretString, is_refresh_token: bool) -> Result<(), TokenError> {
        let url = self
            .revocation_url
            .as_deref()
            .ok_or_else(|| TokenError::Config("the server has no revocation endpoint".to_owned()))?;
        let parsed = url::Url::parse(url).map_err(|e| TokenError::Config(format!("bad revocation endpoint: {e}")))?;
        if !super::http::redirect_allowed(&parsed) {
            return Err(TokenError::Config(format!(
                "refusing to send a token to the non-HTTPS revocation endpoint {url}"
            )));
        }
        let hint = if is_refresh_token { "refresh_token" } else { "access_token" };
        let mut form: Vec<(&str, &str)> = vec![("token", token.expose()), ("token_type_hint", hint)];
        let mut request = http.reqwest_no_redirects().post(parsed);
        match (self.client.token_endpoint_auth_method.as_str(), &self.client.client_secret) {
            ("client_secret_basic", Some(secret)) => {
                request = request.basic_auth(form_encode(&self.client.client_id), Some(form_encode(secret.expose())));
            }
            (_, Some(secret)) => {
                form.push(("client_id", &self.client.client_id));
                form.push(("client_secret", secret.expose()));
            }
            (_, None) => form.push(("client_id", &self.client.client_id)),
        }
        let request = request.form(&form).build().map_err(|e| TokenError::Config(e.to_string()))?;
        let response = http.send(request, false).await.map_err(|e| TokenError::Transport(e.to_string()))?;
        if response.status.is_success() {
            return Ok(());
        }
        if response.status.is_server_error() {
            return Err(TokenError::Transport(format!("HTTP {} from {url}", response.status)));
        }
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        Err(TokenError::Refused {
            error: body["error"].as_str().map_or_else(|| format!("HTTP {}", response.status), str::to_owned),
            description: body["error_description"].as_str().map(str::to_owned),
        })
    }

    /// The client-credentials grant with a client secret (machine clients).
    pub async fn client_credentials(&self, http: &Http, scope: Option<&str>) -> Result<TokenSet, TokenError> {
        let client = self.oauth2_client()?;
        let mut request = client.exchange_client_credentials();
        if let Some(resource) = &self.resource {
            request = request.add_extra_param("resource", resource.clone());
        }
        if let Some(scope) = scope {
            request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())));
        }
        let caller = adapter(http);
        let response = request.request_async(&caller).await.map_err(classify)?;
        TokenSet::from_response(&response)
    }
}

impl TokenEndpoint {
    /// Asks for a device code and user code (RFC 8628 §3.1–3.2).
    pub async fn device_authorization(
        &self,
        http: &Http,
        device_url: &str,
        scopes: &[String],
    ) -> Result<StandardDeviceAuthorizationResponse, TokenError> {
        let url = DeviceAuthorizationUrl::new(device_url.to_owned())
            .map_err(|e| TokenError::Config(format!("bad device authorization endpoint: {e}")))?;
        let client = self.oauth2_client()?.set_device_authorization_url(url);
        let mut request = client.exchange_device_code().add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
        if let Some(resource) = &self.resource {
            request = request.add_extra_param("resource", resource.clone());
        }
        request.request_async(&adapter(http)).await.map_err(classify)
    }

    /// Polls the token endpoint until the user approved the code (RFC 8628
    /// §3.4–3.5), for at most `wait`. `oauth2` keeps the server's `interval`,
    /// adds 5 s on `slow_down`, and backs off on network errors.
    pub async fn device_token(
        &self,
        http: &Http,
        details: &StandardDeviceAuthorizationResponse,
        wait: std::time::Duration,
    ) -> Result<TokenSet, TokenError> {
        let client = self.oauth2_client()?;
        let mut request = client.exchange_device_access_token(details);
        if let Some(resource) = &self.resource {
            request = request.add_extra_param("resource", resource.clone());
        }
        let caller = adapter(http);
        let response = request.request_async(&caller, tokio::time::sleep, Some(wait)).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => classify_device(&r),
            RequestTokenError::Request(e) => TokenError::Transport(e.to_string()),
            RequestTokenError::Parse(e, _) => TokenError::BadResponse(e.to_string()),
            RequestTokenError::Other(e) => TokenError::BadResponse(e),
        })?;
        TokenSet::from_response(&response)
    }
}

/// The final answers of a device-code poll, in words.
fn classify_device(r: &DeviceCodeErrorResponse) -> TokenError {
    let description = r.error_description().cloned();
    match r.error() {
        DeviceCodeErrorResponseType::AccessDenied => TokenError::Refused {
            error: "access_denied".to_owned(),
            description: Some(description.unwrap_or_else(|| "the sign-in was declined".to_owned())),
        },
        DeviceCodeErrorResponseType::ExpiredToken => TokenError::Refused {
            error: "expired_token".to_owned(),
            description: Some("the code was not approved in time; run the sign-in again".to_owned()),
        },
        DeviceCodeErrorResponseType::Basic(
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient,
        ) => TokenError::ClientRejected { description: description.unwrap_or_else(|| r.error().to_string()) },
        other => TokenError::Refused { error: other.to_string(), description },
    }
}

/// A `private_key_jwt` client (RFC 7523): its id and signing key.
#[derive(Clone)]
pub struct JwtClient {
    pub client_id: String,
    /// PKCS#8 PEM private key.
    pub private_key_pem: SecretString,
    /// `ES256`, `ES384`, `RS256`, ...
    pub algorithm: String,
}

impl std::fmt::Debug for JwtClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtClient")
            .field("client_id", &self.client_id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl JwtClient {
    /// A fresh signed assertion for `audience` (the authorization server's
    /// issuer), valid for 5 minutes, with a unique `jti`.
    pub fn assertion(&self, audience: &str) -> Result<String, TokenError> {
        let algorithm: jsonwebtoken::Algorithm = self
            .algorithm
            .parse()
            .map_err(|_| TokenError::Config(format!("unsupported JWT algorithm {}", self.algorithm)))?;
        let pem = self.private_key_pem.expose().as_bytes();
        let key = match algorithm {
            jsonwebtoken::Algorithm::ES256 | jsonwebtoken::Algorithm::ES384 => {
                jsonwebtoken::EncodingKey::from_ec_pem(pem)
            }
            jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem),
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem),
        }
        // Never the key or the library's message about it.
        .map_err(|_| TokenError::Config("the private key is not a PEM key of the configured algorithm".to_owned()))?;
        let now = now() as u64;
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": format!("{:x}-{:x}", now, jti_nonce()),
        });
        jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)
            .map_err(|e| TokenError::Config(format!("cannot sign the client assertion: {e}")))
    }

    /// The client-credentials grant authenticated with a signed assertion.
    pub async fn client_credentials(
        &self,
        http: &Http,
        token_url: &str,
        audience: &str,
        resource: Option<&str>,
        scope: Option<&str>,
    ) -> Result<TokenSet, TokenError> {
        let assertion = self.assertion(audience)?;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion),
        ];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        token_form_request(http, token_url, &form).await
    }
}

/// A random-enough nonce for `jti` (unique per assertion, not a secret).
fn jti_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// POSTs a token request form and reads a standard token response.
async fn token_form_request(http: &Http, token_url: &str, form: &[(&str, &str)]) -> Result<TokenSet, TokenError> {
    let request = http
        .reqwest_no_redirects()
        .post(token_url)
        .form(form)
        .build()
        .map_err(|e| TokenError::Config(e.to_string()))?;
    let response = http.send(request, false).await.map_err(|e| TokenError::Transport(e.to_string()))?;
    if response.status.is_server_error() {
        return Err(TokenError::Transport(format!("HTTP {} from {token_url}", response.status)));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|_| TokenError::BadResponse("not JSON".to_owned()))?;
    if !response.status.is_success() {
        let error = body["error"].as_str().unwrap_or("unknown_error").to_owned();
        let description = body["error_description"].as_str().map(str::to_owned);
        return Err(match error.as_str() {
            "invalid_grant" => TokenError::Rejected { description: description.unwrap_or(error) },
            "invalid_client" | "unauthorized_client" => {
                TokenError::ClientRejected { description: description.unwrap_or(error) }
            }
            _ => TokenError::Refused { error, description },
        });
    }
    let access_token =
        body["access_token"].as_str().ok_or_else(|| TokenError::BadResponse("no access_token".to_owned()))?;
    let token_type = body["token_type"].as_str().unwrap_or("Bearer");
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::NotBearer { token_type: token_type.to_owned() });
    }
    Ok(TokenSet {
        access_token: SecretString::new(access_token),
        refresh_token: body["refresh_token"].as_str().map(SecretString::new),
        expires_in: body["expires_in"].as_u64(),
        received_at: now(),
        scope: body["scope"].as_str().map(str::to_owned),
    })
}

type TokenRequestError = RequestTokenError<AdapterError, StandardErrorResponse<BasicErrorResponseType>>;

fn classify(e: TokenRequestError) -> TokenError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r.error_description().cloned().unwrap_or_else(|| r.error().to_string());
            match r.error() {
                BasicErrorResponseType::InvalidGrant => TokenError::Rejected { description },
                BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                    TokenError::ClientRejected { description }
                }
                other => TokenError::Refused { error: other.to_string(), description: r.error_description().cloned() },
            }
        }
        RequestTokenError::Request(e) => TokenError::Transport(e.to_string()),
        // Deliberately not the body: a broken server might echo secrets.
        RequestTokenError::Parse(e, _) => TokenError::BadResponse(e.to_string()),
        RequestTokenError::Other(e) => TokenError::BadResponse(e),
    }
}

/// Our HTTP client as an `oauth2` async client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdapterError(String);

type AdapterFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, AdapterError>> + Send>>;

/// Owned futures (each call clones the cheap client), so the requests stay
/// `Send` for any caller, including spawned tasks.
fn adapter(http: &Http) -> impl Fn(oauth2::HttpRequest) -> AdapterFuture + use<> {
    let http = http.clone();
    move |request: oauth2::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| AdapterError(e.to_string()))?;
            let response = http.send(request, false).await.map_err(|e| AdapterError(e.to_string()))?;
            // 5xx is transient: say so instead of letting it parse as an OAuth error.
            if response.status.is_server_error() {
                return Err(AdapterError(format!("HTTP {} from {}", response.status, response.url)));
            }
            let mut builder = oauth2::http::Response::builder().status(response.status.as_u16());
            for (name, value) in &response.headers {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            builder.body(response.body).map_err(|e| AdapterError(e.to_string()))
        })
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic auth.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

//! Tokens we hold, and the token-endpoint operations rmcp does not offer:
//! refresh with our own registration, revocation (RFC 7009), the
//! client-credentials grant and the device authorization grant (RFC 8628) —
//! all through the `oauth2` crate and our [`Http`] client.

use std::time::UNIX_EPOCH;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, DeviceCodeErrorResponse, DeviceCodeErrorResponseType,
    RefreshToken, RequestTokenError, Scope, StandardDeviceAuthorizationResponse, StandardErrorResponse, TokenResponse,
    TokenUrl,
};

use super::http::Http;
use crate::oauth::client::ClientRecord;
use crate::util::secret::SecretString;
use crate::util::text::error_text;
use crate::util::time::now_secs;

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
            received_at: now_secs(),
            scope: response
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str().to_owned()).collect::<Vec<_>>().join(" "))
                .filter(|s| !s.is_empty()),
        })
    }
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
    /// An error answer from the revocation endpoint (RFC 7009 §2.2.1).
    #[error("the revocation endpoint refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    RevocationRefused { error: String, description: Option<String> },
    /// A successful answer with a new refresh token but no usable access
    /// token. Servers that rotate have already spent the refresh token we
    /// sent, so the caller must keep this one (it is the only live one).
    #[error("the token endpoint answered with a new refresh token but no usable access token")]
    PartialResponse { refresh_token: SecretString },
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

    /// RFC 7009 §2.2.1: the server does not revoke this type of token.
    pub fn is_unsupported_token_type(&self) -> bool {
        matches!(self, Self::RevocationRefused { error, .. } if error == "unsupported_token_type")
    }

    /// The refresh token a partly unreadable success carried, to be kept.
    pub fn kept_refresh_token(&self) -> Option<&SecretString> {
        match self {
            Self::PartialResponse { refresh_token } => Some(refresh_token),
            _ => None,
        }
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
        let token_url = TokenUrl::from_url(checked("token", &self.token_url)?);
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
        let parsed = checked("revocation", url)?;
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
        let request = request.form(&form).build().map_err(|e| TokenError::Config(error_text(&e)))?;
        let response = http.send(request, false).await.map_err(|e| TokenError::Transport(error_text(&e)))?;
        if response.status.is_success() {
            return Ok(());
        }
        if response.status.is_server_error() {
            return Err(TokenError::Transport(format!("HTTP {} from {url}", response.status)));
        }
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
        Err(TokenError::RevocationRefused {
            error: body["error"].as_str().map_or_else(|| format!("HTTP {}", response.status), server_code),
            description: body["error_description"].as_str().map(server_text),
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
        let url = DeviceAuthorizationUrl::from_url(checked("device authorization", device_url)?);
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
            RequestTokenError::Request(e) => e.into_token_error(),
            RequestTokenError::Parse(e, _) => TokenError::BadResponse(server_text(&error_text(&e))),
            RequestTokenError::Other(e) => TokenError::BadResponse(server_text(&e)),
        })?;
        TokenSet::from_response(&response)
    }
}

/// What revoking a grant achieved, from the answers for its refresh token
/// (when there was one) and its access token: whether the grant is ended,
/// and a note when something is worth telling.
///
/// RFC 7009 §2.2.1 lets a server answer `unsupported_token_type` for a token
/// it cannot revoke — typically a self-contained JWT access token — and
/// §2.1 says revoking a refresh token should end its access tokens too. So
/// a revoked refresh token means the grant ended, whatever the access
/// token's answer; the access token alone, refused as unsupported, stays
/// valid until it expires.
pub fn revocation_outcome(
    refresh: Option<&Result<(), TokenError>>,
    access: &Result<(), TokenError>,
) -> (bool, Option<String>) {
    let unsupported = |r: &Result<(), TokenError>| matches!(r, Err(e) if e.is_unsupported_token_type());
    match refresh {
        Some(Ok(())) => match access {
            Err(e) if !unsupported(access) => (true, Some(format!("the access token was not revoked: {e}"))),
            _ => (true, None),
        },
        Some(Err(e)) => match access {
            Ok(()) => (false, Some(format!("the refresh token was not revoked: {e}"))),
            Err(a) => (false, Some(format!("{e}; {a}"))),
        },
        None => match access {
            Ok(()) => (true, None),
            Err(_) if unsupported(access) => (
                false,
                Some(
                    "the server cannot revoke access tokens (unsupported_token_type); it stays valid until it expires"
                        .to_owned(),
                ),
            ),
            Err(e) => (false, Some(error_text(&e))),
        },
    }
}

/// The final answers of a device-code poll, in words.
fn classify_device(r: &DeviceCodeErrorResponse) -> TokenError {
    let description = r.error_description().map(|d| server_text(d));
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
        ) => TokenError::ClientRejected { description: description.unwrap_or_else(|| server_code(r.error().as_ref())) },
        other => TokenError::Refused { error: server_code(other.as_ref()), description },
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
        let now = now_secs() as u64;
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
        .post(checked("token", token_url)?)
        .form(form)
        .build()
        .map_err(|e| TokenError::Config(error_text(&e)))?;
    let response = http.send(request, false).await.map_err(|e| TokenError::Transport(error_text(&e)))?;
    if response.status.is_server_error() {
        return Err(TokenError::Transport(format!("HTTP {} from {token_url}", response.status)));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|_| TokenError::BadResponse("not JSON".to_owned()))?;
    if !response.status.is_success() {
        let error = server_code(body["error"].as_str().unwrap_or("unknown_error"));
        let description = body["error_description"].as_str().map(server_text);
        return Err(match error.as_str() {
            "invalid_grant" => TokenError::Rejected { description: description.unwrap_or(error) },
            "invalid_client" | "unauthorized_client" => {
                TokenError::ClientRejected { description: description.unwrap_or(error) }
            }
            _ => TokenError::Refused { error, description },
        });
    }
    let body = match lenient_body(&response.body) {
        Lenient::AsIs => body,
        Lenient::Rewritten(fixed) => serde_json::from_slice(&fixed).unwrap_or(body),
        Lenient::OnlyRefreshToken(refresh_token) => return Err(TokenError::PartialResponse { refresh_token }),
    };
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
        received_at: now_secs(),
        scope: body["scope"].as_str().map(str::to_owned),
    })
}

type TokenRequestError = RequestTokenError<AdapterError, StandardErrorResponse<BasicErrorResponseType>>;

fn classify(e: TokenRequestError) -> TokenError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let given = r.error_description().map(|d| server_text(d));
            let description = given.clone().unwrap_or_else(|| server_code(r.error().as_ref()));
            match r.error() {
                BasicErrorResponseType::InvalidGrant => TokenError::Rejected { description },
                BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                    TokenError::ClientRejected { description }
                }
                other => TokenError::Refused { error: server_code(other.as_ref()), description: given },
            }
        }
        RequestTokenError::Request(e) => e.into_token_error(),
        // Deliberately not the body: a broken server might echo secrets.
        RequestTokenError::Parse(e, _) => TokenError::BadResponse(server_text(&error_text(&e))),
        RequestTokenError::Other(e) => TokenError::BadResponse(server_text(&e)),
    }
}

/// Our HTTP client as an `oauth2` async client.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{0}")]
    Transport(String),
    /// A success without a usable access token, but with a refresh token.
    #[error("a token response without a usable access token")]
    Partial(SecretString),
}

impl AdapterError {
    fn into_token_error(self) -> TokenError {
        match self {
            Self::Transport(m) => TokenError::Transport(m),
            Self::Partial(refresh_token) => TokenError::PartialResponse { refresh_token },
        }
    }
}

type AdapterFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, AdapterError>> + Send>>;

/// Owned futures (each call clones the cheap client), so the requests stay
/// `Send` for any caller, including spawned tasks.
fn adapter(http: &Http) -> impl Fn(oauth2::HttpRequest) -> AdapterFuture + use<> {
    let http = http.clone();
    move |request: oauth2::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| AdapterError::Transport(error_text(&e)))?;
            let mut response = http.send(request, false).await.map_err(|e| AdapterError::Transport(error_text(&e)))?;
            // 5xx is transient: say so instead of letting it parse as an OAuth error.
            if response.status.is_server_error() {
                return Err(AdapterError::Transport(format!("HTTP {} from {}", response.status, response.url)));
            }
            if response.status.is_success() {
                match lenient_body(&response.body) {
                    Lenient::AsIs => {}
                    Lenient::Rewritten(body) => response.body = body,
                    Lenient::OnlyRefreshToken(kept) => return Err(AdapterError::Partial(kept)),
                }
            }
            let mut builder = oauth2::http::Response::builder().status(response.status.as_u16());
            for (name, value) in &response.headers {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            builder.body(response.body).map_err(|e| AdapterError::Transport(error_text(&e)))
        })
    }
}

/// `url` parsed, when it passes the endpoint rule
/// ([`super::endpoint::check_endpoint`]); a record kept from before that rule
/// existed is checked here too, before anything is sent.
fn checked(what: &str, url: &str) -> Result<url::Url, TokenError> {
    super::endpoint::check_endpoint(url).map_err(|reason| {
        TokenError::Config(format!(
            "refusing to send to the {what} endpoint `{}`: {reason}",
            super::endpoint::shown(url)
        ))
    })
}

/// An OAuth error code from a server: made safe, and short.
fn server_code(code: &str) -> String {
    crate::util::text::server_text_max(code, 80)
}

fn server_text(text: &str) -> String {
    crate::util::text::server_text(text)
}

/// Longest lifetime we believe, in seconds (a year): a longer or absurd one
/// (`1e20`) is cut to it, so the refresh only comes earlier than promised.
pub const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;

/// A lifetime (`expires_in`, `interval`) as real servers write it: a JSON
/// integer, a float, or a string of either (`"3600"` is common). Capped at
/// [`MAX_LIFETIME_SECS`]; `None` for negative, non-finite or non-numeric
/// values (the lifetime is then unknown, as if absent).
pub fn lenient_seconds(value: &serde_json::Value) -> Option<u64> {
    let number = match value {
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(whole) => return Some(whole.min(MAX_LIFETIME_SECS)),
            None => n.as_f64()?,
        },
        serde_json::Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(whole) => return Some(whole.min(MAX_LIFETIME_SECS)),
                Err(_) => s.parse::<f64>().ok()?,
            }
        }
        _ => return None,
    };
    // Float to integer only once it is known to be finite, >= 0 and in range.
    (number.is_finite() && number >= 0.0).then(|| number.min(MAX_LIFETIME_SECS as f64).floor() as u64)
}

/// What [`lenient_body`] made of a successful answer.
#[derive(Debug, PartialEq)]
enum Lenient {
    /// Standard already, or not a token answer at all: leave it to the parser.
    AsIs,
    /// Rewritten into the standard shape.
    Rewritten(Vec<u8>),
    /// No usable access token, but a refresh token that must not be lost.
    OnlyRefreshToken(SecretString),
}

/// A successful token (or device authorization) answer, forgiven what real
/// servers get wrong, so the strict parser after it accepts it: lifetimes
/// through [`lenient_seconds`], a missing `token_type` taken as Bearer (what
/// every MCP server issues), `scope` as a JSON array joined with spaces.
fn lenient_body(body: &[u8]) -> Lenient {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Lenient::AsIs;
    };
    let mut changed = false;
    for field in ["expires_in", "interval"] {
        let Some(value) = map.get(field) else { continue };
        if value.as_u64().is_some_and(|v| v <= MAX_LIFETIME_SECS) {
            continue;
        }
        changed = true;
        match lenient_seconds(value) {
            Some(seconds) => {
                map.insert(field.to_owned(), seconds.into());
            }
            None => {
                tracing::warn!(field, "the server's `{field}` is not a usable number of seconds; ignoring it");
                map.remove(field);
            }
        }
    }
    if let Some(scopes) = map.get("scope").and_then(serde_json::Value::as_array) {
        let joined: Vec<&str> = scopes.iter().filter_map(serde_json::Value::as_str).collect();
        let joined = joined.join(" ");
        map.insert("scope".to_owned(), joined.into());
        changed = true;
    }
    let access_token = map.get("access_token").and_then(serde_json::Value::as_str).is_some_and(|a| !a.is_empty());
    if access_token && !map.contains_key("token_type") {
        map.insert("token_type".to_owned(), "Bearer".into());
        changed = true;
    }
    let usable = access_token && map.get("token_type").is_some_and(serde_json::Value::is_string);
    if !usable && let Some(refresh) = map.get("refresh_token").and_then(serde_json::Value::as_str) {
        return Lenient::OnlyRefreshToken(SecretString::new(refresh));
    }
    if !changed {
        return Lenient::AsIs;
    }
    serde_json::to_vec(&map).map_or(Lenient::AsIs, Lenient::Rewritten)
}

/// [`lenient_body`] for a token request sent by rmcp (the code exchange):
/// the body rewritten when it needed forgiving. `None`: leave it as it is.
pub(crate) fn lenient_token_body(body: &[u8]) -> Option<Vec<u8>> {
    match lenient_body(body) {
        Lenient::Rewritten(body) => Some(body),
        Lenient::AsIs | Lenient::OnlyRefreshToken(_) => None,
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic auth.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes_are_read_leniently() {
        let cases = [
            (json!(3600), Some(3600)),
            (json!("3600"), Some(3600)),
            (json!(" 60 "), Some(60)),
            (json!(59.99), Some(59)),
            (json!("1.5"), Some(1)),
            (json!(0), Some(0)),
            (json!(1e20), Some(MAX_LIFETIME_SECS)),
            (json!(u64::MAX), Some(MAX_LIFETIME_SECS)),
            (json!("99999999999999999999999"), Some(MAX_LIFETIME_SECS)),
            (json!(-1), None),
            (json!(-0.5), None),
            (json!("NaN"), None),
            (json!("-inf"), None),
            (json!("an hour"), None),
            (json!(null), None),
            (json!([3600]), None),
        ];
        for (value, want) in cases {
            assert_eq!(lenient_seconds(&value), want, "{value}");
        }
    }

    fn lenient(body: serde_json::Value) -> Lenient {
        lenient_body(&serde_json::to_vec(&body).unwrap_or_default())
    }

    fn rewritten(body: serde_json::Value) -> serde_json::Value {
        match lenient(body) {
            Lenient::Rewritten(b) => serde_json::from_slice(&b).unwrap_or_default(),
            other => panic!("not rewritten: {other:?}"),
        }
    }

    #[test]
    fn token_bodies_are_forgiven() {
        let standard = json!({"access_token": "a", "token_type": "Bearer", "expires_in": 60, "refresh_token": "r"});
        assert_eq!(lenient(standard), Lenient::AsIs);
        assert_eq!(lenient(json!({"error": "invalid_grant"})), Lenient::AsIs);
        assert_eq!(lenient_body(b"not json"), Lenient::AsIs);
        assert_eq!(
            rewritten(json!({"access_token": "a", "token_type": "Bearer", "expires_in": "60"})),
            json!({"access_token": "a", "token_type": "Bearer", "expires_in": 60})
        );
        assert_eq!(
            rewritten(json!({"access_token": "a", "token_type": "Bearer", "expires_in": -3})),
            json!({"access_token": "a", "token_type": "Bearer"})
        );
        assert_eq!(rewritten(json!({"access_token": "a"})), json!({"access_token": "a", "token_type": "Bearer"}));
        assert_eq!(
            rewritten(json!({"access_token": "a", "token_type": "Bearer", "scope": ["x", "y"]})),
            json!({"access_token": "a", "token_type": "Bearer", "scope": "x y"})
        );
        assert_eq!(
            rewritten(
                json!({"device_code": "d", "user_code": "u", "verification_uri": "https://v", "expires_in": "600", "interval": "5"})
            ),
            json!({"device_code": "d", "user_code": "u", "verification_uri": "https://v", "expires_in": 600, "interval": 5})
        );
        for partial in [
            json!({"refresh_token": "r2"}),
            json!({"access_token": 7, "refresh_token": "r2"}),
            json!({"access_token": "", "refresh_token": "r2", "token_type": "Bearer"}),
            json!({"access_token": "a", "refresh_token": "r2", "token_type": 1}),
        ] {
            assert_eq!(lenient(partial.clone()), Lenient::OnlyRefreshToken(SecretString::new("r2")), "{partial}");
        }
    }

    fn refused(error: &str) -> Result<(), TokenError> {
        Err(TokenError::RevocationRefused { error: error.to_owned(), description: None })
    }

    #[test]
    fn what_a_revocation_achieved() {
        let unsupported = refused("unsupported_token_type");
        let down = || Err(TokenError::Transport("HTTP 503".to_owned()));
        type Answer = Result<(), TokenError>;
        let cases: Vec<(Option<Answer>, Answer, bool, Option<&str>)> = vec![
            (Some(Ok(())), Ok(()), true, None),
            // RFC 7009 §2.2.1: the grant ended with the refresh token.
            (Some(Ok(())), refused("unsupported_token_type"), true, None),
            (
                Some(Ok(())),
                refused("invalid_request"),
                true,
                Some("the access token was not revoked: the revocation endpoint refused: invalid_request"),
            ),
            (
                Some(refused("invalid_client")),
                Ok(()),
                false,
                Some("the refresh token was not revoked: the revocation endpoint refused: invalid_client"),
            ),
            (Some(down()), down(), false, Some("token request failed: HTTP 503; token request failed: HTTP 503")),
            (None, Ok(()), true, None),
            (
                None,
                unsupported,
                false,
                Some(
                    "the server cannot revoke access tokens (unsupported_token_type); it stays valid until it expires",
                ),
            ),
            (None, down(), false, Some("token request failed: HTTP 503")),
        ];
        for (refresh, access, revoked, note) in cases {
            let got = revocation_outcome(refresh.as_ref(), &access);
            assert_eq!(got, (revoked, note.map(str::to_owned)), "{refresh:?} / {access:?}");
        }
    }
}

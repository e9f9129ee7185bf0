//! The one HTTP client every OAuth and MCP request goes through.
//!
//! Policies, all in one place:
//! - a descriptive `User-Agent` on every request (some firewalls drop
//!   requests without one);
//! - a timeout on every request (connect and whole request);
//! - response bodies capped at [`MAX_BODY_BYTES`]: a hostile server cannot
//!   make us buffer gigabytes;
//! - redirects: at most [`MAX_REDIRECTS`], and never to plain `http://` unless
//!   the target is loopback (a downgrade would expose codes and tokens);
//! - no address filtering: authorization servers on intranet and loopback
//!   addresses are legitimate for a desktop client (unlike for a server that
//!   fetches URLs on behalf of others).
//!
//! It implements rmcp's [`OAuthHttpClient`], so rmcp's discovery,
//! registration and token requests use these policies too.

use std::sync::Once;
use std::time::Duration;

use futures_util::StreamExt;
use rmcp::transport::auth::{
    OAuthHttpClient, OAuthHttpClientError, OAuthHttpClientFuture, OAuthHttpRedirectPolicy, OAuthHttpRequest,
};

use crate::util::text::error_text;

/// Largest response body we read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `mcp-auth-tray/<version> (+<repository>)`.
pub fn user_agent() -> String {
    format!("mcp-auth-tray/{} ({}; {})", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH)
}

/// Why an HTTP exchange failed, in terms a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the response from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("refusing to follow a redirect from {from} to insecure {to}")]
    InsecureRedirect { from: String, to: String },
    #[error("too many redirects from {url}")]
    TooManyRedirects { url: String },
    #[error("no answer from {url} within {} s", timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("request to {url} failed: {reason}")]
    Other { url: String, reason: String },
}

/// A token request (RFC 6749 §3.2): a form POST with a `grant_type`.
fn is_token_request(request: &reqwest::Request) -> bool {
    let form = request
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default();
    request.method() == reqwest::Method::POST
        && form
        && url::form_urlencoded::parse(body).any(|(k, _)| k == "grant_type")
}

/// Whether a redirect to `to` is acceptable: the endpoint rule
/// ([`super::endpoint::check_url`]: HTTPS, or HTTP on loopback).
pub fn redirect_allowed(to: &url::Url) -> bool {
    super::endpoint::check_url(to).is_ok()
}

/// `127.0.0.0/8`, `::1` or `localhost`.
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Installs the process-wide TLS crypto provider (ring) once.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider was installed first; that one is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The shared HTTP client (cheap to clone).
#[derive(Debug, Clone)]
pub struct Http {
    follow: reqwest::Client,
    stop: reqwest::Client,
    timeout: Duration,
    /// `oauth.user_agent` of the server this client talks to: the
    /// `User-Agent` of token requests only (as newer agents send it).
    token_user_agent: Option<reqwest::header::HeaderValue>,
}

impl Http {
    /// A client with the default timeout.
    pub fn new() -> Result<Self, HttpError> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// A client whose requests time out after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<Self, HttpError> {
        install_crypto_provider();
        let follow_policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                let url = attempt.previous().first().map(ToString::to_string).unwrap_or_default();
                attempt.error(HttpError::TooManyRedirects { url })
            } else if !redirect_allowed(attempt.url()) {
                let from = attempt.previous().last().map(ToString::to_string).unwrap_or_default();
                let to = attempt.url().to_string();
                attempt.error(HttpError::InsecureRedirect { from, to })
            } else {
                attempt.follow()
            }
        });
        let build = |policy| {
            reqwest::Client::builder()
                .user_agent(user_agent())
                .timeout(timeout)
                .connect_timeout(CONNECT_TIMEOUT.min(timeout))
                .redirect(policy)
                .build()
                .map_err(|e| HttpError::Other { url: String::new(), reason: error_text(&e) })
        };
        Ok(Self {
            follow: build(follow_policy)?,
            stop: build(reqwest::redirect::Policy::none())?,
            timeout,
            token_user_agent: None,
        })
    }

    /// The same client sending `user_agent` (a server's `oauth.user_agent`)
    /// on token requests — code exchange, refresh, device polling — and ours
    /// everywhere else, as the agent does. `None` (or a value that cannot be
    /// a header) keeps ours.
    pub fn with_token_user_agent(&self, user_agent: Option<&str>) -> Self {
        let mut http = self.clone();
        http.token_user_agent = user_agent.and_then(|ua| reqwest::header::HeaderValue::from_str(ua).ok());
        http
    }

    /// The underlying client that follows (checked) redirects; for the MCP transport.
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.follow
    }

    /// The underlying client that never follows redirects.
    pub fn reqwest_no_redirects(&self) -> &reqwest::Client {
        &self.stop
    }

    /// Sends `request` and reads the body up to [`MAX_BODY_BYTES`].
    pub async fn send(&self, mut request: reqwest::Request, follow_redirects: bool) -> Result<Response, HttpError> {
        if let Some(ua) = &self.token_user_agent
            && is_token_request(&request)
        {
            request.headers_mut().insert(reqwest::header::USER_AGENT, ua.clone());
        }
        let url = request.url().to_string();
        let client = if follow_redirects { &self.follow } else { &self.stop };
        let response = client.execute(request).await.map_err(|e| self.classify(&url, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let final_url = response.url().to_string();
        let body = read_capped(response, &url, self.timeout).await?;
        Ok(Response { status, headers, body, url: final_url })
    }

    fn classify(&self, url: &str, e: &reqwest::Error) -> HttpError {
        // The redirect policy's own errors come back wrapped: surface them.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = source {
            if let Some(own) = err.downcast_ref::<HttpError>() {
                return match own {
                    HttpError::InsecureRedirect { from, to } => {
                        HttpError::InsecureRedirect { from: from.clone(), to: to.clone() }
                    }
                    HttpError::TooManyRedirects { url } => HttpError::TooManyRedirects { url: url.clone() },
                    other => HttpError::Other { url: url.to_owned(), reason: other.to_string() },
                };
            }
            source = err.source();
        }
        if e.is_timeout() {
            HttpError::Timeout { url: url.to_owned(), timeout: self.timeout }
        } else if e.is_connect() {
            HttpError::Connect { url: url.to_owned(), reason: root_cause(e) }
        } else {
            HttpError::Other { url: url.to_owned(), reason: root_cause(e) }
        }
    }
}

/// The innermost error message (reqwest's own are generic).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error_text(&e);
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// A buffered response.
#[derive(Debug)]
pub struct Response {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

async fn read_capped(response: reqwest::Response, url: &str, timeout: Duration) -> Result<Vec<u8>, HttpError> {
    if response.content_length().is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(HttpError::TooLarge { url: url.to_owned(), limit: MAX_BODY_BYTES });
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            if e.is_timeout() {
                HttpError::Timeout { url: url.to_owned(), timeout }
            } else {
                HttpError::Other { url: url.to_owned(), reason: root_cause(&e) }
            }
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(HttpError::TooLarge { url: url.to_owned(), limit: MAX_BODY_BYTES });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl OAuthHttpClient for Http {
    fn execute(&self, request: OAuthHttpRequest) -> OAuthHttpClientFuture<'_> {
        Box::pin(async move {
            let follow = !matches!(request.redirect_policy, OAuthHttpRedirectPolicy::Stop);
            let request =
                reqwest::Request::try_from(request.request).map_err(|e| Box::new(e) as OAuthHttpClientError)?;
            let token_request = is_token_request(&request);
            let mut response = self.send(request, follow).await.map_err(|e| Box::new(e) as OAuthHttpClientError)?;
            // rmcp's own token requests (the code exchange) get the same
            // forgiving reading as ours (`expires_in: "3600"`, ...).
            if token_request
                && response.status.is_success()
                && let Some(body) = super::tokens::lenient_token_body(&response.body)
            {
                response.body = body;
            }
            let mut builder = oauth2::http::Response::builder().status(response.status.as_u16());
            for (name, value) in &response.headers {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            builder.body(response.body).map_err(|e| Box::new(e) as OAuthHttpClientError)
        })
    }
}

#[cfg(test)]
mod tests;

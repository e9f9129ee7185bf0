//! Which transport the proxy speaks to its remote server, and the one
//! transport type the relay holds for either: rmcp's Streamable HTTP client
//! or our legacy HTTP+SSE client ([`super::sse`]).
//!
//! The rule ([`RemoteTransport`]), first match wins:
//! 1. `mcp-auth proxy --transport http|sse` says so.
//! 2. The server's config says so: the agent's `transport: sse`, or
//!    `"transport": "sse"` in an entry of our own list, for the same URL
//!    (compared as grants are, [`crate::normalize_url`]).
//! 3. Otherwise auto-detection, as the MCP spec's backwards-compatibility
//!    section describes: the client's first message (its `initialize`) is
//!    POSTed as Streamable HTTP; when the server answers with a 4xx that is
//!    not about the token, scope or rate (404, 405, 400, …), a GET of the
//!    same URL must open an event stream whose first event is `endpoint`,
//!    and the session continues as legacy SSE. A URL whose path ends in
//!    `/sse` (the usual legacy endpoint) is tried in the other order. When
//!    neither answers as its transport, the client gets both reasons.
//!
//! Detection happens once, on the first message, before anything else is
//! relayed; the transport then stays for the session.

use std::sync::Arc;

use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::transport::{StreamableHttpClientTransport, Transport};

use super::proxy::{Credentials, VaultAuthClient};
use super::sse::{self, SseConfig, SseError, SseTransport};
use crate::clients::OwnList;
use crate::hermes::snapshot::Snapshot;
use crate::oauth::http::Http;

/// How the proxy talks to its remote server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RemoteTransport {
    /// Detect it (see the module docs).
    #[default]
    Auto,
    /// Streamable HTTP (MCP 2025-03-26 and later).
    StreamableHttp,
    /// Legacy HTTP+SSE (MCP 2024-11-05).
    Sse,
}

impl RemoteTransport {
    /// `auto`, `http` (also `streamable-http`), `sse`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "http" | "streamable-http" | "streamable_http" | "streamablehttp" => Some(Self::StreamableHttp),
            "sse" => Some(Self::Sse),
            _ => None,
        }
    }
}

/// What the configs say about the transport of the server at `url`: SSE
/// when the agent's entry for that URL has `transport: sse` or our list's
/// has `"transport": "sse"`; else [`RemoteTransport::Auto`].
pub fn declared_transport(snapshot: &Snapshot, own: &OwnList, url: &url::Url) -> RemoteTransport {
    let wanted = crate::clients::normalize_url(url);
    let same = |text: &str| crate::clients::grant::normalize_url_text(text).is_some_and(|u| u == wanted);
    let agents = snapshot
        .homes
        .iter()
        .flat_map(|h| h.servers.iter())
        .filter_map(|e| e.config.as_ref().ok())
        .any(|c| c.sse && c.url.as_deref().is_some_and(same));
    let ours =
        own.servers().any(|(name, u)| same(u) && own.transport_of(name).is_some_and(|t| t.eq_ignore_ascii_case("sse")));
    if agents || ours { RemoteTransport::Sse } else { RemoteTransport::Auto }
}

/// Whether a failed Streamable HTTP start means "not this transport": the
/// server answered the POST with a 4xx that is not about the token, scope
/// or rate (rmcp reports those as `HTTP <status>: <body>`), or with a body
/// that is no MCP answer.
pub fn http_wrong_transport(error: &StreamableHttpError<reqwest::Error>) -> bool {
    match error {
        StreamableHttpError::UnexpectedServerResponse(message) => message
            .strip_prefix("HTTP ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .is_some_and(sse::wrong_transport_status),
        StreamableHttpError::HttpStatus(status) => sse::wrong_transport_status(status.status),
        StreamableHttpError::UnexpectedContentType(_) => true,
        _ => false,
    }
}

/// Why the remote side could not start or send.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Http(StreamableHttpError<reqwest::Error>),
    #[error(transparent)]
    Sse(SseError),
    #[error("{url} answered neither as a Streamable HTTP MCP server ({http}) nor as a legacy SSE one ({sse})")]
    Neither { url: String, http: String, sse: String },
}

/// The relay's remote side, one transport or the other.
pub enum Remote {
    Http(StreamableHttpClientTransport<VaultAuthClient>),
    Sse(SseTransport),
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Http(_) => "Remote::Http",
            Self::Sse(_) => "Remote::Sse",
        })
    }
}

impl Remote {
    /// Starts the session with the client's first message (its
    /// `initialize`) on the transport `choice` picks (detecting it for
    /// [`RemoteTransport::Auto`]).
    pub async fn start(
        http: &Http,
        credentials: Arc<Credentials>,
        choice: RemoteTransport,
        first: ClientJsonRpcMessage,
    ) -> Result<Self, RemoteError> {
        match choice {
            RemoteTransport::StreamableHttp => start_http(http, credentials, first).await.map_err(RemoteError::Http),
            RemoteTransport::Sse => start_sse(http, credentials, first).await.map_err(RemoteError::Sse),
            RemoteTransport::Auto => {
                let url = credentials.server().url.clone();
                let shown = || crate::view::status::redact_url(url.as_str());
                let neither = |http: &dyn std::fmt::Display, sse: &dyn std::fmt::Display| RemoteError::Neither {
                    url: shown(),
                    http: http.to_string(),
                    sse: sse.to_string(),
                };
                if url.path().trim_end_matches('/').ends_with("/sse") {
                    match start_sse(http, credentials.clone(), first.clone()).await {
                        Err(sse) if sse.is_wrong_transport() => {
                            tracing::info!("not a legacy SSE server; trying Streamable HTTP");
                            match start_http(http, credentials, first).await {
                                Err(e) if http_wrong_transport(&e) => Err(neither(&e, &sse)),
                                other => other.map_err(RemoteError::Http),
                            }
                        }
                        other => other.map_err(RemoteError::Sse),
                    }
                } else {
                    match start_http(http, credentials.clone(), first.clone()).await {
                        Err(e) if http_wrong_transport(&e) => {
                            tracing::info!(error = %e, "not a Streamable HTTP server; trying legacy SSE");
                            match start_sse(http, credentials, first).await {
                                Err(sse) if sse.is_wrong_transport() => Err(neither(&e, &sse)),
                                other => other.map_err(RemoteError::Sse),
                            }
                        }
                        other => other.map_err(RemoteError::Http),
                    }
                }
            }
        }
    }
}

async fn start_http(
    http: &Http,
    credentials: Arc<Credentials>,
    first: ClientJsonRpcMessage,
) -> Result<Remote, StreamableHttpError<reqwest::Error>> {
    let config = StreamableHttpClientTransportConfig::with_uri(credentials.server().url.as_str().to_owned());
    let client = VaultAuthClient::new(http, credentials);
    let mut transport = StreamableHttpClientTransport::with_client(client, config);
    transport.send(first).await?;
    Ok(Remote::Http(transport))
}

async fn start_sse(
    http: &Http,
    credentials: Arc<Credentials>,
    first: ClientJsonRpcMessage,
) -> Result<Remote, SseError> {
    let mut transport = sse::connect(http, credentials, SseConfig::default()).await?;
    transport.send(first).await?;
    Ok(Remote::Sse(transport))
}

impl Transport<RoleClient> for Remote {
    type Error = RemoteError;

    fn send(&mut self, item: ClientJsonRpcMessage) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        use futures_util::FutureExt;
        match self {
            Self::Http(t) => t.send(item).map(|r| r.map_err(RemoteError::Http)).boxed(),
            Self::Sse(t) => t.send(item).map(|r| r.map_err(RemoteError::Sse)).boxed(),
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        match self {
            Self::Http(t) => t.receive().await,
            Self::Sse(t) => t.receive().await,
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        match self {
            Self::Http(t) => t.close().await.map_err(RemoteError::Http),
            Self::Sse(t) => t.close().await.map_err(RemoteError::Sse),
        }
    }
}

#[cfg(test)]
mod tests;

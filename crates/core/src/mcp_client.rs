//! Using a token on an MCP server: connect, list tools, call a tool.
//!
//! A thin layer over rmcp's Streamable HTTP client that speaks either the
//! classic `initialize` handshake (servers up to 2025-11-25: we accept the
//! version the server answers) or the stateless 2026-07-28 wire, and turns a
//! 401/403 with a `WWW-Authenticate` challenge into [`McpError::Auth`], so a
//! caller can re-authorize or step up scope.

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientInitializeError, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};

use crate::oauth::http::Http;
use crate::oauth::www_authenticate::{BearerChallenge, bearer_challenge};
use crate::secret::SecretString;

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `initialize` handshake offering 2025-11-25 (older servers answer
    /// with their own version, which we then use).
    Initialize,
    /// The stateless 2026-07-28 protocol (`server/discover`, per-request metadata).
    Stateless,
}

/// Why an MCP request failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// 401 or 403 with a challenge: the token is not (or no longer) enough.
    #[error("the server asks for authorization{}", challenge.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Auth {
        challenge: BearerChallenge,
        /// The `WWW-Authenticate` value as received.
        raw: String,
    },
    #[error("MCP request failed: {0}")]
    Other(String),
}

impl McpError {
    fn from_challenge(challenge: Option<&str>, other: String) -> Self {
        match challenge.and_then(|raw| bearer_challenge([raw]).map(|c| (c, raw))) {
            Some((challenge, raw)) => Self::Auth { challenge, raw: raw.to_owned() },
            None => Self::Other(other),
        }
    }
}

impl From<ServiceError> for McpError {
    fn from(e: ServiceError) -> Self {
        Self::from_challenge(e.auth_challenge(), e.to_string())
    }
}

impl From<ClientInitializeError> for McpError {
    fn from(e: ClientInitializeError) -> Self {
        Self::from_challenge(e.auth_challenge(), e.to_string())
    }
}

/// A connected MCP session.
pub struct McpSession {
    service: RunningService<RoleClient, ClientConfig>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession").finish_non_exhaustive()
    }
}

impl McpSession {
    /// Connects to `url` with `token` (sent as a Bearer token), or without
    /// one (to find out what the server asks for).
    pub async fn connect(http: &Http, url: &str, token: Option<&SecretString>, wire: Wire) -> Result<Self, McpError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
        if let Some(token) = token {
            config = config.auth_header(token.expose().to_owned());
        }
        let transport = StreamableHttpClientTransport::with_client(http.reqwest().clone(), config);
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-auth-tray", env!("CARGO_PKG_VERSION")),
        );
        let service = match wire {
            Wire::Initialize => client.with_protocol_version(ProtocolVersion::V_2025_11_25).serve(transport).await?,
            Wire::Stateless => {
                let lifecycle =
                    ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
                client
                    .with_protocol_version(ProtocolVersion::V_2026_07_28)
                    .serve_with_lifecycle(transport, lifecycle)
                    .await?
            }
        };
        Ok(Self { service })
    }

    /// The names of the server's tools.
    pub async fn list_tools(&self) -> Result<Vec<String>, McpError> {
        let tools = self.service.list_all_tools().await?;
        Ok(tools.into_iter().map(|t| t.name.to_string()).collect())
    }

    /// Calls tool `name` without arguments; a tool-level error is an error.
    pub async fn call_tool(&self, name: &str) -> Result<(), McpError> {
        let result = self.service.call_tool(CallToolRequestParams::new(name.to_owned())).await?;
        if result.is_error == Some(true) {
            return Err(McpError::Other(format!("the tool `{name}` reported an error")));
        }
        Ok(())
    }

    /// Ends the session.
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }
}

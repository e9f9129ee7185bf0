//! Using a token on an MCP server: connect, list tools, call a tool.
//!
//! A thin layer over rmcp's Streamable HTTP client that speaks either the
//! classic `initialize` handshake (servers up to 2025-11-25: we accept the
//! version the server answers) or the stateless 2026-07-28 wire, and turns a
//! 401/403 with a `WWW-Authenticate` challenge into [`McpError::Auth`], so a
//! caller can re-authorize or step up scope.
//!
//! Listing tools follows `nextCursor`, which a server controls: the listing
//! stops after [`MAX_TOOL_PAGES`] pages or [`MAX_TOOLS`] tools, or at a cursor
//! it already followed, and returns what it has (rmcp's `list_all_tools`
//! would loop as long as the server answers).

use std::collections::HashSet;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams, ProtocolVersion,
};
use rmcp::service::{ClientInitializeError, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};

use crate::oauth::http::Http;
use crate::oauth::www_authenticate::{BearerChallenge, bearer_challenge};
use crate::util::secret::SecretString;
use crate::util::text::error_text;

/// The most `tools/list` pages one listing asks for.
pub const MAX_TOOL_PAGES: usize = 100;

/// The most tools one listing keeps.
pub const MAX_TOOLS: usize = 10_000;

/// What to do after a page of `tools/list`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// Ask for the page at this cursor.
    Page(String),
    /// The server said this was the last page.
    Done,
    /// Stop early: the server pages without end (why, for the log).
    Stop(&'static str),
}

/// Follows `nextCursor` within the bounds.
#[derive(Debug, Default)]
struct Pager {
    pages: usize,
    seen: HashSet<String>,
}

impl Pager {
    /// After a page: its `next_cursor`, and the tools listed so far.
    fn after_page(&mut self, next_cursor: Option<String>, tools: usize) -> Next {
        self.pages += 1;
        let Some(cursor) = next_cursor else { return Next::Done };
        if tools >= MAX_TOOLS {
            Next::Stop("too many tools")
        } else if self.pages >= MAX_TOOL_PAGES {
            Next::Stop("too many pages")
        } else if !self.seen.insert(cursor.clone()) {
            Next::Stop("a cursor repeats")
        } else {
            Next::Page(cursor)
        }
    }
}

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
        Self::from_challenge(e.auth_challenge(), error_text(&e))
    }
}

impl From<ClientInitializeError> for McpError {
    fn from(e: ClientInitializeError) -> Self {
        Self::from_challenge(e.auth_challenge(), error_text(&e))
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

    /// The names of the server's tools (at most [`MAX_TOOLS`], from at most
    /// [`MAX_TOOL_PAGES`] pages).
    pub async fn list_tools(&self) -> Result<Vec<String>, McpError> {
        let mut names = Vec::new();
        let mut pager = Pager::default();
        let mut cursor = None;
        loop {
            let params = PaginatedRequestParams::default().with_cursor(cursor.take());
            let page = self.service.list_tools(Some(params)).await?;
            names.extend(page.tools.into_iter().map(|t| t.name.to_string()));
            match pager.after_page(page.next_cursor, names.len()) {
                Next::Page(next) => cursor = Some(next),
                Next::Done => break,
                Next::Stop(why) => {
                    tracing::warn!(pages = pager.pages, tools = names.len(), why, "stopped listing the server's tools");
                    break;
                }
            }
        }
        names.truncate(MAX_TOOLS);
        Ok(names)
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

#[cfg(test)]
mod tests {
    use mcp_auth_test_support::{Behaviour, FakeServer, ToolPaging};
    use rstest::rstest;

    use super::*;

    /// `after_page` over a series of (next cursor, tools so far).
    fn follow(pages: &[(Option<&str>, usize)]) -> Vec<Next> {
        let mut pager = Pager::default();
        pages.iter().map(|(c, n)| pager.after_page(c.map(str::to_owned), *n)).collect()
    }

    #[rstest]
    #[case::one_page(&[(None, 3)], vec![Next::Done])]
    #[case::two_pages(&[(Some("a"), 3), (None, 5)], vec![Next::Page("a".into()), Next::Done])]
    #[case::repeated(&[(Some("a"), 1), (Some("b"), 2), (Some("a"), 3)], vec![Next::Page("a".into()), Next::Page("b".into()), Next::Stop("a cursor repeats")])]
    #[case::too_many_tools(&[(Some("a"), MAX_TOOLS)], vec![Next::Stop("too many tools")])]
    #[case::last_page_may_be_full(&[(None, MAX_TOOLS + 5)], vec![Next::Done])]
    fn paging(#[case] pages: &[(Option<&str>, usize)], #[case] want: Vec<Next>) {
        assert_eq!(follow(pages), want);
    }

    #[test]
    fn pages_are_capped() {
        let cursors: Vec<String> = (0..MAX_TOOL_PAGES).map(|i| format!("c{i}")).collect();
        let pages: Vec<(Option<&str>, usize)> = cursors.iter().map(|c| (Some(c.as_str()), 1)).collect();
        let got = follow(&pages);
        assert!(got[..MAX_TOOL_PAGES - 1].iter().all(|n| matches!(n, Next::Page(_))));
        assert_eq!(got[MAX_TOOL_PAGES - 1], Next::Stop("too many pages"));
    }

    async fn listed(paging: ToolPaging) -> (Vec<String>, usize) {
        let server = FakeServer::start(Behaviour { tool_paging: paging, ..Default::default() }).await.expect("server");
        let token = SecretString::new(server.mint_access_token());
        let http = Http::new().expect("http");
        let session =
            McpSession::connect(&http, &server.mcp_url(), Some(&token), Wire::Initialize).await.expect("connect");
        let listing = tokio::time::timeout(std::time::Duration::from_secs(60), session.list_tools()).await;
        session.close().await;
        let tools = listing.expect("the listing never ended").expect("listed");
        let calls = server.log().mcp_calls.iter().filter(|m| *m == "tools/list").count();
        (tools, calls)
    }

    #[tokio::test]
    async fn an_endless_listing_stops_at_the_page_cap() {
        let (tools, calls) = listed(ToolPaging::Endless).await;
        assert_eq!(calls, MAX_TOOL_PAGES);
        assert_eq!(tools.len(), MAX_TOOL_PAGES);
        assert_eq!(tools.last().map(String::as_str), Some("tool-100"));
    }

    #[tokio::test]
    async fn a_repeated_cursor_stops_the_listing() {
        let (tools, calls) = listed(ToolPaging::Repeated).await;
        // The first page, then the page at `again`, which names `again` again.
        assert_eq!((tools.len(), calls), (2, 2));
        assert_eq!(listed(ToolPaging::Single).await, (vec!["test-tool".to_owned()], 1));
    }
}

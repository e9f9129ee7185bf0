//! `mcp-auth conformance-client <server-url>`: drives our engine for the MCP
//! conformance suite (`@modelcontextprotocol/conformance`).
//!
//! The suite starts a test MCP server and authorization server, runs this
//! command with the server URL as the last argument, and sets
//! `MCP_CONFORMANCE_SCENARIO`, optionally `MCP_CONFORMANCE_CONTEXT` (JSON:
//! pre-registered credentials, keys) and `MCP_CONFORMANCE_PROTOCOL_VERSION`.
//! Its authorization endpoint approves at once, so the "browser" is our
//! scripted [`HeadlessBrowser`] that follows the redirect into our real
//! loopback listener. After authorizing we use the token like an agent
//! would: connect, list tools, call `test-tool`; a 403 `insufficient_scope`
//! triggers a step-up, a 401 a fresh authorization (the authorization server
//! may have moved). At most 3 authorizations per run. Exit 0 on success.
//!
//! Nothing here implements OAuth: it only chooses which engine entry point a
//! scenario needs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mcp_auth_core::CallbackRouter;
use mcp_auth_core::HeadlessBrowser;
use mcp_auth_core::Http;
use mcp_auth_core::LoopbackListener;
use mcp_auth_core::SecretString;
use mcp_auth_core::canonical_resource;
use mcp_auth_core::{ClientRecord, Discovered};
use mcp_auth_core::{Engine, MAX_AUTHORIZATIONS, Probe, Step, Target};
use mcp_auth_core::{JwtClient, TokenEndpoint};
use mcp_auth_core::{McpError, McpSession, Wire};
use rmcp::transport::auth::enterprise::{EmaAuthorizationServer, EmaClientAuthentication, EmaExchangeRequest};
use serde_json::Value;

/// The whole run must end well within the suite's 30 s default.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// Client ID Metadata Document URL to use when the server supports CIMD.
    #[arg(long, value_name = "URL", default_value = "https://conformance-test.local/client-metadata.json")]
    client_metadata_url: String,
    /// The MCP server URL (the suite appends it as the last argument).
    server_url: String,
}

struct Scenario {
    name: String,
    context: Value,
    wire: Wire,
}

impl Scenario {
    fn from_env() -> anyhow::Result<Self> {
        let name = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
        let context = match std::env::var("MCP_CONFORMANCE_CONTEXT") {
            Ok(text) => serde_json::from_str(&text).context("MCP_CONFORMANCE_CONTEXT is not JSON")?,
            Err(_) => Value::Null,
        };
        let wire = match std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION").as_deref() {
            Ok("2026-07-28") => Wire::Stateless,
            _ => Wire::Initialize,
        };
        Ok(Self { name, context, wire })
    }

    fn text(&self, key: &str) -> Option<String> {
        self.context.get(key).and_then(Value::as_str).map(str::to_owned)
    }

    fn require(&self, key: &str) -> anyhow::Result<String> {
        self.text(key).with_context(|| format!("MCP_CONFORMANCE_CONTEXT has no `{key}`"))
    }
}

pub async fn run(args: &ConformanceArgs) -> anyhow::Result<()> {
    let scenario = Scenario::from_env()?;
    tracing::info!(scenario = %scenario.name, url = %args.server_url, "conformance client");
    let http = Http::with_timeout(HTTP_TIMEOUT)?;
    let router = CallbackRouter::new();
    let listener = LoopbackListener::bind(0, router.clone()).await?;
    let engine = Engine::new(http.clone(), router, Arc::new(HeadlessBrowser::new(http.clone())));
    let target = Target {
        name: "conformance".to_owned(),
        url: args.server_url.parse().context("the server URL is not a URL")?,
        client_id: scenario.text("client_id"),
        client_secret: scenario.text("client_secret").map(SecretString::new),
        issuer: None,
        scope: None,
        extra_scope: None,
        client_name: "mcp-auth-tray conformance client".to_owned(),
        client_metadata_url: Some(args.client_metadata_url.clone()),
        omit_resource: false,
        timeout: HTTP_TIMEOUT,
        user_agent: None,
        registration: Default::default(),
    };
    match scenario.name.as_str() {
        "auth/client-credentials-basic" => client_credentials_basic(&engine, &target, &scenario).await,
        "auth/client-credentials-jwt" => client_credentials_jwt(&engine, &target, &scenario).await,
        "auth/enterprise-managed-authorization" | "auth/cross-app-access-complete-flow" => {
            enterprise_managed(&engine, &target, &scenario).await
        }
        _ => authorization_code(&engine, &target, &listener.redirect_uri(), scenario.wire).await,
    }
}

fn log_step(step: Step) {
    match step {
        Step::WaitingForBrowser { .. } => tracing::info!("authorization page opened"),
        other => tracing::info!(step = ?other, "progress"),
    }
}

/// Connect, list tools, call `test-tool`.
async fn use_server(http: &Http, url: &str, token: &SecretString, wire: Wire) -> Result<(), McpError> {
    let session = McpSession::connect(http, url, Some(token), wire).await?;
    let result = async {
        let tools = session.list_tools().await?;
        tracing::info!(?tools, "tools listed");
        session.call_tool("test-tool").await
    }
    .await;
    session.close().await;
    result
}

async fn authorization_code(engine: &Engine, target: &Target, redirect_uri: &str, wire: Wire) -> anyhow::Result<()> {
    let mut authorizations = 1;
    let mut auth = engine.authorize(target, redirect_uri, None, &log_step).await?;
    loop {
        let outcome = use_server(engine.http(), target.url.as_str(), &auth.tokens.access_token, wire).await;
        let challenge = match outcome {
            Ok(()) => return Ok(()),
            Err(McpError::Auth { challenge, .. }) => challenge,
            Err(e) => return Err(e.into()),
        };
        if authorizations >= MAX_AUTHORIZATIONS {
            bail!("still not authorized after {authorizations} authorizations ({challenge:?}); giving up");
        }
        authorizations += 1;
        if challenge.is_insufficient_scope() {
            let needed = challenge.scope.clone().unwrap_or_default();
            tracing::info!(%needed, "step-up: authorizing again with more scope");
            let url = auth.manager.request_scope_upgrade(&needed).await?;
            auth.tokens =
                engine.complete_authorization_url(&auth.manager, target, &auth.discovered, &url, &log_step).await?;
        } else {
            // Rejected token: discover again (the authorization server may have
            // changed) and sign in afresh, keeping nothing from the old server.
            tracing::info!("token rejected: discovering and authorizing again");
            auth = engine.authorize(target, redirect_uri, None, &log_step).await?;
        }
    }
}

/// Probe + discovery only (machine clients need the token endpoint and issuer).
async fn discover(engine: &Engine, target: &Target) -> anyhow::Result<Discovered> {
    let probe = engine.probe(&target.url).await?;
    if let Probe::Open { .. } = probe {
        bail!("the server did not ask for authorization");
    }
    let (_manager, discovered) = engine.discover(target, &probe).await?;
    Ok(discovered)
}

async fn finish_with_token(engine: &Engine, target: &Target, token: &SecretString) -> anyhow::Result<()> {
    use_server(engine.http(), target.url.as_str(), token, Wire::Initialize).await.map_err(Into::into)
}

async fn client_credentials_basic(engine: &Engine, target: &Target, scenario: &Scenario) -> anyhow::Result<()> {
    let discovered = discover(engine, target).await?;
    let endpoint = TokenEndpoint {
        token_url: discovered.token_endpoint.clone(),
        revocation_url: None,
        client: ClientRecord {
            client_id: scenario.require("client_id")?,
            client_secret: Some(SecretString::new(scenario.require("client_secret")?)),
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            response_types: Vec::new(),
            scope: None,
            client_name: None,
            client_id_issued_at: None,
        },
        resource: Some(canonical_resource(&target.url)),
    };
    let tokens = endpoint.client_credentials(engine.http(), None).await?;
    finish_with_token(engine, target, &tokens.access_token).await
}

async fn client_credentials_jwt(engine: &Engine, target: &Target, scenario: &Scenario) -> anyhow::Result<()> {
    let discovered = discover(engine, target).await?;
    let client = JwtClient {
        client_id: scenario.require("client_id")?,
        private_key_pem: SecretString::new(scenario.require("private_key_pem")?),
        algorithm: scenario.text("signing_algorithm").unwrap_or_else(|| "ES256".to_owned()),
    };
    let audience = discovered.issuer.clone().context("the authorization server metadata has no issuer")?;
    let tokens = client
        .client_credentials(engine.http(), &discovered.token_endpoint, &audience, Some(target.url.as_str()), None)
        .await?;
    finish_with_token(engine, target, &tokens.access_token).await
}

/// Enterprise-managed authorization (ID-JAG): the enterprise IdP's ID token
/// is exchanged for an ID-JAG, which the MCP server's authorization server
/// exchanges for an access token (rmcp's implementation).
async fn enterprise_managed(engine: &Engine, target: &Target, scenario: &Scenario) -> anyhow::Result<()> {
    let discovered = discover(engine, target).await?;
    let issuer = discovered.issuer.clone().context("the authorization server metadata has no issuer")?;
    let idp = EmaAuthorizationServer::new(
        scenario.require("idp_issuer")?,
        scenario.require("idp_token_endpoint")?,
        scenario.require("idp_client_id")?,
    );
    let resource_as =
        EmaAuthorizationServer::new(issuer, discovered.token_endpoint.clone(), scenario.require("client_id")?)
            .with_client_authentication(EmaClientAuthentication::ClientSecretBasic(oauth2::ClientSecret::new(
                scenario.require("client_secret")?,
            )));
    let id_token = scenario.require("idp_id_token")?;
    let resource = target.url.to_string();
    let token = EmaExchangeRequest::new_with_id_token(idp, resource_as, &resource, &id_token)
        .exchange(engine.http(), engine.http())
        .await
        .map_err(|e| anyhow::anyhow!("enterprise-managed exchange failed: {e}"))?;
    let token = SecretString::new(token.access_token.secret().clone());
    finish_with_token(engine, target, &token).await
}

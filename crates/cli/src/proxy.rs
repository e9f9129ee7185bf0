//! `mcp-auth proxy <server>` (a stdio MCP server relaying to the remote
//! server with the vault's token) and `mcp-auth headers [<server>]` (the
//! `Authorization` header for a client's headers helper).
//!
//! Both print nothing on stdout but their protocol (MCP messages; one JSON
//! object): messages for the user go to stderr.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use mcp_auth_core::CallbackRouter;
use mcp_auth_core::Engine;
use mcp_auth_core::Http;
use mcp_auth_core::Refresher;
use mcp_auth_core::Vault;
use mcp_auth_core::{
    Credentials, OwnListFile, ProxyError, ProxyServer, SettingsFile, SnapshotLoader, Upstream, authorization_headers,
    open_vault, relay, resolve_grant,
};

use crate::term::Progress;

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// The server: its name in the agent's config (`profile/name` when
    /// several profiles have it) or its URL.
    #[arg(value_name = "SERVER")]
    server: String,
    /// The Hermes profile the server is in (default: the default home).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Not signed in yet: sign in first (the URL is printed on stderr; the
    /// browser opens only when `"proxy_opens_browser": true` is in the settings).
    #[arg(long)]
    connect: bool,
}

#[derive(Debug, clap::Args)]
pub struct HeadersArgs {
    /// The server: its name or URL (default: $CLAUDE_CODE_MCP_SERVER_NAME,
    /// else $CLAUDE_CODE_MCP_SERVER_URL, as Claude Code's headersHelper sets them).
    #[arg(value_name = "SERVER")]
    server: Option<String>,
    /// The Hermes profile the server is in (default: the default home).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
}

fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "mcp-auth proxy: {line}");
}

/// The server `spec` names (see [`resolve_grant`]), off the async threads
/// (keychain reads).
async fn resolve(
    snapshot: mcp_auth_core::Snapshot,
    vault: Vault,
    spec: String,
    profile: Option<String>,
) -> anyhow::Result<ProxyServer> {
    tokio::task::spawn_blocking(move || {
        let file = OwnListFile::default_location().context("cannot find a config folder for our server list")?;
        let own = file.load().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read our server list; looking in the agent's config only");
            mcp_auth_core::OwnList::default()
        });
        let own_home = file.path().parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(resolve_grant(&snapshot, &own, &own_home, &vault, &spec, profile.as_deref())?)
    })
    .await?
}

pub async fn run_proxy(hermes_home: Option<&Path>, args: &ProxyArgs) -> anyhow::Result<()> {
    let root = mcp_auth_core::HermesRoot::resolve(hermes_home);
    let snapshot = SnapshotLoader::new().load(&root);
    let settings = SettingsFile::default_location().context("cannot find a config folder for the app's settings")?;
    let http = Http::new()?;
    let upstream = match open_vault(&settings.load()) {
        Err(e) => Upstream::Refused(ProxyError::Unavailable { server: args.server.clone(), reason: e.to_string() }),
        Ok(vault) => {
            let target = resolve(snapshot, vault.clone(), args.server.clone(), args.profile.clone()).await?;
            upstream(&http, &settings, vault, target, args.connect).await?
        }
    };
    if let Upstream::Refused(reason) = &upstream {
        say(&reason.to_string());
    }
    relay(upstream, &http, tokio::io::stdin(), tokio::io::stdout()).await?;
    Ok(())
}

/// The credentials to relay with, signing in first when asked.
async fn upstream(
    http: &Http,
    settings: &SettingsFile,
    vault: Vault,
    target: ProxyServer,
    connect: bool,
) -> anyhow::Result<Upstream> {
    // Tokens the agent has too stay in step with it; nothing is created for it.
    let refresher = Refresher::new(http.clone(), target.refresh_exporter());
    let server = target.server.clone();
    match Credentials::open(vault.clone(), refresher.clone(), server.clone()).await {
        Ok(credentials) => Ok(Upstream::Remote(Arc::new(credentials))),
        Err(e @ (ProxyError::NotSignedIn { .. } | ProxyError::SignInAgain { .. })) if connect => {
            say(&format!("{e}; signing in now"));
            sign_in(http, settings, &vault, &target).await?;
            let credentials = Credentials::open(vault, refresher, server).await?;
            Ok(Upstream::Remote(Arc::new(credentials)))
        }
        Err(e) => Ok(Upstream::Refused(e)),
    }
}

/// The normal sign-in, its result kept in the vault only (the agent's files
/// are updated only if the agent already has them).
async fn sign_in(http: &Http, settings: &SettingsFile, vault: &Vault, target: &ProxyServer) -> anyhow::Result<()> {
    let router = CallbackRouter::new();
    let opens_browser = settings.load().proxy_opens_browser;
    let engine = Engine::new(http.clone(), router.clone(), crate::connect::choose_browser(!opens_browser, false));
    let server = &target.server;
    let progress = Progress::new(Some(&server.name));
    let exporter = target.sign_in_exporter();
    let lines = crate::connect::connect_one(
        &engine,
        &router,
        settings,
        vault,
        exporter.as_ref(),
        server,
        server.default_grant(),
        &progress,
    )
    .await?;
    if let Some(first) = lines.first() {
        say(first);
    }
    Ok(())
}

/// What `headers` is about: the argument, else Claude Code's variables
/// (the name when it names a server of ours, else the URL).
async fn headers_server(
    snapshot: &mcp_auth_core::Snapshot,
    vault: &Vault,
    args: &HeadersArgs,
) -> anyhow::Result<ProxyServer> {
    let find = |spec: &str| resolve(snapshot.clone(), vault.clone(), spec.to_owned(), args.profile.clone());
    if let Some(spec) = &args.server {
        return find(spec).await;
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (name, url) = (var("CLAUDE_CODE_MCP_SERVER_NAME"), var("CLAUDE_CODE_MCP_SERVER_URL"));
    let by_name = match &name {
        Some(name) => Some(find(name).await),
        None => None,
    };
    match (by_name, url) {
        (Some(Ok(server)), _) => Ok(server),
        (_, Some(url)) => find(&url).await,
        (Some(Err(e)), None) => Err(e),
        (None, None) => anyhow::bail!(
            "no server given: name one, or run as a headersHelper (CLAUDE_CODE_MCP_SERVER_NAME / CLAUDE_CODE_MCP_SERVER_URL)"
        ),
    }
}

pub async fn run_headers(hermes_home: Option<&Path>, args: &HeadersArgs) -> anyhow::Result<()> {
    let root = mcp_auth_core::HermesRoot::resolve(hermes_home);
    let snapshot = SnapshotLoader::new().load(&root);
    let settings = SettingsFile::default_location().context("cannot find a config folder for the app's settings")?;
    let vault = open_vault(&settings.load())?;
    let target = headers_server(&snapshot, &vault, args).await?;
    let refresher = Refresher::new(Http::new()?, target.refresh_exporter());
    let credentials = Credentials::open(vault, refresher, target.server).await?;
    let headers = authorization_headers(&credentials).await?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &headers)?;
    writeln!(out)?;
    Ok(())
}

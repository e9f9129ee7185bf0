//! `disconnect`, `logout --all`, `export [--check]`, `version`.

use std::io::Write;
use std::path::Path;

use anyhow::bail;
use mcp_auth_core::HermesExporter;
use mcp_auth_core::Http;
use mcp_auth_core::Vault;
use mcp_auth_core::{Drift, OAuthServer, disconnect, drift, export_server, find_oauth_server, oauth_servers};
use mcp_auth_core::{HermesRoot, Snapshot, SnapshotLoader, open_default_vault};

#[derive(Debug, clap::Args)]
pub struct DisconnectArgs {
    /// The server's name under `mcp_servers`.
    server: String,
    /// The Hermes profile the server is in (default: the default home).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Every OAuth server of every profile (required: logging out is broad).
    #[arg(long, required = true)]
    all: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Only report where the agent's files differ from the vault; write nothing.
    #[arg(long)]
    check: bool,
}

fn load(hermes_home: Option<&Path>) -> anyhow::Result<(Snapshot, Vault)> {
    let snapshot = SnapshotLoader::new().load(&HermesRoot::resolve(hermes_home));
    Ok((snapshot, open_default_vault()?))
}

fn label(server: &OAuthServer) -> String {
    match &server.home.profile {
        Some(p) => format!("{} (profile {p})", server.name),
        None => server.name.clone(),
    }
}

async fn disconnect_one(http: &Http, vault: &Vault, server: &OAuthServer, out: &mut impl Write) -> anyhow::Result<()> {
    let done = disconnect(http, vault, &HermesExporter, server).await?;
    let how = match (done.had_credentials, done.revoked, &done.revoke_note) {
        (false, _, _) => "was not signed in; its files (if any) removed".to_owned(),
        (true, true, _) => "signed out; tokens revoked at the server and removed here".to_owned(),
        (true, false, note) => {
            format!("signed out here; not revoked at the server ({})", note.as_deref().unwrap_or("unknown reason"))
        }
    };
    writeln!(out, "{}: {how}", label(server))?;
    Ok(())
}

pub async fn run_disconnect(hermes_home: Option<&Path>, args: &DisconnectArgs) -> anyhow::Result<()> {
    let (snapshot, vault) = load(hermes_home)?;
    let server = find_oauth_server(&snapshot, &args.server, args.profile.as_deref())?;
    disconnect_one(&Http::new()?, &vault, &server, &mut std::io::stdout().lock()).await
}

pub async fn run_logout(hermes_home: Option<&Path>, _args: &LogoutArgs) -> anyhow::Result<()> {
    let (snapshot, vault) = load(hermes_home)?;
    let http = Http::new()?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    for server in oauth_servers(&snapshot) {
        if let Err(e) = disconnect_one(&http, &vault, &server, &mut out).await {
            failures += 1;
            writeln!(out, "{}: {e:#}", label(&server))?;
        }
    }
    if failures > 0 {
        bail!("{failures} servers could not be signed out");
    }
    Ok(())
}

pub async fn run_export(hermes_home: Option<&Path>, args: &ExportArgs) -> anyhow::Result<()> {
    let (snapshot, vault) = load(hermes_home)?;
    let mut out = std::io::stdout().lock();
    let mut drifted = 0;
    for server in oauth_servers(&snapshot) {
        if args.check {
            let state = drift(&vault, &HermesExporter, &server).await?;
            let text = match state {
                Drift::InSync => "in sync",
                Drift::NotInVault => "not signed in here",
                Drift::MissingInAgent => {
                    drifted += 1;
                    "DRIFT: the agent has no token file (it signed out, or the file was removed)"
                }
                Drift::TokensDiffer => {
                    drifted += 1;
                    "DRIFT: the agent's tokens differ from the vault"
                }
            };
            writeln!(out, "{}: {text}", label(&server))?;
        } else {
            let written = export_server(&vault, &HermesExporter, &server).await?;
            writeln!(out, "{}: {}", label(&server), if written { "exported" } else { "not signed in here, skipped" })?;
        }
    }
    if drifted > 0 {
        bail!("{drifted} servers differ from the vault (run `mcp-auth export` to rewrite the agent's files)");
    }
    Ok(())
}

pub fn run_version() -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "mcp-auth {}", crate::VERSION_LINE)?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The server's name under `mcp_servers`.
    server: String,
    /// The Hermes profile the server is in (default: the default home).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Print the access token itself (only it, on stdout, for scripts).
    #[arg(long)]
    reveal: bool,
}

/// `mcp-auth token <server> [--reveal]`: facts about the stored token; the
/// secret itself only when asked for explicitly.
pub async fn run_token(hermes_home: Option<&Path>, args: &TokenArgs) -> anyhow::Result<()> {
    let (snapshot, vault) = load(hermes_home)?;
    let server = find_oauth_server(&snapshot, &args.server, args.profile.as_deref())?;
    let key = server.vault_key();
    let record = tokio::task::spawn_blocking(move || vault.load(&key)).await??;
    let Some(record) = record else { bail!("{}: not signed in", label(&server)) };
    let mut out = std::io::stdout().lock();
    if args.reveal {
        writeln!(out, "{}", record.tokens.access_token.expose())?;
        return Ok(());
    }
    let left = record
        .tokens
        .expires_at
        .map(|at| mcp_auth_core::time_left(at - mcp_auth_core::now_secs()))
        .unwrap_or_else(|| "unknown".to_owned());
    writeln!(out, "server:        {}", label(&server))?;
    writeln!(out, "access token:  [hidden; --reveal prints it]")?;
    writeln!(out, "expires in:    {left}")?;
    writeln!(out, "refresh token: {}", if record.tokens.refresh_token.is_some() { "yes" } else { "no" })?;
    writeln!(out, "scope:         {}", record.tokens.scope.as_deref().unwrap_or("-"))?;
    writeln!(out, "issuer:        {}", record.issuer.as_deref().unwrap_or("-"))?;
    writeln!(out, "client id:     {}", record.client.client_id)?;
    Ok(())
}

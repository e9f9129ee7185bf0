//! `mcp-auth refresh <server>|--all`: refresh now, keep, export, report.
//!
//! Uses the same transaction as the background refresher: the agent's
//! fence, adoption of a refresh the agent already made, vault first.

use std::io::Write;
use std::path::Path;

use anyhow::bail;
use std::sync::Arc;

use mcp_auth_core::HermesExporter;
use mcp_auth_core::Http;
use mcp_auth_core::{HermesRoot, SnapshotLoader, now_secs, open_default_vault, time_left};
use mcp_auth_core::{RefreshOutcome, Refresher};
use mcp_auth_core::{find_oauth_server, oauth_servers};

#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    /// The server's name under `mcp_servers` (or --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    server: Option<String>,
    /// Every signed-in OAuth server of every profile.
    #[arg(long)]
    all: bool,
    /// The Hermes profile the server is in (default: the default home).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
}

pub async fn run(hermes_home: Option<&Path>, args: &RefreshArgs) -> anyhow::Result<()> {
    let root = HermesRoot::resolve(hermes_home);
    let snapshot = SnapshotLoader::new().load(&root);
    let vault = open_default_vault()?;
    let servers = match &args.server {
        Some(name) => vec![find_oauth_server(&snapshot, name, args.profile.as_deref())?],
        None => oauth_servers(&snapshot)
            .into_iter()
            .filter(|s| args.profile.as_deref().is_none_or(|p| s.home.display_profile() == p))
            .collect(),
    };
    let refresher = Refresher::new(Http::new()?, Arc::new(HermesExporter));
    let mut failures = 0;
    let mut out = std::io::stdout().lock();
    for server in &servers {
        let label = match &server.home.profile {
            Some(p) => format!("{} (profile {p})", server.name),
            None => server.name.clone(),
        };
        match refresher.refresh(&vault, server).await {
            Ok(outcome) => {
                let (verb, expires_at) = match outcome {
                    RefreshOutcome::Refreshed { expires_at } => ("refreshed", expires_at),
                    RefreshOutcome::Adopted { expires_at } => ("already refreshed by the agent; adopted", expires_at),
                    RefreshOutcome::AlreadyRenewed { expires_at } => ("already refreshed", expires_at),
                };
                let left =
                    expires_at.map(|at| format!(", valid for {}", time_left(at - now_secs()))).unwrap_or_default();
                writeln!(out, "{label}: {verb}{left}")?;
            }
            Err(e) if args.all && matches!(e, mcp_auth_core::RefreshError::NotConnected) => {
                writeln!(out, "{label}: not signed in, skipped")?;
            }
            Err(e) => {
                failures += 1;
                writeln!(out, "{label}: {e}")?;
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} refreshes failed", servers.len());
    }
    Ok(())
}

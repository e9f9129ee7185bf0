//! `mcp-auth add`, `remove`, `setup`, and the other clients' part of `status`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

use mcp_auth_core::{
    ClientKind, ClientsReport, HermesRoot, LocationEnv, OwnList, OwnListFile, Platform, SetupAction, SetupRequest,
    Snapshot, SnapshotLoader, StatusReport, Vault, VaultError, VaultKey, VaultView, apply_setup, clients_status,
    own_grant_keys, plan_setup, read_client_configs, setup_location,
};

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A name of your choice (letters, digits, `.`, `_`, `-`).
    name: String,
    /// The server's URL (https, or http to this machine).
    url: String,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The name given to `mcp-auth add`.
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// claude-code, claude-desktop, cursor, vscode, codex, gemini, opencode.
    client: String,
    /// Servers to route (names in that client's config, the agent's or our
    /// list); default: every remote server of that client not routed yet.
    servers: Vec<String>,
    /// Apply the change (a timestamped backup is made first).
    #[arg(long)]
    write: bool,
    /// The command the client should run (default: the full path of this mcp-auth).
    #[arg(long, value_name = "PROGRAM")]
    program: Option<String>,
}

fn own_file() -> anyhow::Result<OwnListFile> {
    OwnListFile::default_location().context("no config folder for our server list")
}

/// The folder of our list (the pseudo-home of its servers; never written).
fn own_home(file: &OwnListFile) -> PathBuf {
    file.path().parent().map(Path::to_path_buf).unwrap_or_default()
}

pub fn run_add(args: &AddArgs) -> anyhow::Result<()> {
    let file = own_file()?;
    let added = file.add(&args.name, &args.url)?;
    let mut out = std::io::stdout().lock();
    if added {
        writeln!(out, "added {} ({}) to {}", args.name, mcp_auth_core::redact_url(&args.url), file.path().display())?;
    } else {
        writeln!(out, "{} is already in the list", args.name)?;
    }
    Ok(())
}

pub fn run_remove(args: &RemoveArgs) -> anyhow::Result<()> {
    let file = own_file()?;
    file.remove(&args.name)?;
    writeln!(std::io::stdout().lock(), "removed {} from {}", args.name, file.path().display())?;
    Ok(())
}

/// The other clients' servers and our list, for `status`.
pub fn report(
    snapshot: &Snapshot,
    report: &StatusReport,
    vault: &Result<Vault, VaultError>,
) -> (ClientsReport, Vec<String>) {
    let mut problems = Vec::new();
    let files =
        LocationEnv::from_process().map(|env| read_client_configs(Platform::current(), &env)).unwrap_or_default();
    let (own, home) = match own_file() {
        Ok(file) => {
            let home = own_home(&file);
            match file.load() {
                Ok(list) => (list, home),
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    (OwnList::default(), home)
                }
            }
        }
        Err(_) => (OwnList::default(), PathBuf::new()),
    };
    let keys = own_grant_keys(&files, &own, &home, snapshot);
    let views = mcp_auth_core::vault_views(vault, keys);
    let lookup = |k: &VaultKey| views.get(k).cloned().unwrap_or(VaultView::Missing);
    (clients_status(&files, &own, &home, snapshot, report, &lookup), problems)
}

/// The clients' part of the `status` table, grouped by client.
pub fn render(clients: &ClientsReport, state_text: &dyn Fn(mcp_auth_core::AuthState) -> String) -> String {
    let mut text = String::new();
    let mut groups: Vec<(String, Option<String>)> = Vec::new();
    for s in &clients.servers {
        let g = (s.client.clone(), s.config.clone());
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for p in &clients.problems {
        let g = (p.client.clone(), Some(p.config.clone()));
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for (client, config) in groups {
        let label = ClientKind::parse(&client).map_or("Our list (mcp-auth add)", ClientKind::label);
        text.push_str(&format!("\n{label}{}\n", config.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()));
        for p in clients.problems.iter().filter(|p| p.client == client && Some(&p.config) == config.as_ref()) {
            text.push_str(&format!("! {}\n", p.message));
        }
        let rows: Vec<[String; 4]> = clients
            .servers
            .iter()
            .filter(|s| s.client == client && s.config == config)
            .map(|s| {
                let name = match &s.project {
                    Some(p) => format!("{} [{}]", s.name, p),
                    None => s.name.clone(),
                };
                let routed = match (s.via, s.enabled) {
                    (_, false) => "disabled".to_owned(),
                    (Some(via), _) => format!("via mcp-auth {via}"),
                    (None, _) if s.client == mcp_auth_core::OWN_CLIENT => "-".to_owned(),
                    (None, _) => "direct".to_owned(),
                };
                [name, state_text(s.state), routed, s.url.clone().unwrap_or_else(|| "-".to_owned())]
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let header = ["NAME", "STATE", "ROUTE", "URL"].map(str::to_owned);
        let mut widths = header.clone().map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String; 4]| {
            let mut l = String::from("  ");
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    l.push_str(&format!("{cell:<w$}  "));
                }
            }
            l.trim_end().to_owned() + "\n"
        };
        text.push_str(&line(&header));
        for row in &rows {
            text.push_str(&line(row));
        }
    }
    text
}

pub fn run_setup(hermes_home: Option<&Path>, args: &SetupArgs) -> anyhow::Result<()> {
    let client = ClientKind::parse(&args.client).with_context(|| {
        format!("unknown client `{}` (one of: {})", args.client, ClientKind::ALL.map(ClientKind::id).join(", "))
    })?;
    let env = LocationEnv::from_process().context("no home folder")?;
    let location = setup_location(Platform::current(), &env, client).context("no config location for this client")?;
    let program = match &args.program {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok())
            .map_or_else(|| "mcp-auth".to_owned(), |p| p.display().to_string()),
    };
    // Names the client's file lacks: the agent's servers, then our list.
    let snapshot = SnapshotLoader::new().load(&HermesRoot::resolve(hermes_home));
    let own = own_file().ok().and_then(|f| f.load().ok()).unwrap_or_default();
    let resolve = |name: &str| -> Option<url::Url> {
        mcp_auth_core::find_oauth_server(&snapshot, name, None)
            .ok()
            .map(|s| s.url)
            .or_else(|| own.url_of(name).and_then(|u| url::Url::parse(u).ok()))
    };
    let request = SetupRequest { location, servers: args.servers.clone(), program };
    let plan = plan_setup(&request, &resolve)?;
    let mut out = std::io::stdout().lock();
    for action in &plan.actions {
        match action {
            SetupAction::Routed { name, .. } => writeln!(out, "{name}: routed through mcp-auth")?,
            SetupAction::Added { name, .. } => writeln!(out, "{name}: added, through mcp-auth")?,
            SetupAction::AlreadyRouted { name } => writeln!(out, "{name}: already through mcp-auth")?,
        }
    }
    if !plan.changes() {
        writeln!(out, "{}: no change needed", plan.path.display())?;
        return Ok(());
    }
    out.write_all(plan.diff().as_bytes())?;
    if args.write {
        let backup = apply_setup(&plan, SystemTime::now())?;
        match backup {
            Some(b) => writeln!(out, "written {} (backup: {})", plan.path.display(), b.display())?,
            None => writeln!(out, "written {}", plan.path.display())?,
        }
        writeln!(out, "restart {} to use it", client.label())?;
    } else {
        writeln!(out, "(nothing written; run again with --write to apply)")?;
    }
    Ok(())
}

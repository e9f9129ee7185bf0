//! `mcp-auth status`: a table for people, `--json` for scripts.
//!
//! The JSON is an array of objects with the fields `profile`, `name`, `url`,
//! `auth`, `state`, `expires_at`, `detail`, `last_error`, `flow`,
//! `checked_at`, `check`, `required_scope` (see `ServerStatus`). Problems with
//! a whole config file never change the exit code: the table shows them in
//! place, and with `--json` they go to stderr so stdout stays an array.
//!
//! `--check` first asks every connected server for real (one authenticated
//! request each, a few at once; see the core's check module), so the status
//! shows what the servers say rather than what the expiry times suggest.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use std::sync::Arc;

use anyhow::Context;

use crate::term::Paint;
use mcp_auth_core::{
    AuthState, CheckStore, Checker, HermesRoot, ServerStatus, SnapshotLoader, StatusReport, open_default_vault,
    time_left, vault_status,
};
use mcp_auth_core::{HermesExporter, Http, Refresher, oauth_servers};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// First check every connected server for real (one authenticated
    /// request each; a refused token is refreshed once and tried again).
    #[arg(long)]
    check: bool,
}

pub fn run(hermes_home: Option<&Path>, args: &StatusArgs) -> anyhow::Result<()> {
    let root = HermesRoot::resolve(hermes_home);
    let snapshot = SnapshotLoader::new().load(&root);
    // The vault is the source of truth; when it cannot be reached the status
    // says so per server and falls back to the agent's files.
    let vault = open_default_vault();
    if args.check {
        let vault = vault.clone().context("cannot check the servers without the vault")?;
        let servers = oauth_servers(&snapshot);
        crate::block_on(async move {
            let refresher = Refresher::new(Http::new()?, Arc::new(HermesExporter));
            let mut checker = Checker::new(vault, refresher)?;
            if let Some(store) = CheckStore::default_location() {
                checker = checker.with_store(store);
            }
            for (server, result) in checker.check_all(&servers).await {
                if let Err(e) = result {
                    let e = anyhow::Error::from(e);
                    writeln!(std::io::stderr().lock(), "warning: {}: cannot check: {e:#}", server.name)?;
                }
            }
            Ok(())
        })?;
    }
    let mut report = vault_status(&snapshot, &vault, SystemTime::now());
    // Say where credentials are kept when that is not the keychain.
    if let Ok(vault) = &vault
        && vault.plain_file().is_some()
    {
        report.hints.push(format!("credentials are kept in a {}", vault.describe()));
    }
    let (clients, client_problems) = crate::clients::report(&snapshot, &report, &vault);
    let mut out = std::io::stdout().lock();
    if args.json {
        // The agent's servers first, then the other clients' (with `client`).
        let mut rows = serde_json::to_value(&report.servers).context("writing JSON")?;
        if let (Some(rows), serde_json::Value::Array(more)) =
            (rows.as_array_mut(), serde_json::to_value(&clients.servers).context("writing JSON")?)
        {
            rows.extend(more);
        }
        // In one write: stdout is line-buffered, and 200 servers are 3000 lines.
        let mut json = serde_json::to_vec_pretty(&rows).context("writing JSON")?;
        json.push(b'\n');
        out.write_all(&json)?;
        let mut err = std::io::stderr().lock();
        for p in &report.problems {
            writeln!(err, "error: {}{}", profile_prefix(p.profile.as_deref()), p.message)?;
        }
        for p in &clients.problems {
            writeln!(err, "error: [{}] {}: {}", p.client, p.config, p.message)?;
        }
        for p in &client_problems {
            writeln!(err, "error: {p}")?;
        }
        for hint in &report.hints {
            writeln!(err, "hint: {hint}")?;
        }
        return Ok(());
    }
    let homes: Vec<(Option<String>, &Path)> =
        snapshot.homes.iter().map(|h| (h.home.profile.clone(), h.home.path.as_path())).collect();
    // Hints last, after the other clients' servers.
    let hints = std::mem::take(&mut report.hints);
    out.write_all(render_table(&report, &homes, Paint::stdout()).as_bytes())?;
    let state = |s: AuthState| state_text(s).to_owned();
    out.write_all(crate::clients::render(&clients, &state).as_bytes())?;
    for p in &client_problems {
        writeln!(out, "! {p}")?;
    }
    for hint in &hints {
        write!(out, "\nhint: {hint}\n")?;
    }
    Ok(())
}

fn profile_prefix(profile: Option<&str>) -> String {
    profile.map(|p| format!("[profile {p}] ")).unwrap_or_default()
}

/// The state in its colour: green when usable, yellow when it needs a
/// refresh, red when it needs the user.
fn paint_state(paint: Paint, state: AuthState, text: &str) -> String {
    match state {
        AuthState::Connected => paint.green(text),
        AuthState::Expiring | AuthState::Expired => paint.yellow(text),
        AuthState::NeedsReauth | AuthState::NeedsMoreAccess | AuthState::Error => paint.red(text),
        AuthState::NotConnected | AuthState::NotApplicable => text.to_owned(),
    }
}

/// The human table, grouped by profile.
fn render_table(report: &StatusReport, homes: &[(Option<String>, &Path)], paint: Paint) -> String {
    let mut text = String::new();
    let now = report.computed_at;
    let show_headers = homes.len() > 1;
    for (profile, path) in homes {
        let rows: Vec<&ServerStatus> = report.servers.iter().filter(|s| s.profile == *profile).collect();
        let problems: Vec<_> = report.problems.iter().filter(|p| p.profile == *profile).collect();
        if show_headers {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!("Profile {} ({})\n", profile.as_deref().unwrap_or("default"), path.display()));
        }
        for p in &problems {
            text.push_str(&format!("! config error: {}\n", p.message));
            if p.stale {
                text.push_str("  (showing the last list that loaded)\n");
            }
        }
        if rows.is_empty() {
            if problems.is_empty() {
                text.push_str("  no MCP servers configured\n");
            }
            continue;
        }
        let table: Vec<[String; 5]> = rows
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    // `oauth.flow: device`: `connect` (and the tray) sign in with a code.
                    match s.flow {
                        Some(mcp_auth_core::SignInFlow::Device) => format!("{} (device)", serde_plain(&s.auth)),
                        _ => serde_plain(&s.auth),
                    },
                    if s.is_unreachable() {
                        format!("{} (unreachable)", state_text(s.state))
                    } else {
                        state_text(s.state).to_owned()
                    },
                    expiry_text(s, now),
                    s.url.as_deref().map_or_else(|| "-".to_owned(), mcp_auth_core::redact_url),
                ]
            })
            .collect();
        let header = ["NAME", "AUTH", "STATE", "EXPIRES", "URL"].map(str::to_owned);
        let mut widths = header.clone().map(|h| h.chars().count());
        for row in &table {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        // Padded before painting: escape codes have no width.
        let line = |cells: &[String; 5], state: Option<AuthState>| {
            let mut l = String::from("  ");
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else if let (2, Some(state)) = (i, state) {
                    l.push_str(&paint_state(paint, state, cell));
                    l.push_str(&" ".repeat(w - cell.chars().count() + 2));
                } else {
                    l.push_str(&format!("{cell:<w$}  "));
                }
            }
            l.trim_end().to_owned() + "\n"
        };
        text.push_str(&line(&header, None));
        for (row, s) in table.iter().zip(&rows) {
            text.push_str(&line(row, Some(s.state)));
            if let Some(detail) = &s.detail {
                text.push_str(&format!("    ↳ {detail}\n"));
            }
            if let Some(error) = s.last_error.as_ref().filter(|e| s.detail.as_ref() != Some(*e)) {
                text.push_str(&format!("    ↳ last refresh failed: {error}\n"));
            }
        }
    }
    for hint in &report.hints {
        text.push_str(&format!("\nhint: {hint}\n"));
    }
    text
}

fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn state_text(state: AuthState) -> &'static str {
    match state {
        AuthState::NotConnected => "not connected",
        AuthState::Connected => "connected",
        AuthState::Expiring => "refresh due",
        AuthState::Expired => "expired",
        AuthState::NeedsReauth => "needs sign-in",
        AuthState::NeedsMoreAccess => "needs more access",
        AuthState::Error => "error",
        AuthState::NotApplicable => "-",
    }
}

fn expiry_text(s: &ServerStatus, now: f64) -> String {
    match s.expires_at {
        Some(at) if at as f64 >= now => format!("in {}", time_left(at as f64 - now)),
        Some(at) => format!("{} ago", time_left(now - at as f64)),
        None => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_core::{AuthLabel, AuthState, SignInFlow};

    #[test]
    fn table_groups_by_profile_and_shows_details() {
        let row =
            |profile: Option<&str>, name: &str, state: AuthState, expires_at: Option<i64>, detail: Option<&str>| {
                ServerStatus {
                    profile: profile.map(str::to_owned),
                    name: name.to_owned(),
                    url: Some(format!("https://{name}.example/mcp")),
                    auth: AuthLabel::Oauth,
                    state,
                    expires_at,
                    detail: detail.map(str::to_owned),
                    refresh_due_at: None,
                    last_error: None,
                    last_check: Default::default(),
                    flow: Some(if name == "sentry" { SignInFlow::Device } else { SignInFlow::Browser }),
                }
            };
        let report = StatusReport {
            servers: vec![
                row(None, "notion", AuthState::Connected, Some(1000 + 3120), None),
                row(None, "sentry", AuthState::Expired, Some(1000 - 7200), None),
                row(Some("work"), "x", AuthState::NeedsReauth, None, Some("the access token expired")),
            ],
            computed_at: 1000.0,
            ..Default::default()
        };
        let homes = [(None, Path::new("/h/.hermes")), (Some("work".to_owned()), Path::new("/h/.hermes/profiles/work"))];
        let want = "Profile default (/h/.hermes)
  NAME    AUTH            STATE      EXPIRES    URL
  notion  oauth           connected  in 52 min  https://notion.example/mcp
  sentry  oauth (device)  expired    2 h ago    https://sentry.example/mcp

Profile work (/h/.hermes/profiles/work)
  NAME  AUTH   STATE          EXPIRES  URL
  x     oauth  needs sign-in  -        https://x.example/mcp
    ↳ the access token expired
";
        pretty_assertions::assert_eq!(render_table(&report, &homes, Paint(false)), want);
        let coloured = render_table(&report, &homes, Paint(true));
        assert!(coloured.contains("  notion  oauth           \x1b[32mconnected\x1b[0m  in 52 min"), "{coloured}");
        assert!(coloured.contains("\x1b[31mneeds sign-in\x1b[0m  -"), "{coloured}");
    }
}

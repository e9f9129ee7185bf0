//! `mcp-auth doctor [<server>]`: runs each step of a sign-in against the
//! live server and shows where it breaks (see `mcp_auth_core::doctor`).
//!
//! `--json` prints an array of diagnoses (`Diagnosis`); exit code 1 when any
//! step of any server failed.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use mcp_auth_core::CallbackRouter;
use mcp_auth_core::Engine;
use mcp_auth_core::Http;
use mcp_auth_core::SystemBrowser;
use mcp_auth_core::{Diagnosis, Outcome, examine};
use mcp_auth_core::{HermesRoot, SettingsFile, SnapshotLoader, open_vault};
use mcp_auth_core::{find_oauth_server, oauth_servers};

use crate::term::Paint;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The server's name under `mcp_servers` (default: every OAuth server).
    server: Option<String>,
    /// The Hermes profile (default: the server's home, or every profile).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Print a JSON array of diagnoses instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(hermes_home: Option<&Path>, args: &DoctorArgs) -> anyhow::Result<()> {
    let snapshot = SnapshotLoader::new().load(&HermesRoot::resolve(hermes_home));
    let settings =
        SettingsFile::default_location().context("cannot find a config folder for the app's settings")?.load();
    let vault = open_vault(&settings);
    // Doctor never opens a browser: it stops before the authorization page.
    let engine = Engine::new(Http::new()?, CallbackRouter::new(), Arc::new(SystemBrowser));
    let mut diagnoses = Vec::new();
    match &args.server {
        Some(name) => match find_oauth_server(&snapshot, name, args.profile.as_deref()) {
            Ok(server) => diagnoses.push(examine(&engine, &server, &settings, &vault).await),
            Err(e) => diagnoses.push(Diagnosis::config_failure(name, args.profile.as_deref(), &e)),
        },
        None => {
            let servers = oauth_servers(&snapshot)
                .into_iter()
                .filter(|s| args.profile.as_deref().is_none_or(|p| s.home.display_profile() == p));
            for server in servers {
                diagnoses.push(examine(&engine, &server, &settings, &vault).await);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &diagnoses).context("writing JSON")?;
        writeln!(out)?;
    } else if diagnoses.is_empty() {
        writeln!(out, "No OAuth servers configured.")?;
    } else {
        out.write_all(render(&diagnoses, Paint::stdout()).as_bytes())?;
    }
    let failed = diagnoses.iter().filter(|d| !d.ok).count();
    if failed > 0 {
        bail!("{failed} of {} servers have a failing step", diagnoses.len());
    }
    Ok(())
}

/// The text report: per server, one line per step, its evidence and hint.
fn render(diagnoses: &[Diagnosis], paint: Paint) -> String {
    let mut text = String::new();
    for d in diagnoses {
        if !text.is_empty() {
            text.push('\n');
        }
        let profile = d.profile.as_deref().map(|p| format!(" (profile {p})")).unwrap_or_default();
        let url = d.url.as_deref().map(|u| format!("  {u}")).unwrap_or_default();
        text.push_str(&format!("{}{profile}{}\n", paint.bold(&d.name), paint.dim(&url)));
        for step in &d.steps {
            let mark = match step.status {
                Outcome::Ok => paint.green("ok  "),
                Outcome::Warn => paint.yellow("warn"),
                Outcome::Fail => paint.red("FAIL"),
                Outcome::Skipped => paint.dim("skip"),
            };
            let name = serde_json::to_value(step.step).ok().and_then(|v| v.as_str().map(str::to_owned));
            let status = step.http_status.map(|s| format!(" [HTTP {s}]")).unwrap_or_default();
            text.push_str(&format!("  {mark} {:<21} {}{status}\n", name.unwrap_or_default(), step.summary));
            for line in &step.evidence {
                text.push_str(&format!("         {}\n", paint.dim(line)));
            }
            if let Some(hint) = &step.hint {
                text.push_str(&format!("       hint: {hint}\n"));
            }
        }
    }
    text
}

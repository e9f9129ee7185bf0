//! `mcp-auth connect <server>… | --all-needing`: sign in and write the
//! agent's token files, one server after another.
//!
//! The browser: `--no-browser` prints the URL (open it anywhere that can
//! reach this machine's loopback), else `$BROWSER` (a command that gets the
//! URL as its argument), else the desktop's default browser; if that cannot
//! start, the URL is printed instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, bail};
use mcp_auth_core::Engine;
use mcp_auth_core::Http;
use mcp_auth_core::Vault;
use mcp_auth_core::{
    AuthState, HermesRoot, SettingsFile, Snapshot, SnapshotLoader, StatusReport, open_vault, vault_status,
};
use mcp_auth_core::{Browser, BrowserError, BrowserFuture, SystemBrowser, check_browser_url, chosen_browser};
use mcp_auth_core::{CallbackRouter, Delivery};
use mcp_auth_core::{Grant, OAuthServer, connect_with, find_oauth_server, needing_sign_in, oauth_servers};
use mcp_auth_core::{HermesExporter, NoExport, OwnList, OwnListFile};
use mcp_auth_core::{PortChoice, bind_stable};

use crate::term::{Paint, Progress};

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The servers (one or more): names under `mcp_servers` in the agent's
    /// config, names in our list (`mcp-auth add`), names or URLs of remote
    /// servers in another client's config (Claude Code, Cursor, ...).
    #[arg(required_unless_present = "all_needing", conflicts_with = "all_needing", value_name = "SERVER")]
    servers: Vec<String>,
    /// Every OAuth server that needs a sign-in (never signed in here, or no
    /// usable credentials left), one after another.
    #[arg(long)]
    all_needing: bool,
    /// The Hermes profile the servers are in (default: the default home).
    #[arg(long, value_name = "ID")]
    profile: Option<String>,
    /// Print the authorization URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// The browser is on another machine: print the URL, then paste the
    /// address the browser was sent back to (or "CODE STATE") here.
    #[arg(long, conflicts_with = "no_browser")]
    paste: bool,
    /// Sign in with a code entered on any device (RFC 8628 device
    /// authorization), when the authorization server offers it.
    /// Servers whose config says `oauth.flow: device` sign in this way by default.
    #[arg(long, conflicts_with_all = ["no_browser", "paste"])]
    device: bool,
    /// Sign in with the browser even when the config says `oauth.flow: device`.
    #[arg(long, conflicts_with = "device")]
    browser: bool,
}

/// The grant for `server`: what the command line asks for, else the
/// server's `oauth.flow` (as the agent's own `hermes mcp login` does).
fn grant_for(args: &ConnectArgs, server: &OAuthServer) -> Grant {
    if args.device {
        Grant::Device
    } else if args.browser || args.no_browser || args.paste {
        Grant::Browser
    } else {
        server.default_grant()
    }
}

/// Turns what the user pasted into a redirect query: a whole URL, a bare
/// query (`code=…&state=…`), or `CODE STATE`.
fn pasted_query(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if let Ok(url) = url::Url::parse(line)
        && let Some(q) = url.query()
    {
        return Some(q.to_owned());
    }
    if line.contains('=') {
        return Some(line.trim_start_matches('?').to_owned());
    }
    let mut parts = line.split_whitespace();
    let (code, state) = (parts.next()?, parts.next()?);
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    Some(format!("code={}&state={}", enc(code), enc(state)))
}

/// Reads pasted redirects from stdin and hands them to the waiting flow
/// (of any of the servers signed in one after another), checked exactly
/// like one arriving at the loopback listener.
fn read_pastes(router: CallbackRouter) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let Some(query) = pasted_query(&line) else { continue };
            let message = match router.deliver(&query) {
                Delivery::Completed => continue,
                Delivery::Refused(reason) | Delivery::Malformed(reason) => reason,
                Delivery::UnknownState => "that does not belong to this sign-in (its state does not match)".to_owned(),
            };
            let _ = writeln!(std::io::stderr().lock(), "not accepted: {message}; paste again");
        }
    });
}

/// Prints the URL for the user to open.
struct PrintUrl {
    paste: bool,
}

impl Browser for PrintUrl {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            check_browser_url(url)?;
            let mut err = std::io::stderr().lock();
            let then = if self.paste {
                "\nAfter signing in, the browser goes to an address on 127.0.0.1 that it cannot open there:\ncopy that address here and press Enter.\n"
            } else {
                ""
            };
            writeln!(err, "Open this URL in a browser to sign in:\n\n  {url}\n{then}")
                .map_err(|e| BrowserError::Other(e.to_string()))
        })
    }
}

/// Tries `inner`; when it cannot start, prints the URL instead.
struct OrPrint(Box<dyn Browser>);

impl Browser for OrPrint {
    fn open<'a>(&'a self, url: &'a str) -> BrowserFuture<'a> {
        Box::pin(async move {
            check_browser_url(url)?;
            if let Err(e) = self.0.open(url).await {
                tracing::warn!(error = %e, "cannot open a browser; printing the URL");
                return PrintUrl { paste: false }.open(url).await;
            }
            Ok(())
        })
    }
}

pub(crate) fn choose_browser(no_browser: bool, paste: bool) -> Arc<dyn Browser> {
    if no_browser || paste {
        return Arc::new(PrintUrl { paste });
    }
    Arc::new(OrPrint(chosen_browser(Box::new(SystemBrowser))))
}

/// Every OAuth server (of `--profile`, if given) that needs a sign-in.
fn needing(snapshot: &Snapshot, report: &StatusReport, args: &ConnectArgs) -> Vec<OAuthServer> {
    let servers = oauth_servers(snapshot)
        .into_iter()
        .filter(|s| args.profile.as_deref().is_none_or(|p| s.home.display_profile() == p))
        .collect();
    needing_sign_in(servers, report)
}

/// `server`, asking for more access when its last check found the server
/// wanting a scope the tokens lack (the one-click step-up).
fn with_step_up(server: OAuthServer, report: &StatusReport) -> OAuthServer {
    let row = report.servers.iter().find(|row| {
        row.profile == server.home.profile && row.name == server.name && row.state == AuthState::NeedsMoreAccess
    });
    match row {
        Some(row) => {
            let required = row.last_check.required_scope.clone();
            server.with_step_up(required)
        }
        None => server,
    }
}

/// A server named on the command line.
enum Named {
    /// The agent's server.
    Agent(Box<OAuthServer>),
    /// A name of our list, or a URL (given, or the one another client's
    /// config names): the grant that serves it, found once the vault is open.
    Grant(String),
}

/// Our list and its folder (empty when there is none or it is broken: the
/// agent's servers still work).
fn own_list() -> (OwnList, PathBuf) {
    match OwnListFile::default_location() {
        Some(file) => {
            let home = file.path().parent().map(Path::to_path_buf).unwrap_or_default();
            let list = file.load().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read our server list");
                OwnList::default()
            });
            (list, home)
        }
        None => (OwnList::default(), PathBuf::new()),
    }
}

/// What `name` means: the agent's server of that name (of `profile`), else
/// (without `--profile`) our list's, a URL, or a name in another client's
/// config (one URL, or an error saying which clients disagree).
fn named(
    snapshot: &Snapshot,
    own: &OwnList,
    clients: &[mcp_auth_core::ClientFile],
    name: &str,
    profile: Option<&str>,
) -> anyhow::Result<Named> {
    let not_found = match find_oauth_server(snapshot, name, profile) {
        Ok(server) => return Ok(Named::Agent(Box::new(server))),
        Err(e @ mcp_auth_core::ConnectError::NotFound { .. }) if profile.is_none() => e,
        Err(e) => return Err(e.into()),
    };
    let is_url = url::Url::parse(name).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if is_url || own.url_of(name).is_some() {
        return Ok(Named::Grant(name.to_owned()));
    }
    match mcp_auth_core::urls_named(clients, name).as_slice() {
        [] => Err(anyhow::Error::new(not_found)
            .context(format!("`{name}` is in no client's config either (or only as a local command)"))),
        [url] => Ok(Named::Grant(url.to_string())),
        several => bail!(
            "`{name}` names different servers in the clients' configs ({}): connect with its URL",
            several.iter().map(|u| mcp_auth_core::redact_url(u.as_str())).collect::<Vec<_>>().join(", ")
        ),
    }
}

pub async fn run(hermes_home: Option<&Path>, args: &ConnectArgs) -> anyhow::Result<()> {
    let root = HermesRoot::resolve(hermes_home);
    let snapshot = SnapshotLoader::new().load(&root);
    // Named servers are checked first: a typo needs no keychain to be reported.
    let (own, own_home) = own_list();
    let clients = if args.profile.is_none() { mcp_auth_core::read_client_files() } else { Vec::new() };
    let named: Vec<Named> = args
        .servers
        .iter()
        .map(|name| named(&snapshot, &own, &clients, name, args.profile.as_deref()))
        .collect::<anyhow::Result<_>>()?;
    let settings = SettingsFile::default_location().context("cannot find a config folder for the app's settings")?;
    // Before any sign-in: its result must have somewhere to go.
    let vault = open_vault(&settings.load()).map_err(|e| {
        anyhow::anyhow!("{e}\nhint: start a Secret Service (e.g. gnome-keyring) or opt in to a plain file with \"credential_store\": \"file\" in {}", settings.path().display())
    })?;
    let report = {
        let (snapshot, vault) = (snapshot.clone(), Ok(vault.clone()));
        tokio::task::spawn_blocking(move || vault_status(&snapshot, &vault, SystemTime::now())).await?
    };
    let servers: Vec<(OAuthServer, bool)> = if args.all_needing {
        needing(&snapshot, &report, args).into_iter().map(|s| (s, true)).collect()
    } else {
        let mut servers = Vec::new();
        for target in named {
            servers.push(match target {
                Named::Agent(server) => (*server, true),
                Named::Grant(spec) => {
                    let (snapshot, own, own_home, vault) =
                        (snapshot.clone(), own.clone(), own_home.clone(), vault.clone());
                    let target = tokio::task::spawn_blocking(move || {
                        mcp_auth_core::resolve_grant(&snapshot, &own, &own_home, &vault, &spec, None)
                    })
                    .await??;
                    (target.server, target.agents)
                }
            });
        }
        servers
    };
    let servers: Vec<(OAuthServer, bool)> = servers.into_iter().map(|(s, a)| (with_step_up(s, &report), a)).collect();
    let mut out = std::io::stdout().lock();
    if servers.is_empty() {
        writeln!(out, "No server needs a sign-in.")?;
        return Ok(());
    }
    let router = CallbackRouter::new();
    if args.paste {
        read_pastes(router.clone());
    }
    let engine = Engine::new(Http::new()?, router.clone(), choose_browser(args.no_browser, args.paste));
    let several = servers.len() > 1;
    let mut failures = 0;
    for (server, agents) in &servers {
        let progress = Progress::new(several.then_some(server.name.as_str()));
        let grant = grant_for(args, server);
        // Ours (our list, another client's URL): the keychain only, no file.
        let exporter: &dyn mcp_auth_core::Exporter = if *agents { &HermesExporter } else { &NoExport };
        let result = connect_one(&engine, &router, &settings, &vault, exporter, server, grant, &progress).await;
        drop(progress);
        match result {
            Ok(lines) => {
                for line in lines {
                    writeln!(out, "{line}")?;
                }
            }
            Err(e) if several => {
                failures += 1;
                writeln!(out, "{}: {} {e:#}", server.name, Paint::stdout().red("failed:"))?;
            }
            Err(e) => return Err(e),
        }
    }
    if failures > 0 {
        bail!("{failures} of {} sign-ins failed", servers.len());
    }
    Ok(())
}

/// Signs in to one server, handing the result to `exporter`; returns the
/// lines reporting it.
#[expect(clippy::too_many_arguments, reason = "one sign-in's whole context, passed through")]
pub(crate) async fn connect_one(
    engine: &Engine,
    router: &CallbackRouter,
    settings: &SettingsFile,
    vault: &Vault,
    exporter: &dyn mcp_auth_core::Exporter,
    server: &OAuthServer,
    grant: Grant,
    progress: &Progress,
) -> anyhow::Result<Vec<String>> {
    // The device flow needs no redirect, but its registration names one (the
    // agent requires it, and later browser sign-ins reuse the registration).
    let (listener, choice) = bind_stable(router.clone(), settings, server.oauth.redirect_port).await.map_err(|e| {
        match server.oauth.redirect_port {
            Some(port) => {
                anyhow::anyhow!("{e}: `redirect_port: {port}` for `{}` is in use by another program", server.name)
            }
            None => e.into(),
        }
    })?;
    if let PortChoice::New { previous: Some(previous) } = choice {
        tracing::warn!(previous, now = listener.port(), "the redirect port moved; servers will be registered again");
    }
    if let Some(scope) = &server.step_up {
        progress.note(&format!("the server asks for more access: signing in for `{scope}` too"));
    }
    let show = |step| progress.show(step);
    let connected = connect_with(engine, vault, exporter, server, &listener.redirect_uri(), grant, &show).await?;
    let left = connected
        .expires_at
        .map(|at| format!(", access token valid for {}", mcp_auth_core::time_left(at - mcp_auth_core::now_secs())))
        .unwrap_or_default();
    let mut lines = vec![format!("Connected to {}{left}. Credentials kept in {}.", server.name, vault.describe())];
    if server.home.profile.as_deref() == Some(mcp_auth_core::OWN_PROFILE) {
        lines.push("No token file written: clients use it through `mcp-auth proxy` or `mcp-auth headers`.".to_owned());
    } else if connected.paths.tokens.is_file() {
        lines.push(format!(
            "Wrote {} (and its .client.json/.meta.json) for the agent.",
            connected.paths.tokens.display()
        ));
    }
    if server.step_up.is_some() {
        lines.push(format!("Granted scope: {}.", connected.scope.as_deref().unwrap_or("(none named)")));
    }
    if !connected.has_refresh_token {
        lines.push(
            "Note: the server issued no refresh token; you will need to sign in again when it expires.".to_owned(),
        );
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_forms() {
        assert_eq!(
            pasted_query("http://127.0.0.1:5/callback?code=a%2Bb&state=s&iss=x").as_deref(),
            Some("code=a%2Bb&state=s&iss=x")
        );
        assert_eq!(pasted_query("  ?code=c&state=s ").as_deref(), Some("code=c&state=s"));
        assert_eq!(pasted_query("c0de st+te").as_deref(), Some("code=c0de&state=st%2Bte"));
        assert_eq!(pasted_query("just-one-word"), None);
        assert_eq!(pasted_query("   "), None);
    }
}

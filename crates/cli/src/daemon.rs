//! `mcp-auth daemon`: the core service without a GUI, for SSH machines and
//! servers where the agent runs headless. It keeps every server's tokens
//! fresh and handed to the agent, follows config edits, logs the service's
//! notices, and exits cleanly on SIGTERM or Ctrl-C (a refresh in flight
//! finishes first, within a bound). One daemon or tray per user: the
//! instance lock says which one runs.
//!
//! `--install-user-unit` writes a systemd user unit that starts it at login.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use mcp_auth_core::{
    APP_URL_SCHEME, EngineState, HermesRoot, InstanceKind, InstanceLock, Notice, SHUTDOWN_WAIT, Service,
    ServiceOptions, SettingsFile, WALL_CLOCK_CHECK, slept_through, write_private,
};
use tokio::sync::broadcast;

/// The unit's file name (`systemctl --user enable --now mcp-auth.service`).
const UNIT_NAME: &str = "mcp-auth.service";

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// Write a systemd user unit that runs the daemon at login
    /// (~/.config/systemd/user/mcp-auth.service), print how to enable it, and exit.
    #[arg(long)]
    install_user_unit: bool,
}

pub fn run(hermes_home: Option<&Path>, args: &DaemonArgs) -> anyhow::Result<()> {
    if args.install_user_unit {
        return install_user_unit(hermes_home);
    }
    // Before any runtime or keychain: a second daemon leaves at once.
    let instance = InstanceLock::acquire_default(InstanceKind::Daemon)?;
    let result = crate::block_on(serve(hermes_home));
    drop(instance);
    result
}

async fn serve(hermes_home: Option<&Path>) -> anyhow::Result<()> {
    let root = HermesRoot::resolve(hermes_home);
    let settings = SettingsFile::default_location().context("no config folder for the app's settings")?;
    // Signals first, so one that arrives while the keychain opens still counts.
    let mut terminate = terminate_signal()?;
    let service = Service::start(ServiceOptions {
        root: root.clone(),
        settings,
        url_scheme: APP_URL_SCHEME.to_owned(),
        vault: None,
        check_store: None,
    })
    .await?;
    let notices = service.notices();
    let mut view = service.view();
    let ready = tokio::select! {
        ready = view.wait_for(|v| v.engine != EngineState::Starting) => ready.map(|v| v.engine.clone()),
        () = terminate.wait() => {
            service.shutdown().await;
            return Ok(());
        }
    };
    if let Ok(EngineState::Off(reason)) = ready {
        service.shutdown().await;
        anyhow::bail!("cannot keep tokens fresh: {reason}");
    }
    let servers = mcp_auth_core::oauth_servers(&service.current().snapshot).len();
    tracing::info!(pid = std::process::id(), root = %root.path().display(), servers, "daemon running");
    tokio::select! {
        () = log_notices(notices) => {}
        () = watch_for_resume(&service) => {}
        () = terminate.wait() => {}
    }
    tracing::info!("stopping");
    // The service bounds its own wait; this is the last resort.
    if tokio::time::timeout(SHUTDOWN_WAIT + Duration::from_secs(5), service.shutdown()).await.is_err() {
        tracing::warn!("the service did not stop in time; exiting anyway");
    }
    tracing::info!("daemon stopped");
    Ok(())
}

/// The daemon's resume hook. The tray hears logind's `PrepareForSleep`
/// through GTK's D-Bus; the daemon has neither, and a tokio sleep does not
/// count a suspend (on Linux its sleeps are long: they rely on such a hook).
/// So once every [`WALL_CLOCK_CHECK`] it compares the wall clock with the
/// monotonic one, and after a suspend wakes the service as the tray's hook
/// does: what fell due while asleep is refreshed within a minute of waking.
async fn watch_for_resume(service: &Service) {
    loop {
        let (wall, monotonic) = (SystemTime::now(), Instant::now());
        tokio::time::sleep(WALL_CLOCK_CHECK).await;
        if slept_through(wall.elapsed().unwrap_or_default(), monotonic.elapsed()) {
            tracing::info!("resumed from sleep");
            service.woke_up();
        }
    }
}

/// Logs each notice (the daemon's "notifications": the journal under systemd).
async fn log_notices(mut notices: broadcast::Receiver<Notice>) {
    loop {
        match notices.recv().await {
            Ok(Notice::Connected { server }) => {
                tracing::info!(server = %server.name, profile = ?server.profile, "connected")
            }
            Ok(Notice::NeedsSignIn { server, reason }) => tracing::warn!(
                server = %server.name,
                profile = ?server.profile,
                reason = reason.as_deref().unwrap_or("its tokens can no longer be renewed"),
                "needs sign-in: run `mcp-auth connect {}`",
                server.name
            ),
            Ok(Notice::SignInFailed { server, reason }) => {
                tracing::warn!(server = %server.name, profile = ?server.profile, %reason, "sign-in failed")
            }
            Ok(Notice::Disconnected { server, revoked }) => {
                tracing::info!(server = %server.name, profile = ?server.profile, revoked, "disconnected")
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => tracing::warn!(missed, "notices fell behind"),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// SIGTERM (systemd's stop) or Ctrl-C.
struct Terminate {
    #[cfg(unix)]
    sigterm: tokio::signal::unix::Signal,
}

fn terminate_signal() -> anyhow::Result<Terminate> {
    Ok(Terminate {
        #[cfg(unix)]
        sigterm: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?,
    })
}

impl Terminate {
    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.sigterm.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupted");
        }
    }
}

/// `$XDG_CONFIG_HOME/systemd/user/mcp-auth.service` (else `~/.config/…`).
fn unit_path() -> anyhow::Result<PathBuf> {
    let config = dirs::config_dir().context("no config folder (set HOME or XDG_CONFIG_HOME)")?;
    Ok(config.join("systemd").join("user").join(UNIT_NAME))
}

/// The unit that runs `exe daemon` (with the agent's home when one was given).
fn unit_text(exe: &Path, hermes_home: Option<&Path>) -> String {
    let mut exec = format!("{} daemon", systemd_quote(&exe.to_string_lossy()));
    if let Some(home) = hermes_home {
        exec.push_str(&format!(" --hermes-home {}", systemd_quote(&home.to_string_lossy())));
    }
    format!(
        "[Unit]\n\
         Description=MCP Auth: keeps the agent's MCP sign-ins fresh\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=30\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// A word for a systemd command line: quoted, with `\`, `"`, `%` and `$` escaped.
fn systemd_quote(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    format!("\"{escaped}\"")
}

fn install_user_unit(hermes_home: Option<&Path>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    let home = match hermes_home {
        Some(home) => Some(std::path::absolute(home).context("cannot make the agent's home absolute")?),
        None => None,
    };
    let path = unit_path()?;
    let text = unit_text(&exe, home.as_deref());
    let already = std::fs::read_to_string(&path).is_ok_and(|t| t == text);
    if !already {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write_private(&path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if already {
        writeln!(out, "{} is already installed and up to date.", path.display())?;
    } else {
        writeln!(out, "Wrote {}.", path.display())?;
    }
    writeln!(
        out,
        "Enable and start it with:\n  systemctl --user daemon-reload\n  systemctl --user enable --now {UNIT_NAME}"
    )?;
    writeln!(
        out,
        "On a machine you reach by SSH, let it run while you are logged out:\n  loginctl enable-linger \"$USER\""
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_binary() {
        let text = unit_text(Path::new("/opt/my tools/mcp-auth"), Some(Path::new("/srv/agent 50%")));
        assert!(
            text.contains("ExecStart=\"/opt/my tools/mcp-auth\" daemon --hermes-home \"/srv/agent 50%%\"\n"),
            "{text}"
        );
        assert!(text.contains("WantedBy=default.target"));
    }
}

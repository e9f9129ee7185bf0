//! The background refresher: the schedule loop driven by the vault, the
//! refresh transaction and the current server list. The app owns one,
//! updates its server list when the config changes, and wakes it after the
//! machine resumes.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::refresh::schedule::{Clock, OpFuture, Planned, RefreshOps, SchedulerHandle, SystemClock, run};
use crate::refresh::transaction::{RefreshError, RefreshOutcome, Refresher};
use crate::sign_in::connect::OAuthServer;
use crate::util::text::error_text;
use crate::vault::{Vault, VaultError};

/// What happened to a server's background refresh, for the front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshEvent<'a> {
    /// A refresh is starting.
    Started,
    /// The tokens were renewed (vault and agent's files written).
    Renewed,
    /// This attempt failed; it will be retried (network, server trouble).
    WillRetry(&'a str),
    /// Refreshing cannot succeed: the user must sign in again.
    Stopped(&'a str),
}

/// Told about every refresh of every server.
pub type OnEvent = Box<dyn Fn(&OAuthServer, RefreshEvent<'_>) + Send + Sync>;

struct Ops {
    vault: Vault,
    refresher: Refresher,
    /// The servers with their vault accounts, computed once per list (a
    /// key is a hash; 200 due servers would otherwise hash 40,000 times).
    servers: Mutex<Arc<Vec<(String, OAuthServer)>>>,
    on_event: OnEvent,
}

impl Ops {
    fn find(&self, id: &str) -> Option<OAuthServer> {
        let servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        servers.iter().find(|(account, _)| account == id).map(|(_, s)| s.clone())
    }
}

impl RefreshOps for Ops {
    fn plan(&self) -> OpFuture<'_, Vec<Planned>> {
        Box::pin(async move {
            let servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            let vault = self.vault.clone();
            let looked_up = tokio::task::spawn_blocking(move || {
                servers
                    .iter()
                    .map(|(_, s)| {
                        let key = s.vault_key();
                        let expiry = match vault.load(&key) {
                            Ok(Some(r)) if r.tokens.refresh_token.is_some() => {
                                r.tokens.expires_at.map(|e| (e, r.tokens.expires_in))
                            }
                            Ok(_) | Err(VaultError::Corrupt { .. }) => None,
                            Err(e) => {
                                tracing::debug!(error = %e, "vault not readable for planning");
                                None
                            }
                        };
                        Planned { id: key.account().to_owned(), expiry }
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            looked_up.unwrap_or_default()
        })
    }

    fn refresh<'a>(&'a self, id: &'a str) -> OpFuture<'a, Result<RefreshOutcome, RefreshError>> {
        Box::pin(async move {
            let Some(server) = self.find(id) else { return Err(RefreshError::NotConnected) };
            (self.on_event)(&server, RefreshEvent::Started);
            let result = self.refresher.refresh(&self.vault, &server).await;
            match &result {
                Ok(_) => (self.on_event)(&server, RefreshEvent::Renewed),
                // `stopped` follows for the errors that end the schedule.
                Err(RefreshError::NeedsReauth(_) | RefreshError::NotConnected) => {}
                Err(e) => (self.on_event)(&server, RefreshEvent::WillRetry(&error_text(&e))),
            }
            result
        })
    }

    fn stopped(&self, id: &str, reason: &str) {
        if let Some(server) = self.find(id) {
            (self.on_event)(&server, RefreshEvent::Stopped(reason));
        }
    }
}

/// A running background refresher; stops when dropped.
pub struct BackgroundRefresh {
    ops: Arc<Ops>,
    handle: SchedulerHandle,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for BackgroundRefresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundRefresh").finish_non_exhaustive()
    }
}

impl BackgroundRefresh {
    /// Starts the loop on the current tokio runtime.
    pub fn start(vault: Vault, refresher: Refresher, on_event: OnEvent) -> Self {
        Self::start_with_clock(vault, refresher, on_event, Arc::new(SystemClock))
    }

    /// [`BackgroundRefresh::start`] with another clock (tests).
    pub fn start_with_clock(vault: Vault, refresher: Refresher, on_event: OnEvent, clock: Arc<dyn Clock>) -> Self {
        let ops = Arc::new(Ops { vault, refresher, servers: Mutex::default(), on_event });
        let handle = SchedulerHandle::new();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(ops.clone(), clock, handle.clone(), stopped));
        Self { ops, handle, stop, task: Some(task) }
    }

    /// Replaces the servers to look after and re-plans.
    pub fn set_servers(&self, servers: Vec<OAuthServer>) {
        let servers = servers.into_iter().map(|s| (s.vault_key().account().to_owned(), s)).collect();
        *self.ops.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(servers);
        self.handle.wake();
    }

    /// Re-reads the clock and the plan now (after resume, or new credentials).
    pub fn wake(&self) {
        self.handle.wake();
    }

    /// Stops the loop and waits (at most `within`) for a refresh in flight
    /// to finish, so a rotated refresh token it received is stored and
    /// exported before the process ends. `false` when it did not end in time.
    pub async fn stop(mut self, within: std::time::Duration) -> bool {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => tokio::time::timeout(within, task).await.is_ok(),
            None => true,
        }
    }
}

impl Drop for BackgroundRefresh {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

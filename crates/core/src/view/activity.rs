//! What the app is doing for each server right now (signing in, refreshing)
//! and what it learned while doing it (a refresh that cannot succeed, the
//! last error). The status report comes from files and the vault; this is
//! the live layer a long-running front end puts on top of it.
//!
//! Also decides when to tell the user: [`AttentionTracker`] turns a series of
//! reports into "this server now needs sign-in" events, one per transition,
//! however often the report is recomputed or a refresh retried.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::view::status::{AuthState, ServerStatus, StatusReport};

/// A server of the agent's config: its profile (`None`: the default home) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServerRef {
    pub profile: Option<String>,
    pub name: String,
}

impl ServerRef {
    pub fn new(profile: Option<&str>, name: &str) -> Self {
        Self { profile: profile.map(str::to_owned), name: name.to_owned() }
    }

    /// The reference of a status row.
    pub fn of(status: &ServerStatus) -> Self {
        Self::new(status.profile.as_deref(), &status.name)
    }
}

/// Work in progress for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Busy {
    /// A sign-in flow is running (browser open, waiting for the redirect).
    SigningIn,
    /// A token refresh is running.
    Refreshing,
}

/// The live state of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerActivity {
    pub busy: Option<Busy>,
    /// Refreshing cannot succeed any more (why, in words); cleared by a sign-in.
    pub needs_reauth: Option<String>,
    /// The last failure (sign-in or refresh), in words; cleared by success.
    pub last_error: Option<String>,
}

/// The live state of every server the app is working on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    servers: BTreeMap<ServerRef, ServerActivity>,
}

impl Activity {
    /// The live state of `server` (default: nothing going on).
    pub fn get(&self, server: &ServerRef) -> ServerActivity {
        self.servers.get(server).cloned().unwrap_or_default()
    }

    /// Changes the state of `server`; entries that fall back to "nothing" are dropped.
    pub fn update(&mut self, server: &ServerRef, change: impl FnOnce(&mut ServerActivity)) {
        let entry = self.servers.entry(server.clone()).or_default();
        change(entry);
        if *entry == ServerActivity::default() {
            self.servers.remove(server);
        }
    }

    /// Servers with work in progress.
    pub fn busy(&self) -> impl Iterator<Item = (&ServerRef, Busy)> {
        self.servers.iter().filter_map(|(r, a)| a.busy.map(|b| (r, b)))
    }

    /// Puts what the app learned on top of `report`: a server whose refresh
    /// cannot succeed needs sign-in even while its token file still looks
    /// usable.
    pub fn apply(&self, report: &mut StatusReport) {
        for status in &mut report.servers {
            let Some(activity) = self.servers.get(&ServerRef::of(status)) else { continue };
            if let Some(reason) = &activity.needs_reauth
                && status.state != AuthState::NotConnected
            {
                status.state = AuthState::NeedsReauth;
                status.detail = Some(reason.clone());
            }
        }
    }
}

/// Turns successive reports into "needs sign-in" notices, one per
/// transition: a server is announced when it enters `needs_reauth` and
/// again only after it has left that state.
#[derive(Debug, Default)]
pub struct AttentionTracker {
    announced: BTreeSet<ServerRef>,
}

/// A server that just started to need the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsSignIn {
    pub server: ServerRef,
    pub reason: Option<String>,
}

impl AttentionTracker {
    /// The servers of `report` that need sign-in and were not announced yet.
    pub fn observe(&mut self, report: &StatusReport) -> Vec<NeedsSignIn> {
        self.observe_with(report, &[])
    }

    /// As [`Self::observe`], with `others` (servers that are in no report,
    /// such as our own grants) needing sign-in too.
    pub fn observe_with(&mut self, report: &StatusReport, others: &[NeedsSignIn]) -> Vec<NeedsSignIn> {
        let now: BTreeMap<ServerRef, Option<&String>> = report
            .servers
            .iter()
            .filter(|s| s.state == AuthState::NeedsReauth)
            .map(|s| (ServerRef::of(s), s.detail.as_ref()))
            .chain(others.iter().map(|n| (n.server.clone(), n.reason.as_ref())))
            .collect();
        self.announced.retain(|r| now.contains_key(r));
        now.into_iter()
            .filter(|(r, _)| self.announced.insert(r.clone()))
            .map(|(server, reason)| NeedsSignIn { server, reason: reason.cloned() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::status::AuthLabel;

    fn row(name: &str, state: AuthState) -> ServerStatus {
        ServerStatus::bare(name, AuthLabel::Oauth, state)
    }

    fn report(rows: Vec<ServerStatus>) -> StatusReport {
        StatusReport { servers: rows, ..Default::default() }
    }

    #[test]
    fn servers_in_no_report_are_announced_once_too() {
        let mut tracker = AttentionTracker::default();
        let ours = NeedsSignIn { server: ServerRef::new(Some("+mcp-auth"), "fake"), reason: Some("refused".into()) };
        let empty = report(vec![]);
        assert_eq!(tracker.observe_with(&empty, std::slice::from_ref(&ours)), vec![ours.clone()]);
        assert!(tracker.observe_with(&empty, std::slice::from_ref(&ours)).is_empty());
        // Signed in again (no longer listed), then lost again: announced again.
        assert!(tracker.observe_with(&empty, &[]).is_empty());
        assert_eq!(tracker.observe_with(&empty, std::slice::from_ref(&ours)), vec![ours]);
    }

    #[test]
    fn one_notice_per_transition() {
        let mut tracker = AttentionTracker::default();
        let a = ServerRef::new(None, "a");
        let needs = report(vec![row("a", AuthState::NeedsReauth), row("b", AuthState::Connected)]);
        assert_eq!(tracker.observe(&needs), vec![NeedsSignIn { server: a.clone(), reason: None }]);
        // Recomputed (clock tick, retries, other servers changing): nothing new.
        assert!(tracker.observe(&needs).is_empty());
        assert!(tracker.observe(&needs).is_empty());
        // Signed in again, then lost again: a second transition, a second notice.
        assert!(tracker.observe(&report(vec![row("a", AuthState::Connected)])).is_empty());
        assert_eq!(tracker.observe(&needs).len(), 1);
    }

    #[test]
    fn activity_marks_a_dead_refresh_as_needing_sign_in() {
        let mut activity = Activity::default();
        let a = ServerRef::new(None, "a");
        activity.update(&a, |s| s.needs_reauth = Some("the refresh token was rejected".to_owned()));
        let mut r = report(vec![row("a", AuthState::Expired), row("b", AuthState::NotConnected)]);
        activity.apply(&mut r);
        assert_eq!(r.servers[0].state, AuthState::NeedsReauth);
        assert_eq!(r.servers[0].detail.as_deref(), Some("the refresh token was rejected"));
        assert_eq!(r.servers[1].state, AuthState::NotConnected);
    }

    #[test]
    fn a_disconnected_server_stays_not_connected() {
        let mut activity = Activity::default();
        let a = ServerRef::new(None, "a");
        activity.update(&a, |s| s.needs_reauth = Some("gone".to_owned()));
        let mut r = report(vec![row("a", AuthState::NotConnected)]);
        activity.apply(&mut r);
        assert_eq!(r.servers[0].state, AuthState::NotConnected);
    }

    #[test]
    fn idle_entries_are_dropped() {
        let mut activity = Activity::default();
        let a = ServerRef::new(Some("work"), "a");
        activity.update(&a, |s| s.busy = Some(Busy::SigningIn));
        assert_eq!(activity.busy().count(), 1);
        activity.update(&a, |s| s.busy = None);
        assert_eq!(activity, Activity::default());
    }
}

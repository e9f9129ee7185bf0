//! What the service does when something happens: pure rules, table-tested.
//!
//! The service's loop only carries these out. Each rule takes the event and
//! the state it changes, and says what follows (a notice, a scheduler wake-up,
//! re-reading the vault for a server, which servers to sync), so a front end
//! never has to know how a refresh or a sign-in feeds the live state.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use crate::refresh::background::RefreshEvent;
use crate::sign_in::sign_ins::SignInEvent;
use crate::view::activity::{Busy, ServerActivity, ServerRef};

use super::Notice;

/// What a background refresh event changes beyond the live state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshEffects {
    /// The vault record changed (new tokens or a noted failure): read it
    /// again. Needed because our own writes of the agent's files no longer
    /// come back as a sweep.
    pub look_up: bool,
}

/// Puts a background refresh event into `a`, the server's live state.
///
/// A sign-in in progress owns the "busy" marker: a refresh neither takes it
/// nor clears it.
pub fn on_refresh_event(a: &mut ServerActivity, event: RefreshEvent<'_>) -> RefreshEffects {
    let signing_in = a.busy == Some(Busy::SigningIn);
    match event {
        RefreshEvent::Started if !signing_in => a.busy = Some(Busy::Refreshing),
        RefreshEvent::Started => {}
        RefreshEvent::Renewed => {
            a.last_error = None;
            a.needs_reauth = None;
        }
        RefreshEvent::WillRetry(e) => a.last_error = Some(format!("refresh failed, will retry: {e}")),
        RefreshEvent::Stopped(reason) => {
            a.needs_reauth = Some(reason.to_owned());
            a.last_error = Some(reason.to_owned());
        }
    }
    if !matches!(event, RefreshEvent::Started) && !signing_in {
        a.busy = None;
    }
    RefreshEffects { look_up: !matches!(event, RefreshEvent::Started) }
}

/// What a sign-in event changes beyond the live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInEffects {
    /// What to tell the user.
    pub notice: Option<Notice>,
    /// New credentials: the scheduler plans again now (its next timer may be
    /// hours away, or it had nothing to plan for this server).
    pub wake_scheduler: bool,
    /// The vault record changed: read it again.
    pub look_up: bool,
}

/// The server a sign-in event is about.
pub fn sign_in_server(event: &SignInEvent) -> &ServerRef {
    match event {
        SignInEvent::Started(r)
        | SignInEvent::Connected(r, _)
        | SignInEvent::Failed(r, _)
        | SignInEvent::Cancelled(r) => r,
    }
}

/// Puts a sign-in event into `a`, the server's live state.
pub fn on_sign_in_event(a: &mut ServerActivity, event: &SignInEvent) -> SignInEffects {
    let none = SignInEffects { notice: None, wake_scheduler: false, look_up: false };
    match event {
        SignInEvent::Started(_) => {
            a.busy = Some(Busy::SigningIn);
            none
        }
        SignInEvent::Connected(r, _) => {
            *a = ServerActivity::default();
            SignInEffects { notice: Some(Notice::Connected { server: r.clone() }), wake_scheduler: true, look_up: true }
        }
        SignInEvent::Failed(r, reason) => {
            a.busy = None;
            a.last_error = Some(reason.clone());
            SignInEffects { notice: Some(Notice::SignInFailed { server: r.clone(), reason: reason.clone() }), ..none }
        }
        SignInEvent::Cancelled(_) => {
            a.busy = None;
            none
        }
    }
}

/// Which servers a new snapshot of the agent's files asks to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan<K: Ord> {
    /// Servers whose files differ from what we last wrote or took in (or that
    /// are new): take in what the agent wrote.
    pub sync: BTreeSet<K>,
    /// Servers no longer configured: forget what we knew of their files.
    pub forget: BTreeSet<K>,
}

/// Compares each configured server's files now (`current`: a fingerprint of
/// their content, not their modification time) with what we last wrote or
/// took in (`known`). Only a server whose files changed by someone else's
/// hand is synced: our own writes come back from the watcher with the
/// fingerprint we recorded, and cost nothing.
pub fn plan_sync<K: Ord + Hash + Clone, F: PartialEq>(known: &HashMap<K, F>, current: &[(K, F)]) -> SyncPlan<K> {
    let sync = current.iter().filter(|(k, f)| known.get(k) != Some(f)).map(|(k, _)| k.clone()).collect();
    let configured: BTreeSet<&K> = current.iter().map(|(k, _)| k).collect();
    let forget = known.keys().filter(|k| !configured.contains(k)).cloned().collect();
    SyncPlan { sync, forget }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentPaths;
    use crate::sign_in::connect::Connected;
    use pretty_assertions::assert_eq;
    use rstest::rstest;

    fn activity(busy: Option<Busy>, needs: Option<&str>, error: Option<&str>) -> ServerActivity {
        ServerActivity { busy, needs_reauth: needs.map(str::to_owned), last_error: error.map(str::to_owned) }
    }

    #[rstest]
    #[case::starts(
        activity(None, None, None),
        RefreshEvent::Started,
        activity(Some(Busy::Refreshing), None, None),
        false
    )]
    #[case::sign_in_keeps_busy(
        activity(Some(Busy::SigningIn), None, None),
        RefreshEvent::Started,
        activity(Some(Busy::SigningIn), None, None),
        false
    )]
    #[case::renewed_clears(
        activity(Some(Busy::Refreshing), Some("revoked"), Some("x")),
        RefreshEvent::Renewed,
        activity(None, None, None),
        true
    )]
    #[case::retry(
        activity(Some(Busy::Refreshing), None, None),
        RefreshEvent::WillRetry("timed out"),
        activity(None, None, Some("refresh failed, will retry: timed out")),
        true
    )]
    #[case::stopped(
        activity(Some(Busy::Refreshing), None, None),
        RefreshEvent::Stopped("the grant was revoked"),
        activity(None, Some("the grant was revoked"), Some("the grant was revoked")),
        true
    )]
    #[case::stopped_while_signing_in(
        activity(Some(Busy::SigningIn), None, None),
        RefreshEvent::Stopped("revoked"),
        activity(Some(Busy::SigningIn), Some("revoked"), Some("revoked")),
        true
    )]
    fn refresh_events(
        #[case] mut before: ServerActivity,
        #[case] event: RefreshEvent<'static>,
        #[case] after: ServerActivity,
        #[case] look_up: bool,
    ) {
        assert_eq!(on_refresh_event(&mut before, event), RefreshEffects { look_up });
        assert_eq!(before, after);
    }

    fn r() -> ServerRef {
        ServerRef::new(Some("work"), "linear")
    }

    fn connected() -> Box<Connected> {
        Box::new(Connected {
            paths: AgentPaths::new(std::path::Path::new("/h/mcp-tokens"), "linear"),
            expires_at: None,
            has_refresh_token: true,
            scope: None,
            issuer: None,
            registered: false,
        })
    }

    #[rstest]
    #[case::started(
        SignInEvent::Started(r()),
        activity(None, Some("revoked"), None),
        activity(Some(Busy::SigningIn), Some("revoked"), None),
        None,
        false
    )]
    #[case::connected(
        SignInEvent::Connected(r(), connected()),
        activity(Some(Busy::SigningIn), Some("revoked"), Some("x")),
        activity(None, None, None),
        Some(Notice::Connected { server: r() }),
        true
    )]
    #[case::failed(
        SignInEvent::Failed(r(), "access denied".to_owned()),
        activity(Some(Busy::SigningIn), Some("revoked"), None),
        activity(None, Some("revoked"), Some("access denied")),
        Some(Notice::SignInFailed { server: r(), reason: "access denied".to_owned() }),
        false
    )]
    #[case::cancelled(
        SignInEvent::Cancelled(r()),
        activity(Some(Busy::SigningIn), None, None),
        activity(None, None, None),
        None,
        false
    )]
    fn sign_in_events(
        #[case] event: SignInEvent,
        #[case] mut before: ServerActivity,
        #[case] after: ServerActivity,
        #[case] notice: Option<Notice>,
        #[case] new_credentials: bool,
    ) {
        assert_eq!(sign_in_server(&event), &r());
        let effects = on_sign_in_event(&mut before, &event);
        assert_eq!(effects, SignInEffects { notice, wake_scheduler: new_credentials, look_up: new_credentials });
        assert_eq!(before, after);
    }

    #[rstest]
    #[case::first_sweep_syncs_all(&[], &[("a", 1), ("b", 2)], &["a", "b"], &[])]
    #[case::our_own_write_is_known(&[("a", 1), ("b", 2)], &[("a", 1), ("b", 2)], &[], &[])]
    #[case::one_server_changed(&[("a", 1), ("b", 2)], &[("a", 1), ("b", 3)], &["b"], &[])]
    #[case::new_server(&[("a", 1)], &[("a", 1), ("c", 0)], &["c"], &[])]
    #[case::removed_server(&[("a", 1), ("b", 2)], &[("a", 1)], &[], &["b"])]
    #[case::renamed(&[("a", 1)], &[("z", 1)], &["z"], &["a"])]
    fn sync_plans(
        #[case] known: &[(&'static str, u8)],
        #[case] current: &[(&'static str, u8)],
        #[case] sync: &[&'static str],
        #[case] forget: &[&'static str],
    ) {
        let known: HashMap<&str, u8> = known.iter().copied().collect();
        let plan = plan_sync(&known, current);
        assert_eq!(plan, SyncPlan { sync: sync.iter().copied().collect(), forget: forget.iter().copied().collect() });
    }
}

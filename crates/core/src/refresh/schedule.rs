//! Background refresh: when to refresh each server, and the loop that does it.
//!
//! The rules are plain functions (table-tested): a token is refreshed at a
//! point between 60 % and 75 % of its lifetime (a per-server jitter spreads
//! servers apart), so we refresh well before the agent would; network
//! failures are retried with exponential backoff; a refresh that cannot
//! succeed (`invalid_grant`, registration gone) stops the server's schedule
//! until it is signed in again.
//!
//! The loop sleeps until the earliest due time — no polling — and wakes
//! early when the server list changes or when told to (the app calls
//! [`SchedulerHandle::wake`] after the machine resumes from sleep). Deadlines
//! are wall-clock times re-read after every wake, so time spent suspended is
//! caught up at once; where no resume hook exists (macOS, Windows) each
//! sleep is capped ([`MAX_SLEEP`]) so the loop notices within a minute.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use crate::refresh::transaction::{RefreshError, RefreshOutcome};

/// Wall-clock time, injectable for tests.
pub trait Clock: Send + Sync {
    /// Now, as epoch seconds.
    fn now(&self) -> f64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        crate::util::time::now_secs()
    }
}

/// First retry delay after a transient failure.
pub const BACKOFF_START: Duration = Duration::from_secs(30);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// When to refresh a token expiring at `expires_at` with the given lifetime:
/// at `60 % + 15 % × jitter` of the lifetime (jitter in 0..=1); 5 minutes
/// before expiry when the lifetime is unknown.
pub fn refresh_at(expires_at: f64, lifetime_secs: Option<u64>, jitter: f64) -> f64 {
    let jitter = jitter.clamp(0.0, 1.0);
    match lifetime_secs {
        Some(l) if l > 0 => {
            let l = l as f64;
            expires_at - l + l * (0.60 + 0.15 * jitter)
        }
        _ => expires_at - 300.0,
    }
}

/// Most refreshes in flight at once. Each holds the agent's fence and the
/// server's vault lock for a token request; a few at a time keep 200 due
/// servers well under two seconds without a burst at the keychain or an
/// authorization server that many servers share.
pub const MAX_CONCURRENT_REFRESHES: usize = 8;

/// When the status calls a refresh due: the end of the scheduler's jitter
/// window ([`refresh_at`] with the highest jitter), so the status and the
/// scheduler follow one rule and "refresh due" never shows while the
/// scheduler still waits.
pub fn refresh_due_at(expires_at: f64, lifetime_secs: Option<u64>) -> f64 {
    refresh_at(expires_at, lifetime_secs, 1.0)
}

/// Never refresh one server more often than this, whatever the tokens say
/// (a server handing out already-expired tokens must not make us spin).
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// The pause after a refresh before the next one may start: half the
/// token's lifetime up to 5 s, never less than [`MIN_INTERVAL`].
fn pause_after(lifetime_secs: Option<u64>) -> f64 {
    lifetime_secs.map_or(5.0, |l| (l as f64 / 2.0).min(5.0)).max(MIN_INTERVAL.as_secs_f64())
}

/// Delay before retry number `attempt` (1-based): doubling from 30 s up to
/// 30 minutes, shortened by up to 20 % by `jitter` (0..=1).
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let doubled = BACKOFF_START.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)));
    let capped = doubled.min(BACKOFF_MAX);
    capped.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0))
}

/// What to do after a refresh attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Plan the next refresh from the (new) token expiry.
    Replan,
    /// Try again at this wall-clock time.
    RetryAt(f64),
    /// Give up until the user signs in again (or the server's credentials change).
    Stop(String),
}

/// Classifies a refresh result: network trouble is retried quietly; a
/// refresh that can never work stops the schedule.
pub fn classify(result: &Result<RefreshOutcome, RefreshError>, attempt: u32, now: f64, jitter: f64) -> Next {
    match result {
        Ok(_) => Next::Replan,
        Err(RefreshError::NeedsReauth(reason)) => Next::Stop(reason.to_string()),
        Err(RefreshError::NotConnected) => Next::Stop("not signed in".to_owned()),
        // Transient or not, a failure that says nothing about the grant is
        // retried with backoff: a broken keychain may be mended meanwhile.
        Err(_) => Next::RetryAt(now + backoff(attempt, jitter).as_secs_f64()),
    }
}

/// A stable jitter in 0..1 for a server, so its refresh point does not move
/// every time the plan is recomputed.
pub fn jitter_for(id: &str) -> f64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(id.as_bytes());
    f64::from(u16::from_be_bytes([d[0], d[1]])) / f64::from(u16::MAX)
}

/// One server the scheduler looks after.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Stable id (for jitter and bookkeeping).
    pub id: String,
    /// Current token expiry and lifetime; `None` when there is nothing to refresh.
    pub expiry: Option<(f64, Option<u64>)>,
}

/// Boxed future of [`RefreshOps`].
pub type OpFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the loop needs from the rest of the app.
pub trait RefreshOps: Send + Sync {
    /// The servers to look after, with their current expiry (re-read after
    /// every refresh: the agent may have refreshed too).
    fn plan(&self) -> OpFuture<'_, Vec<Planned>>;
    /// Refreshes one server now.
    fn refresh<'a>(&'a self, id: &'a str) -> OpFuture<'a, Result<RefreshOutcome, RefreshError>>;
    /// Told when a server stops (needs a new sign-in) — for a notification.
    fn stopped(&self, id: &str, reason: &str);
}

/// Wakes the loop early (after resume from sleep, or when credentials changed).
#[derive(Debug, Clone, Default)]
pub struct SchedulerHandle {
    notify: Arc<Notify>,
}

impl SchedulerHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Re-reads the clock and the plan now.
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Refresh at this time (from the token's expiry).
    Due(f64),
    /// Retrying after `attempts` failures, next at this time.
    Retry { at: f64, attempts: u32 },
    /// Stopped for this expiry; a new expiry (a new sign-in) restarts it.
    Stopped { expiry: f64 },
}

/// Runs until `stop` changes to true.
pub async fn run(
    ops: Arc<dyn RefreshOps>,
    clock: Arc<dyn Clock>,
    handle: SchedulerHandle,
    mut stop: watch::Receiver<bool>,
) {
    let mut states: HashMap<String, State> = HashMap::new();
    let mut last_refresh: HashMap<String, f64> = HashMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = clock.now();
        let plan = ops.plan().await;
        // Forget servers no longer listed; (re)plan the others.
        states.retain(|id, _| plan.iter().any(|p| p.id == *id));
        last_refresh.retain(|id, _| plan.iter().any(|p| p.id == *id));
        for p in &plan {
            let Some((expires_at, lifetime)) = p.expiry else {
                states.remove(&p.id);
                continue;
            };
            let not_before = last_refresh.get(&p.id).map_or(f64::MIN, |t| t + pause_after(lifetime));
            let due = refresh_at(expires_at, lifetime, jitter_for(&p.id)).max(not_before);
            let state = states.entry(p.id.clone()).or_insert(State::Due(due));
            match *state {
                State::Due(_) => *state = State::Due(due),
                // A new expiry means someone refreshed or signed in: start over.
                State::Stopped { expiry } if expiry != expires_at => *state = State::Due(due),
                State::Retry { .. } | State::Stopped { .. } => {}
            }
        }
        // Everything due now.
        let due_now: Vec<String> = states
            .iter()
            .filter(|(_, s)| match s {
                State::Due(at) | State::Retry { at, .. } => *at <= now,
                State::Stopped { .. } => false,
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !due_now.is_empty() {
            // Due together (start-up, resume, many sign-ins at one time):
            // at most MAX_CONCURRENT_REFRESHES at once, so neither the
            // authorization servers nor the keychain see a burst.
            for id in &due_now {
                last_refresh.insert(id.clone(), clock.now());
            }
            let ops = &ops;
            let mut results = futures_util::stream::iter(due_now.into_iter().map(|id| async move {
                let result = ops.refresh(&id).await;
                (id, result)
            }))
            .buffer_unordered(MAX_CONCURRENT_REFRESHES);
            while let Some((id, result)) = results.next().await {
                let attempts = match states.get(&id) {
                    Some(State::Retry { attempts, .. }) => *attempts + 1,
                    _ => 1,
                };
                let expiry = plan.iter().find(|p| p.id == id).and_then(|p| p.expiry).map_or(0.0, |(e, _)| e);
                match classify(&result, attempts, clock.now(), jitter_for(&id)) {
                    Next::Replan => {
                        states.remove(&id);
                    }
                    Next::RetryAt(at) => {
                        tracing::info!(server = %id, attempts, "refresh failed; retrying later");
                        states.insert(id, State::Retry { at, attempts });
                    }
                    Next::Stop(reason) => {
                        tracing::warn!(server = %id, %reason, "refresh impossible; needs a new sign-in");
                        ops.stopped(&id, &reason);
                        states.insert(id, State::Stopped { expiry });
                    }
                }
            }
            // Replan at once with the new expiries.
            continue;
        }
        let next = states
            .values()
            .filter_map(|s| match s {
                State::Due(at) | State::Retry { at, .. } => Some(*at),
                State::Stopped { .. } => None,
            })
            .min_by(f64::total_cmp);
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep(sleep_until(at - clock.now())).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = handle.notify.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// Longest single sleep of the scheduler and of the tray's label timer;
/// they re-read the wall clock after it.
///
/// A tokio sleep runs on the monotonic clock, which does not advance while
/// the machine is suspended (Linux, macOS) or is not told about it (Windows),
/// so a long sleep over a suspend ends hours after its wall-clock deadline.
/// On Linux the app's resume hook (logind's `PrepareForSleep`) wakes both
/// loops, so a day is fine; elsewhere there is no such hook, and the cap
/// itself bounds how late a deadline can fire after a wake.
pub const MAX_SLEEP: Duration =
    if cfg!(target_os = "linux") { Duration::from_secs(24 * 3600) } else { WALL_CLOCK_CHECK };

/// The cap of [`MAX_SLEEP`] where no resume hook wakes the loops.
pub const WALL_CLOCK_CHECK: Duration = Duration::from_secs(60);

/// How long to sleep for `secs` seconds to the next due time: never
/// negative, at most [`MAX_SLEEP`], and never a panic when an expiry is
/// absurd (`expires_at: 1e20` or NaN in an agent's file, where
/// `Duration::from_secs_f64` would panic).
pub fn sleep_until(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP))
}

/// Whether the machine was suspended during an interval that took `wall` on
/// the wall clock and `monotonic` on the clock tokio sleeps on: the wall
/// clock ran ahead by more than [`SUSPEND_TOLERANCE`] (which also absorbs a
/// small clock step or a late-scheduled task). A process with no resume
/// hook (the daemon) checks this every [`WALL_CLOCK_CHECK`] and, when true,
/// wakes its service as the tray's logind hook does.
pub fn slept_through(wall: Duration, monotonic: Duration) -> bool {
    wall.saturating_sub(monotonic) > SUSPEND_TOLERANCE
}

/// How far the wall clock may run ahead of the monotonic one in one check
/// before [`slept_through`] says the machine was suspended.
pub const SUSPEND_TOLERANCE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests;

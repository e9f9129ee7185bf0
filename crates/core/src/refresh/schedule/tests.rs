use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use pretty_assertions::assert_eq;
use rstest::rstest;

use super::*;
use crate::refresh::transaction::ReauthReason;

#[rstest]
#[case(10_000.0, Some(3600), 0.0, 10_000.0 - 3600.0 * 0.40)]
#[case(10_000.0, Some(3600), 1.0, 10_000.0 - 3600.0 * 0.25)]
#[case(10_000.0, Some(4), 0.0, 10_000.0 - 1.6)]
#[case(10_000.0, None, 0.5, 10_000.0 - 300.0)]
fn refresh_points(#[case] expires_at: f64, #[case] lifetime: Option<u64>, #[case] jitter: f64, #[case] want: f64) {
    assert!((refresh_at(expires_at, lifetime, jitter) - want).abs() < 1e-6);
}

#[rstest]
#[case(1, 0.0, 30)]
#[case(2, 0.0, 60)]
#[case(3, 0.0, 120)]
#[case(7, 0.0, 1800)]
#[case(40, 0.0, 1800)]
#[case(1, 1.0, 24)]
fn backoff_doubles_and_caps(#[case] attempt: u32, #[case] jitter: f64, #[case] secs: u64) {
    assert_eq!(backoff(attempt, jitter), Duration::from_secs(secs));
}

fn network_error() -> RefreshError {
    RefreshError::Network(std::sync::Arc::new(crate::oauth::tokens::TokenError::Transport(
        "connection refused".to_owned(),
    )))
}

fn keychain_broken() -> RefreshError {
    RefreshError::Vault(crate::vault::VaultError::Backend("damaged".to_owned()))
}

fn revoked() -> RefreshError {
    RefreshError::NeedsReauth(ReauthReason::GrantRejected { description: "revoked".to_owned() })
}

#[rstest]
#[case::refreshed(Ok(RefreshOutcome::Refreshed { expires_at: None }), 1, Next::Replan)]
#[case::network(Err(network_error()), 2, Next::RetryAt(160.0))]
#[case::failed_is_retried_too(Err(keychain_broken()), 1, Next::RetryAt(130.0))]
#[case::rejected(Err(revoked()), 1, Next::Stop("the refresh token was rejected (revoked)".to_owned()))]
#[case::no_refresh_token(
    Err(RefreshError::NeedsReauth(ReauthReason::NoRefreshToken)),
    1,
    Next::Stop("the server gave no refresh token; the access token cannot be renewed".to_owned())
)]
#[case::not_connected(Err(RefreshError::NotConnected), 1, Next::Stop("not signed in".to_owned()))]
fn failures_are_classified(
    #[case] result: Result<RefreshOutcome, RefreshError>,
    #[case] attempt: u32,
    #[case] next: Next,
) {
    assert_eq!(classify(&result, attempt, 100.0, 0.0), next);
}

#[test]
fn jitter_is_stable_and_spread() {
    assert_eq!(jitter_for("a"), jitter_for("a"));
    assert_ne!(jitter_for("a"), jitter_for("b"));
    assert!((0.0..=1.0).contains(&jitter_for("x")));
}

/// Wall clock = tokio's (paused) clock + a base + jumps we inject.
struct TestClock {
    start: tokio::time::Instant,
    jumped: Mutex<f64>,
}

const BASE: f64 = 1_800_000_000.0;

impl Clock for TestClock {
    fn now(&self) -> f64 {
        BASE + self.start.elapsed().as_secs_f64()
            + *self.jumped.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct FakeOps {
    clock: Arc<TestClock>,
    lifetime: u64,
    expiry: Mutex<HashMap<String, f64>>,
    script: Mutex<HashMap<String, VecDeque<Result<RefreshOutcome, RefreshError>>>>,
    refreshed_at: Mutex<Vec<(String, f64)>>,
    stopped: Mutex<Vec<(String, String)>>,
    plans: Mutex<u32>,
}

impl FakeOps {
    fn new(clock: Arc<TestClock>, lifetime: u64, servers: &[&str]) -> Arc<Self> {
        let now = clock.now();
        Arc::new(Self {
            lifetime,
            expiry: Mutex::new(servers.iter().map(|s| ((*s).to_owned(), now + lifetime as f64)).collect()),
            script: Mutex::default(),
            refreshed_at: Mutex::default(),
            stopped: Mutex::default(),
            plans: Mutex::new(0),
            clock,
        })
    }

    fn script(&self, id: &str, results: Vec<Result<RefreshOutcome, RefreshError>>) {
        self.script.lock().expect("lock").insert(id.to_owned(), results.into());
    }

    fn refreshes(&self) -> Vec<(String, f64)> {
        self.refreshed_at.lock().expect("lock").clone()
    }
}

impl RefreshOps for FakeOps {
    fn plan(&self) -> OpFuture<'_, Vec<Planned>> {
        Box::pin(async move {
            *self.plans.lock().expect("lock") += 1;
            let expiry = self.expiry.lock().expect("lock");
            let mut plan: Vec<Planned> = expiry
                .iter()
                .map(|(id, e)| Planned { id: id.clone(), expiry: Some((*e, Some(self.lifetime))) })
                .collect();
            plan.sort_by(|a, b| a.id.cmp(&b.id));
            plan
        })
    }

    fn refresh<'a>(&'a self, id: &'a str) -> OpFuture<'a, Result<RefreshOutcome, RefreshError>> {
        Box::pin(async move {
            let now = self.clock.now();
            self.refreshed_at.lock().expect("lock").push((id.to_owned(), now));
            let result = self
                .script
                .lock()
                .expect("lock")
                .get_mut(id)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Ok(RefreshOutcome::Refreshed { expires_at: None }));
            if result.is_ok() {
                self.expiry.lock().expect("lock").insert(id.to_owned(), now + self.lifetime as f64);
            }
            result
        })
    }

    fn stopped(&self, id: &str, reason: &str) {
        self.stopped.lock().expect("lock").push((id.to_owned(), reason.to_owned()));
    }
}

fn start(ops: Arc<FakeOps>, clock: Arc<TestClock>) -> (SchedulerHandle, watch::Sender<bool>) {
    let handle = SchedulerHandle::new();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(run(ops, clock, handle.clone(), stopped));
    (handle, stop)
}

fn clock() -> Arc<TestClock> {
    Arc::new(TestClock { start: tokio::time::Instant::now(), jumped: Mutex::new(0.0) })
}

#[tokio::test(start_paused = true)]
async fn refreshes_between_60_and_75_percent_of_the_lifetime() {
    let clock = clock();
    let ops = FakeOps::new(clock.clone(), 3600, &["a", "b"]);
    let (_handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let refreshes = ops.refreshes();
    let first_a = refreshes.iter().find(|(id, _)| id == "a").map(|(_, t)| t - BASE).expect("a refreshed");
    assert!((2160.0..=2700.0).contains(&first_a), "refreshed at {first_a} s of 3600");
    // Each refresh extends the token, so a few refreshes per server, never after expiry.
    for id in ["a", "b"] {
        let times: Vec<f64> = refreshes.iter().filter(|(i, _)| i == id).map(|(_, t)| *t).collect();
        assert!((4..=5).contains(&times.len()), "{id}: {times:?}");
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!((2160.0..=2700.0).contains(&gap), "{id}: gap {gap}");
        }
    }
    // No polling: the loop woke only for refreshes (plus its first look).
    assert!(
        *ops.plans.lock().expect("lock") <= 1 + 2 * refreshes.len() as u32,
        "plans: {}",
        ops.plans.lock().expect("lock")
    );
}

#[tokio::test(start_paused = true)]
async fn network_failures_back_off_then_recover() {
    let clock = clock();
    let ops = FakeOps::new(clock.clone(), 3600, &["a"]);
    let transient = || Err(network_error());
    ops.script("a", vec![transient(), transient(), transient()]);
    let (_handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(2700 + 600)).await;
    let times: Vec<f64> = ops.refreshes().iter().map(|(_, t)| *t).collect();
    assert!(times.len() >= 4, "{times:?}");
    let gaps: Vec<f64> = times.windows(2).take(3).map(|p| p[1] - p[0]).collect();
    for (gap, base) in gaps.iter().zip([30.0, 60.0, 120.0]) {
        assert!((base * 0.8 - 1e-6..=base + 1e-6).contains(gap), "gaps {gaps:?}");
    }
    assert!(ops.stopped.lock().expect("lock").is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_impossible_refresh_stops_once_until_signed_in_again() {
    let clock = clock();
    let ops = FakeOps::new(clock.clone(), 3600, &["a"]);
    ops.script("a", vec![Err(revoked())]);
    let (handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(10 * 3600)).await;
    assert_eq!(ops.refreshes().len(), 1, "no retries of a refresh that cannot work");
    assert_eq!(
        ops.stopped.lock().expect("lock").clone(),
        vec![("a".to_owned(), "the refresh token was rejected (revoked)".to_owned())]
    );
    // A new sign-in (new expiry) starts the schedule again.
    let now = clock.now();
    ops.expiry.lock().expect("lock").insert("a".to_owned(), now + 3600.0);
    handle.wake();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(ops.refreshes().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn catches_up_at_once_after_the_machine_slept() {
    let clock = clock();
    let ops = FakeOps::new(clock.clone(), 3600, &["a"]);
    let (handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(ops.refreshes().is_empty());
    // Suspended for two hours: the wall clock jumped, the monotonic one did not.
    *clock.jumped.lock().expect("lock") += 7200.0;
    handle.wake();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let refreshes = ops.refreshes();
    assert_eq!(refreshes.len(), 1, "the overdue refresh ran right after the wake");
    assert!(refreshes[0].1 - BASE >= 7260.0 - 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_in_a_suspend_fires_within_one_capped_sleep_without_a_wake() {
    // A token living 100 days: its refresh is due in about 60 days, far
    // beyond one sleep, so the loop sleeps for MAX_SLEEP at a time.
    let clock = clock();
    let lifetime = 100 * 24 * 3600;
    let ops = FakeOps::new(clock.clone(), lifetime, &["a"]);
    let (_handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(ops.refreshes().is_empty());
    // Suspended for 90 days: the wall clock jumped, the monotonic one did
    // not, and nothing calls `wake` (no resume hook on this platform).
    *clock.jumped.lock().expect("lock") += 90.0 * 24.0 * 3600.0;
    tokio::time::sleep(MAX_SLEEP + Duration::from_secs(1)).await;
    let refreshes = ops.refreshes();
    assert_eq!(refreshes.len(), 1, "the overdue refresh ran within one capped sleep");
}

#[test]
fn without_a_resume_hook_each_sleep_is_at_most_a_minute() {
    assert_eq!(WALL_CLOCK_CHECK, Duration::from_secs(60));
    if cfg!(target_os = "linux") {
        assert_eq!(MAX_SLEEP, Duration::from_secs(24 * 3600), "Linux wakes the loops on resume");
    } else {
        assert_eq!(MAX_SLEEP, WALL_CLOCK_CHECK);
    }
    assert_eq!(sleep_until(1e9), MAX_SLEEP);
}

#[tokio::test(start_paused = true)]
async fn tokens_that_expire_at_once_do_not_make_it_spin() {
    let clock = clock();
    let ops = FakeOps::new(clock.clone(), 0, &["a"]);
    let (_handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let n = ops.refreshes().len();
    assert!((25..=31).contains(&n), "{n} refreshes in 60 s (at most one per {MIN_INTERVAL:?})");
}

#[test]
fn sleeps_are_bounded_whatever_the_expiry() {
    let cases = [
        (12.5, Duration::from_secs_f64(12.5)),
        (0.0, Duration::ZERO),
        (-30.0, Duration::ZERO),
        (f64::NAN, Duration::ZERO),
        (1e20, MAX_SLEEP),
        (f64::INFINITY, MAX_SLEEP),
        (f64::NEG_INFINITY, Duration::ZERO),
        (2.0 * 24.0 * 3600.0, MAX_SLEEP),
    ];
    for (secs, want) in cases {
        assert_eq!(sleep_until(secs), want, "{secs}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_absurd_expiry_does_not_stop_the_scheduler() {
    let clock = clock();
    let ops = FakeOps::new(clock.clone(), 3600, &["absurd"]);
    // `expires_at: 1e20` in an agent's file, adopted as it is: the only
    // server, so the next wake is computed from it.
    ops.expiry.lock().expect("lock").insert("absurd".to_owned(), 1e20);
    let (handle, _stop) = start(ops.clone(), clock.clone());
    tokio::time::sleep(Duration::from_secs(60)).await;
    // A server signed in later is still looked after.
    ops.expiry.lock().expect("lock").insert("b".to_owned(), clock.now() + 3600.0);
    handle.wake();
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    let refreshes = ops.refreshes();
    assert_eq!(refreshes.iter().filter(|(id, _)| id == "absurd").count(), 0);
    let b = refreshes.iter().filter(|(id, _)| id == "b").count();
    assert!((4..=5).contains(&b), "the other server was refreshed {b} times: {refreshes:?}");
}

#[rstest]
#[case::awake(60, 60, false)]
#[case::scheduled_late(65, 60, false)]
#[case::clock_set_back(0, 60, false)]
#[case::suspended_overnight(8 * 3600, 60, true)]
#[case::short_suspend(90, 60, true)]
fn a_suspend_shows_as_the_wall_clock_running_ahead(#[case] wall: u64, #[case] monotonic: u64, #[case] want: bool) {
    assert_eq!(slept_through(Duration::from_secs(wall), Duration::from_secs(monotonic)), want);
}

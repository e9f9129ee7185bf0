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
    RefreshError::Network(std::sync::Arc::new(crate::oauth::tokens::TokenError::Transport("connection refused".to_owned())))
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
    assert_eq!(ops.stopped.lock().expect("lock").clone(), vec![("a".to_owned(), "the refresh token was rejected (revoked)".to_owned())]);
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

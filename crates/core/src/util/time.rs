//! The wall clock, in the one unit the engine stores: epoch seconds as `f64`
//! (what the agent writes in `expires_at`). Every "now" in the core comes
//! from here, or from the scheduler's injected `Clock` in tests.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as epoch seconds.
pub fn now_secs() -> f64 {
    epoch_secs(SystemTime::now())
}

/// A wall-clock time as epoch seconds (0 before 1970, which no file has).
pub fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

//! Keeping tokens fresh: the refresh transaction (single-flight, never losing
//! a rotated token), the pure schedule rules, and the background loop.

pub(crate) mod background;
pub(crate) mod schedule;
pub(crate) mod transaction;

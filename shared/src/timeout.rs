//! Workflow timeouts: the one range every part accepts.
//!
//! A timeout comes from a decorator literal (`@workflow(timeout=...)`), so
//! from user code: detection reports an out-of-range one as a diagnostic,
//! and the worker fails a job carrying one instead of panicking on it (a
//! `Duration` cannot hold `1e20` seconds).

use std::time::Duration;

/// The longest timeout a workflow may ask for: 7 days.
pub const MAX_TIMEOUT_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// A timeout outside `(0, MAX_TIMEOUT_SECONDS]` (or not a number).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "timeout={0} is out of range: a timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds (7 days)"
)]
pub struct TimeoutOutOfRange(pub f64);

/// `seconds` as a `Duration`, when it is a timeout a worker can enforce.
pub fn timeout_duration(seconds: f64) -> Result<Duration, TimeoutOutOfRange> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_TIMEOUT_SECONDS {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(TimeoutOutOfRange(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_finite_timeouts_up_to_a_week_pass() {
        assert_eq!(timeout_duration(2.5), Ok(Duration::from_millis(2500)));
        assert!(timeout_duration(MAX_TIMEOUT_SECONDS).is_ok());
        for bad in [
            0.0,
            -1.0,
            1e20,
            f64::INFINITY,
            f64::NAN,
            MAX_TIMEOUT_SECONDS + 1.0,
        ] {
            assert!(timeout_duration(bad).is_err(), "{bad}");
        }
        let message = TimeoutOutOfRange(1e20).to_string();
        assert!(
            message.contains("1e20") || message.contains("100000000000000000000"),
            "{message}"
        );
    }
}

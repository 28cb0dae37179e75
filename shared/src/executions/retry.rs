//! Retries of user failures: the policy an execution was queued with (from
//! its workflow's `retries=`, `retry_backoff=`, `retry_on=`), whether a
//! failed attempt is retried, and when.
//!
//! Worker faults (a worker killed or lost) are not user failures: they are
//! bounded by `RUNEFLOW_MAX_ATTEMPTS` on their own (see the worker's
//! `record::start`), whatever the policy says.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detect::Settings;

/// Base delay before the first retry when `retry_backoff=` is not given.
pub const DEFAULT_BACKOFF_SECONDS: f64 = 1.0;
/// Longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 3600);

/// Stored in `executions.retry_policy` when the execution is queued, so an
/// edit of the workflow does not change the retries of runs in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubled for each later one.
    pub backoff_seconds: f64,
    /// Error types retried; `None`: any failure (timeouts included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<String>>,
}

impl RetryPolicy {
    /// The policy of a workflow's settings; `None` without `retries=` (or
    /// with `retries=0`).
    pub fn from_settings(settings: &Settings) -> Option<RetryPolicy> {
        let retries = settings.retries.filter(|r| *r > 0)?;
        Some(RetryPolicy {
            retries,
            backoff_seconds: settings
                .retry_backoff_seconds
                .unwrap_or(DEFAULT_BACKOFF_SECONDS),
            retry_on: settings.retry_on.clone(),
        })
    }

    /// The policy stored in a row; `None` when absent or unreadable.
    pub fn from_json(value: Option<&serde_json::Value>) -> Option<RetryPolicy> {
        value.and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Whether a failure of type `error_type` is retried after `used`
    /// retries. The worker's own timeout (`Timeout`) also matches
    /// `TimeoutError`, the name a Python user would write.
    pub fn retries(&self, used: i32, error_type: &str) -> bool {
        if i64::from(used) >= i64::from(self.retries) {
            return false;
        }
        match &self.retry_on {
            None => true,
            Some(names) => names.iter().any(|name| {
                name == error_type || (error_type == "Timeout" && name == "TimeoutError")
            }),
        }
    }

    /// The delay before retry number `used + 1`: the backoff doubled per
    /// earlier retry, times `jitter` (a factor the caller draws from
    /// 0.75..1.25, so retries of many executions failing together spread
    /// out), at most [`MAX_BACKOFF`].
    pub fn delay(&self, used: i32, jitter: f64) -> Duration {
        let exponent = used.clamp(0, 40);
        let seconds = self.backoff_seconds * 2f64.powi(exponent) * jitter;
        if !seconds.is_finite() || seconds <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(seconds.min(MAX_BACKOFF.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retries: u32, retry_on: Option<&[&str]>) -> RetryPolicy {
        RetryPolicy {
            retries,
            backoff_seconds: 2.0,
            retry_on: retry_on.map(|names| names.iter().map(|n| n.to_string()).collect()),
        }
    }

    #[test]
    fn retried_while_retries_are_left_and_the_type_matches() {
        let any = policy(2, None);
        assert!(any.retries(0, "ValueError"));
        assert!(any.retries(1, "Timeout"));
        assert!(!any.retries(2, "ValueError"), "both retries used");
        let some = policy(3, Some(&["TimeoutError", "ConnectionError"]));
        assert!(some.retries(0, "ConnectionError"));
        assert!(
            some.retries(0, "Timeout"),
            "the worker's timeout is a TimeoutError"
        );
        assert!(!some.retries(0, "ValueError"));
    }

    #[test]
    fn exponential_backoff_with_jitter_and_a_ceiling() {
        let p = policy(5, None);
        assert_eq!(p.delay(0, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs(16));
        assert_eq!(p.delay(2, 0.75), Duration::from_secs(6));
        assert_eq!(p.delay(1000, 1.25), MAX_BACKOFF);
    }

    #[test]
    fn from_settings_and_back_through_json() {
        let settings = Settings {
            retries: Some(3),
            retry_on: Some(vec!["KeyError".into()]),
            ..Settings::default()
        };
        let p = RetryPolicy::from_settings(&settings).unwrap();
        assert_eq!(p.backoff_seconds, DEFAULT_BACKOFF_SECONDS);
        assert_eq!(RetryPolicy::from_json(Some(&p.to_json())), Some(p));
        let none = Settings {
            retries: Some(0),
            ..Settings::default()
        };
        assert_eq!(RetryPolicy::from_settings(&none), None);
        assert_eq!(RetryPolicy::from_json(Some(&serde_json::json!("x"))), None);
    }
}

//! Cron schedules in a time zone: `@workflow(schedule="0 9 * * *",
//! timezone="Europe/Paris")`.
//!
//! An expression has 5 fields (minute hour day-of-month month day-of-week),
//! or 6 with a leading seconds field, or is a nickname (`@daily`, `@hourly`,
//! ...); croner's extensions (`L`, `W`, `#`, `+` for day-of-month AND
//! day-of-week) are accepted too. A year field is not: a schedule that can
//! stop running for good is a trap, not a feature.
//!
//! Times are computed on the wall clock of the schedule's IANA zone, so DST
//! behaves as cron does on a machine in that zone:
//! - a fixed time inside the skipped hour (02:30 on the last Sunday of March
//!   in Europe/Paris) runs once, at the first instant after the gap (03:00);
//! - a fixed time inside the repeated hour runs once, at its first instant;
//! - an interval (`*/30 * * * *`) runs on both passes of the repeated hour.

use std::fmt;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The zone a schedule uses when the decorator names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Where the "does any date match?" search starts: a multiple of 400 (the
/// Gregorian cycle) more than 400 years before croner's last year (5000).
const PROBE_YEAR: i32 = 4_400;

/// Longest expression accepted (a real one is a few dozen characters).
const MAX_EXPRESSION_CHARS: usize = 256;

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule {expression:?} is not a valid cron expression: {reason}")]
    Cron { expression: String, reason: String },
    #[error(
        "timezone {0:?} is not an IANA time zone name (for example \"UTC\" or \"Europe/Paris\")"
    )]
    Zone(String),
    #[error("schedule {0:?} never runs: no date matches it")]
    NeverRuns(String),
}

/// A parsed cron expression and the zone its wall-clock times are read in.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("timezone", &self.timezone.name())
            .finish()
    }
}

impl Schedule {
    /// Parses `expression` and the IANA zone `timezone` (case-sensitive, as
    /// in the tz database: `Europe/Paris`, `UTC`). Refuses an expression no
    /// date matches (`0 0 30 2 *`), so a stored schedule always has runs.
    pub fn parse(expression: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        let timezone = parse_timezone(timezone)?;
        let expression = expression.trim();
        let refused = |reason: String| ScheduleError::Cron {
            expression: expression.to_owned(),
            reason,
        };
        if expression.chars().count() > MAX_EXPRESSION_CHARS {
            return Err(refused(format!(
                "longer than {MAX_EXPRESSION_CHARS} characters"
            )));
        }
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(refused(format!(
                "it has {fields} fields; expected 5 (minute hour day-of-month month \
                 day-of-week) or 6 (seconds first)"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| refused(e.to_string()))?;
        let schedule = Schedule {
            expression: expression.to_owned(),
            timezone,
            cron,
        };
        // Without a year field the calendar (leap years and weekdays) repeats
        // every 400 years, so a date matches if one does within 400 years.
        // croner searches up to the year 5000, so the probe starts 600 years
        // before it: a pattern no date matches is refused after 600 years of
        // search (microseconds), not 3 000 (up to 100 ms in a debug build).
        let probe = Utc.with_ymd_and_hms(PROBE_YEAR, 1, 1, 0, 0, 0).single();
        if probe.is_none_or(|at| schedule.next_runs(at, 1).is_empty()) {
            return Err(ScheduleError::NeverRuns(schedule.expression));
        }
        Ok(schedule)
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The IANA name of the zone.
    pub fn timezone(&self) -> &'static str {
        self.timezone.name()
    }

    /// The next `n` run times strictly after `after`. Fewer only past
    /// croner's last year (5000) for a schedule [`Schedule::parse`] accepted.
    pub fn next_runs(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut runs = Vec::with_capacity(n.min(64));
        let mut cursor = after.with_timezone(&self.timezone);
        while runs.len() < n {
            match self.cron.find_next_occurrence(&cursor, false) {
                Ok(next) if next > cursor => {
                    runs.push(next.with_timezone(&Utc));
                    cursor = next;
                }
                _ => break,
            }
        }
        runs
    }

    /// `at` on the schedule's wall clock, with that moment's UTC offset.
    pub fn local(&self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        at.with_timezone(&self.timezone).fixed_offset()
    }
}

/// An IANA zone by its exact name.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::Zone(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn runs(schedule: &Schedule, after: &str, n: usize) -> Vec<String> {
        schedule
            .next_runs(utc(after), n)
            .into_iter()
            .map(|t| schedule.local(t).to_rfc3339())
            .collect()
    }

    #[test]
    fn five_fields_in_a_zone_give_wall_clock_times() {
        let s = Schedule::parse("0 9 * * *", "Europe/Paris").expect("valid");
        assert_eq!(
            (s.expression(), s.timezone()),
            ("0 9 * * *", "Europe/Paris")
        );
        assert_eq!(
            runs(&s, "2026-12-06T08:30:00Z", 3),
            [
                "2026-12-07T09:00:00+01:00",
                "2026-12-08T09:00:00+01:00",
                "2026-12-09T09:00:00+01:00"
            ]
        );
        // Strictly after: a run time itself is not returned again.
        assert_eq!(
            runs(&s, "2026-12-07T08:00:00Z", 1),
            ["2026-12-08T09:00:00+01:00"]
        );
    }

    #[test]
    fn seconds_field_and_nicknames_are_accepted() {
        let s = Schedule::parse("*/15 * * * * *", "UTC").expect("valid");
        assert_eq!(
            runs(&s, "2026-12-06T00:00:00Z", 3),
            [
                "2026-12-06T00:00:15+00:00",
                "2026-12-06T00:00:30+00:00",
                "2026-12-06T00:00:45+00:00"
            ]
        );
        let daily = Schedule::parse("@daily", DEFAULT_TIMEZONE).expect("valid");
        assert_eq!(
            runs(&daily, "2026-12-06T10:00:00Z", 1),
            ["2026-12-07T00:00:00+00:00"]
        );
        let weekdays = Schedule::parse("30 7 * * MON-FRI", "America/New_York").expect("valid");
        // 2026-12-05 is a Saturday.
        assert_eq!(
            runs(&weekdays, "2026-12-05T12:00:00Z", 2),
            ["2026-12-07T07:30:00-05:00", "2026-12-08T07:30:00-05:00"]
        );
    }

    #[test]
    fn a_fixed_time_in_the_skipped_hour_runs_once_after_the_gap() {
        // Europe/Paris skips 02:00-03:00 on 2026-03-29 (CET → CEST).
        let s = Schedule::parse("30 2 * * *", "Europe/Paris").expect("valid");
        assert_eq!(
            runs(&s, "2026-03-27T12:00:00Z", 4),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00"
            ]
        );
        // An hourly schedule has no 02:00 run that day and loses nothing else.
        let hourly = Schedule::parse("0 * * * *", "Europe/Paris").expect("valid");
        assert_eq!(
            runs(&hourly, "2026-03-28T23:30:00Z", 3),
            [
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00"
            ]
        );
    }

    #[test]
    fn a_fixed_time_in_the_repeated_hour_runs_once() {
        // Europe/Paris repeats 02:00-03:00 on 2026-10-25 (CEST → CET).
        let s = Schedule::parse("30 2 * * *", "Europe/Paris").expect("valid");
        assert_eq!(
            runs(&s, "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00"
            ]
        );
        // Starting inside the repeated hour, after its first 02:30: no second run.
        assert_eq!(
            runs(&s, "2026-10-25T00:45:00Z", 1),
            ["2026-10-26T02:30:00+01:00"]
        );
    }

    #[test]
    fn an_interval_runs_on_both_passes_of_the_repeated_hour() {
        let s = Schedule::parse("*/30 * * * *", "Europe/Paris").expect("valid");
        assert_eq!(
            runs(&s, "2026-10-24T23:45:00Z", 5),
            [
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-25T03:00:00+01:00"
            ]
        );
    }

    #[test]
    fn invalid_expressions_are_refused_with_the_reason() {
        for bad in [
            "",
            "* * * *",
            "0 9 * * * * 2030",
            "61 * * * *",
            "0 25 * * *",
            "0 9 * * MOO",
            "every day",
            "0 9 ? * * x",
        ] {
            let err = Schedule::parse(bad, "UTC").expect_err(bad);
            assert!(matches!(err, ScheduleError::Cron { .. }), "{bad}: {err:?}");
            assert!(
                err.to_string().contains("not a valid cron expression"),
                "{err}"
            );
        }
        let err = Schedule::parse("* * *", "UTC").expect_err("3 fields");
        assert!(err.to_string().contains("it has 3 fields"), "{err}");
        let long = "1,".repeat(200) + "1 * * * *";
        assert!(Schedule::parse(&long, "UTC").is_err());
    }

    #[test]
    fn an_expression_no_date_matches_is_refused() {
        for never in ["0 0 30 2 *", "0 0 31 4 *"] {
            assert_eq!(
                Schedule::parse(never, "UTC").expect_err(never),
                ScheduleError::NeverRuns(never.to_owned())
            );
        }
        // Rare but real: the 29th of February when it is a Monday.
        assert!(Schedule::parse("0 0 29 2 +MON", "UTC").is_ok());
    }

    #[test]
    fn unknown_zones_are_refused_by_name() {
        for bad in ["Mars/Olympus", "europe/paris", "", "+01:00", "CET "] {
            let err = Schedule::parse("0 9 * * *", bad).expect_err(bad);
            assert_eq!(err, ScheduleError::Zone(bad.to_owned()));
            assert!(err.to_string().contains("IANA"), "{err}");
        }
        assert!(parse_timezone("Asia/Kolkata").is_ok());
    }
}

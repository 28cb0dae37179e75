//! Which ticks of a schedule are due, given the last one handled.
//!
//! A tick is *on time* when it is at most [`ON_TIME`] old at the pass that
//! sees it (the loop runs every 500 ms, so an on-time tick is seen by the
//! first or second pass after it). Every on-time tick runs. Older ticks
//! were *missed* (no scheduler ran, or it stalled): with `catch_up` the
//! latest missed tick runs once in total, without they are skipped.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use crate::schedule::Schedule;

/// How old a tick may be and still count as on time: twice the loop period.
pub const ON_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Most ticks a lookup walks through in one window (a guard for dense
/// expressions; windows are found by doubling, so a real one is far below).
const MAX_WALK: usize = 100_000;

/// What a pass does for one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The ticks to enqueue, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// The newest tick handled (run or skipped): the schedule's next
    /// `last_tick`; `None` when no tick came since `after`.
    pub handled_up_to: Option<DateTime<Utc>>,
}

/// The ticks after `after` (the last handled tick, or the schedule's
/// creation) up to `now`.
pub fn due(schedule: &Schedule, after: DateTime<Utc>, now: DateTime<Utc>, catch_up: bool) -> Due {
    let on_time = chrono::Duration::from_std(ON_TIME).unwrap_or_default();
    let cutoff = now - on_time;
    let mut run = Vec::new();
    let mut handled_up_to = None;
    if schedule
        .next_runs(after, 1)
        .first()
        .is_some_and(|first| *first <= cutoff)
    {
        let latest = latest_at_or_before(schedule, after, cutoff);
        if catch_up {
            run.extend(latest);
        }
        handled_up_to = latest;
    }
    // Ticks fall on whole seconds, so the on-time window holds at most one.
    for tick in schedule.next_runs(after.max(cutoff), 2) {
        if tick > now {
            break;
        }
        run.push(tick);
        handled_up_to = Some(tick);
    }
    Due { run, handled_up_to }
}

/// The latest tick in `(after, upto]`, found by doubling a window back from
/// `upto` (so a year of one-second ticks costs a few dozen lookups, not
/// millions).
fn latest_at_or_before(
    schedule: &Schedule,
    after: DateTime<Utc>,
    upto: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut span = chrono::Duration::seconds(1);
    loop {
        let from = (upto - span).max(after);
        let first = *schedule.next_runs(from, 1).first()?;
        if first <= upto {
            let mut latest = first;
            let mut cursor = first;
            for _ in 0..MAX_WALK {
                match schedule.next_runs(cursor, 1).first() {
                    Some(next) if *next <= upto => {
                        latest = *next;
                        cursor = *next;
                    }
                    _ => break,
                }
            }
            return Some(latest);
        }
        if from == after {
            return None;
        }
        span = span * 2;
    }
}

/// The execution's unique `schedule_tick`: `<schedule id>@<tick RFC 3339>`.
pub fn tick_key(schedule_id: Uuid, tick: DateTime<Utc>) -> String {
    format!(
        "{schedule_id}@{}",
        tick.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, h, m, s).unwrap()
    }

    fn every_second() -> Schedule {
        Schedule::parse("* * * * * *", "UTC").unwrap()
    }

    #[test]
    fn on_time_ticks_each_run() {
        let d = due(
            &every_second(),
            at(9, 0, 0),
            at(9, 0, 0) + chrono::Duration::milliseconds(1500),
            true,
        );
        assert_eq!(d.run, vec![at(9, 0, 1)]);
        assert_eq!(d.handled_up_to, Some(at(9, 0, 1)));
        let none = due(
            &every_second(),
            at(9, 0, 1),
            at(9, 0, 1) + chrono::Duration::milliseconds(400),
            true,
        );
        assert_eq!(
            none,
            Due {
                run: vec![],
                handled_up_to: None
            }
        );
    }

    #[test]
    fn an_hour_of_missed_ticks_runs_once_with_catch_up() {
        let now = at(10, 0, 0) + chrono::Duration::milliseconds(200);
        let d = due(&every_second(), at(9, 0, 0), now, true);
        // The latest missed tick (09:59:59) once, then the on-time one.
        assert_eq!(d.run, vec![at(9, 59, 59), at(10, 0, 0)]);
        assert_eq!(d.handled_up_to, Some(at(10, 0, 0)));
    }

    #[test]
    fn missed_ticks_are_skipped_without_catch_up() {
        let now = at(10, 0, 0) + chrono::Duration::milliseconds(200);
        let d = due(&every_second(), at(9, 0, 0), now, false);
        assert_eq!(d.run, vec![at(10, 0, 0)]);
        assert_eq!(d.handled_up_to, Some(at(10, 0, 0)));
        let daily = Schedule::parse("0 9 * * *", "UTC").unwrap();
        let d = due(
            &daily,
            at(8, 0, 0) - chrono::Duration::days(3),
            at(10, 0, 0),
            false,
        );
        assert_eq!(
            d,
            Due {
                run: vec![],
                handled_up_to: Some(at(9, 0, 0))
            }
        );
    }

    #[test]
    fn a_daily_schedule_missed_for_days_catches_up_once() {
        let daily = Schedule::parse("0 9 * * *", "UTC").unwrap();
        let d = due(
            &daily,
            at(8, 0, 0) - chrono::Duration::days(30),
            at(10, 0, 0),
            true,
        );
        assert_eq!(d.run, vec![at(9, 0, 0)]);
    }

    #[test]
    fn tick_keys_name_the_schedule_and_the_second() {
        let id = Uuid::nil();
        assert_eq!(
            tick_key(id, at(9, 0, 1)),
            "00000000-0000-0000-0000-000000000000@2026-12-06T09:00:01Z"
        );
    }
}

//! The legal moves between statuses, as a table. Each statement in
//! `statements` declares the move it makes ([`Move`]) and builds its
//! `WHERE status IN (…)` from that declaration, and a test checks every
//! declared move against [`TABLE`]; ARCHITECTURE.md shows the same table.

use super::Status::{self, *};

/// One legal transition and what makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    pub by: &'static str,
}

const fn t(from: Status, to: Status, by: &'static str) -> Transition {
    Transition { from, to, by }
}

/// Every legal transition. A final status has none out of it.
pub const TABLE: &[Transition] = &[
    t(
        Scheduled,
        Pending,
        "its time came (delayed run, or a retry's backoff)",
    ),
    t(Scheduled, Cancelled, "cancel before its time"),
    t(Pending, Running, "a worker starts attempt 1"),
    t(Pending, Cancelled, "cancel before a worker started it"),
    t(
        Pending,
        Scheduled,
        "its workflow's max_concurrency is reached: it waits for a slot",
    ),
    t(Running, Running, "a redelivery starts the next attempt"),
    t(Running, Success, "the attempt's outcome"),
    t(Running, Failed, "the attempt's outcome, or given up"),
    t(Running, Timeout, "the attempt's outcome"),
    t(
        Running,
        Scheduled,
        "a failed attempt with retries left waits for its backoff",
    ),
    t(Running, Cancelled, "cancel of the running attempt"),
];

/// Whether `from → to` is in [`TABLE`].
pub fn allowed(from: Status, to: Status) -> bool {
    TABLE.iter().any(|t| t.from == from && t.to == to)
}

/// What one statement may do: from any of `from` to any of `to`.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    pub statement: &'static str,
    pub from: &'static [Status],
    pub to: &'static [Status],
}

impl Move {
    /// `'a', 'b'`: the SQL list of the statuses this move leaves from.
    pub fn from_sql(&self) -> String {
        sql_list(self.from)
    }
}

/// Statuses as an SQL list of literals (they are fixed names, never input).
pub fn sql_list(statuses: &[Status]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executions::statements::MOVES;

    #[test]
    fn every_statement_moves_only_along_the_table() {
        for m in MOVES {
            assert!(!m.from.is_empty() && !m.to.is_empty(), "{m:?}");
            for &from in m.from {
                for &to in m.to {
                    assert!(
                        allowed(from, to),
                        "{}: {from} → {to} is not in the table",
                        m.statement
                    );
                }
            }
        }
    }

    #[test]
    fn nothing_leaves_a_final_status_and_every_status_is_reachable() {
        for t in TABLE {
            assert!(!t.from.is_final(), "{t:?}");
        }
        for status in Status::ALL {
            let reachable =
                status == Scheduled || status == Pending || TABLE.iter().any(|t| t.to == status);
            assert!(reachable, "{status}");
        }
    }
}

//! What `runeflow import` prints: one line per file,
//! `created|updated|unchanged|refused <path>[: reason]`, then the summary
//! `N created, N updated, N unchanged, N refused`. Kept apart so the
//! format (which scripts may parse) is defined in one place.

use std::fmt;

/// What happened (or, with `--dry-run`, would happen) to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Updated,
    Unchanged,
    Refused,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
            Status::Refused => "refused",
        }
    }
}

/// One output line.
#[derive(Debug, Clone)]
pub struct Line {
    pub status: Status,
    /// The workspace path (lossy when the file name is not UTF-8).
    pub path: String,
    /// Why a file was refused.
    pub reason: Option<String>,
}

impl Line {
    pub fn new(status: Status, path: String) -> Line {
        Line {
            status,
            path,
            reason: None,
        }
    }

    pub fn refused(path: String, reason: impl Into<String>) -> Line {
        Line {
            status: Status::Refused,
            path,
            reason: Some(reason.into()),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.word(), self.path)?;
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

/// Counts per status, printed as the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub refused: usize,
}

impl Tally {
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Created => self.created += 1,
            Status::Updated => self.updated += 1,
            Status::Unchanged => self.unchanged += 1,
            Status::Refused => self.refused += 1,
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} refused",
            self.created, self.updated, self.unchanged, self.refused
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Line, Status, Tally};

    #[test]
    fn formats() {
        assert_eq!(
            Line::new(Status::Created, "a.py".into()).to_string(),
            "created a.py"
        );
        assert_eq!(
            Line::refused("b".into(), "too big").to_string(),
            "refused b: too big"
        );
        let mut tally = Tally::default();
        tally.add(Status::Refused);
        tally.add(Status::Created);
        assert_eq!(
            tally.to_string(),
            "1 created, 0 updated, 0 unchanged, 1 refused"
        );
    }
}

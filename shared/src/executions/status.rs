//! `executions.status` as a type: a sea-orm active enum over the existing
//! TEXT column (the values are the strings stored and shown by the API).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where an execution is in its life (see `transitions` for the moves).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "lowercase")]
#[schema(rename_all = "lowercase")]
pub enum Status {
    /// Reserved for delayed runs: waits for its time, then becomes pending.
    #[sea_orm(string_value = "scheduled")]
    Scheduled,
    /// Queued; no worker has started it.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// A worker started attempt `attempt`.
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "success")]
    Success,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "timeout")]
    Timeout,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// A status name that is not one of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status '{0}' (accepted: {accepted})", accepted = Status::accepted())]
pub struct UnknownStatus(pub String);

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 7] = [
        Status::Scheduled,
        Status::Pending,
        Status::Running,
        Status::Success,
        Status::Failed,
        Status::Timeout,
        Status::Cancelled,
    ];

    /// The stored (and shown) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::Cancelled => "cancelled",
        }
    }

    /// True once an execution can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Success | Status::Failed | Status::Timeout | Status::Cancelled
        )
    }

    /// The accepted names, comma-separated (for error messages).
    pub fn accepted() -> String {
        Status::ALL.map(Status::as_str).join(", ")
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    #[test]
    fn names_agree_everywhere() {
        for status in Status::ALL {
            assert_eq!(status.to_value(), status.as_str());
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(Status::iter().count(), Status::ALL.len());
        let err = "done".parse::<Status>().unwrap_err().to_string();
        assert!(err.contains("pending, running"), "{err}");
    }

    #[test]
    fn final_statuses() {
        let finals: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(
            finals,
            [
                Status::Success,
                Status::Failed,
                Status::Timeout,
                Status::Cancelled
            ]
        );
    }
}

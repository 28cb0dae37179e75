//! Execution retention: deletes `executions` rows older than
//! `RUNEFLOW_RETENTION_DAYS` (default 30; 0 keeps them forever), so the
//! table stays bounded.
//!
//! Deletes go in batches of [`BATCH`] rows, one short statement each, so no
//! statement holds many locks or a long transaction. Each batch takes its
//! rows with `FOR UPDATE SKIP LOCKED`, so several API processes running it
//! at once take disjoint rows and never wait for each other. Ids are
//! UUIDv7 (time-ordered, made when the row is queued), so "older than the
//! cutoff" is first a primary-key range (`id < cutoff's smallest v7 id`:
//! a batch is one index range scan, and a pass with nothing to delete reads
//! nothing); `queued_at` is checked too, so a row whose id is not a v7 is
//! never deleted early.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// Rows deleted per statement.
pub const BATCH: u64 = 1000;
/// How often a pass runs (the first one shortly after start).
pub const EVERY: Duration = Duration::from_secs(3600);
const FIRST_AFTER: Duration = Duration::from_secs(30);

const DELETE_SQL: &str = "DELETE FROM executions WHERE id IN (
    SELECT id FROM executions
    WHERE id < $1 AND queued_at < $2
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED)";

/// The smallest UUIDv7 of `at`'s millisecond: every v7 id made before `at`
/// sorts below it.
fn smallest_v7(at: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// Deletes every execution queued before `cutoff`, [`BATCH`] rows per
/// statement; returns how many rows it deleted.
pub async fn delete_before(db: &DatabaseConnection, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let first_kept = smallest_v7(cutoff);
    let mut deleted = 0;
    loop {
        let done = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                DELETE_SQL,
                [
                    first_kept.into(),
                    cutoff.fixed_offset().into(),
                    i64::try_from(BATCH).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?
            .rows_affected();
        deleted += done;
        if done < BATCH {
            return Ok(deleted);
        }
    }
}

/// One pass with a retention of `days` (0: nothing is deleted).
pub async fn run_once(db: &DatabaseConnection, days: u32) -> Result<u64, DbErr> {
    if days == 0 {
        return Ok(0);
    }
    delete_before(db, Utc::now() - chrono::Duration::days(i64::from(days))).await
}

/// Runs a pass shortly after start and then every [`EVERY`] until `stop`.
pub async fn run(db: DatabaseConnection, days: u32, stop: impl Future<Output = ()>) {
    if days == 0 {
        return;
    }
    tokio::pin!(stop);
    let mut wait = FIRST_AFTER;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = EVERY;
        match run_once(&db, days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(executions = n, days, "deleted executions past retention"),
            Err(err) => tracing::warn!(%err, "deleting old executions failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_v7_sorts_below_every_later_id() {
        let at = Utc::now() - chrono::Duration::days(30);
        let bound = smallest_v7(at);
        assert_eq!(bound.get_version_num(), 7);
        let later = Uuid::now_v7();
        assert!(later > bound);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(at.timestamp() - 1).unwrap(),
            0,
        );
        assert!(Uuid::new_v7(ts) < bound);
    }
}

//! Execution retention: deletes `executions` rows older than
//! `RUNEFLOW_RETENTION_DAYS` (default 30; 0 keeps them forever), so the
//! table stays bounded; and purges idempotency keys past their 24 h window.
//!
//! Deletes go in batches of [`BATCH`] rows, one short statement each
//! (`statements::delete_batch_queued_before`), so no statement holds many
//! locks or a long transaction, and API processes running it at once take
//! disjoint rows and never wait for each other.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use runeflow_shared::executions::{idempotency, statements};
use sea_orm::{DatabaseConnection, DbErr};

/// Rows deleted per statement.
pub const BATCH: u64 = 1000;
/// How often a pass runs (the first one shortly after start).
pub const EVERY: Duration = Duration::from_secs(3600);
const FIRST_AFTER: Duration = Duration::from_secs(30);

/// Deletes every execution queued before `cutoff`, [`BATCH`] rows per
/// statement; returns how many rows it deleted.
pub async fn delete_before(db: &DatabaseConnection, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let mut deleted = 0;
    loop {
        let done = statements::delete_batch_queued_before(db, cutoff, BATCH).await?;
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
/// Idempotency keys past their 24 h window are purged on every pass, even
/// when executions are kept forever (they are ignored once expired anyway).
pub async fn run(db: DatabaseConnection, days: u32, stop: impl Future<Output = ()>) {
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
        match idempotency::purge_expired(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "purged expired idempotency keys"),
            Err(err) => tracing::warn!(%err, "purging idempotency keys failed"),
        }
    }
}

//! Re-pushing executions left `pending`: the API commits the row, then
//! pushes the job, and the push can fail in between (Redis down, process
//! killed). A re-push of a job still queued is a no-op (the execution id is
//! its idempotency key), so this is safe to run from every API replica.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use runeflow_shared::executions::statements;
use sea_orm::DatabaseConnection;

use crate::queue::Enqueue;

/// How old a pending execution must be before it is pushed again.
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// How often to look.
pub const EVERY: Duration = Duration::from_secs(15);

/// Runs until `stop` resolves.
pub async fn run(db: DatabaseConnection, enqueue: Enqueue, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match repush_stale(&db, &enqueue, STALE_AFTER).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(executions = n, "re-pushed stale pending executions"),
            Err(err) => tracing::warn!(%err, "reconciling pending executions failed"),
        }
    }
}

/// Pushes again every execution pending for longer than `age`; returns how
/// many it pushed.
pub async fn repush_stale(
    db: &DatabaseConnection,
    enqueue: &Enqueue,
    age: Duration,
) -> Result<usize, String> {
    let cutoff = Utc::now() - chrono::Duration::from_std(age).unwrap_or_default();
    // A running row whose job Redis lost (data loss while it ran) is
    // pushed again too; while its job still exists the push is a no-op
    // (same task id and idempotency key).
    let rows = statements::stale(db, cutoff, 1000)
        .await
        .map_err(|e| e.to_string())?;
    for row in &rows {
        enqueue.repush(row).await.map_err(|e| e.to_string())?;
    }
    Ok(rows.len())
}

//! Cancels reaching the runs of this worker process.
//!
//! The API marks the row `cancelled` (final at once, so `wait`ing clients
//! return) and publishes the id on the cancel channel; every worker listens
//! and trips the cancel switch of that run if it runs here (see
//! `running.rs`), which kills the child and all its descendants. A message
//! lost while the subscription reconnects is caught by a check of the
//! running ids against PostgreSQL every [`RECHECK`].

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use runeflow_shared::executions::statements;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::running::Running;

/// How often the running ids are checked against PostgreSQL: the bound on
/// a cancel's delay when its message was lost.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Listens for cancels (reconnecting with backoff) and rechecks the
/// running ids every [`RECHECK`], until `stop` resolves.
pub fn listen(
    redis_url: String,
    channel: String,
    db: DatabaseConnection,
    running: Running,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = stop => {}
            never = subscription(&redis_url, &channel, &db, &running) => match never {},
            never = recheck(&db, &running) => match never {},
        }
    })
}

async fn subscription(
    redis_url: &str,
    channel: &str,
    db: &DatabaseConnection,
    running: &Running,
) -> std::convert::Infallible {
    let mut backoff = Duration::from_millis(100);
    loop {
        match subscribe(redis_url, channel, db, running).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => tracing::warn!(%err, "cancel subscription failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn recheck(db: &DatabaseConnection, running: &Running) -> std::convert::Infallible {
    let mut tick = tokio::time::interval(RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids = running.ids();
        if ids.is_empty() {
            continue;
        }
        match statements::cancelled_among(db, &ids).await {
            Ok(cancelled) => {
                for id in cancelled {
                    if running.cancel(id) {
                        tracing::info!(execution = %id, "cancelled (found by the recheck)");
                    }
                }
            }
            Err(err) => tracing::debug!(%err, "cancel recheck failed"),
        }
    }
}

async fn subscribe(
    url: &str,
    channel: &str,
    db: &DatabaseConnection,
    running: &Running,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        // Anyone with Redis access can publish here: a payload that is not
        // an id is ignored, and an id only cancels a run the row says is
        // cancelled (the API writes the row before it publishes).
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        let Ok(id) = Uuid::parse_str(payload.trim()) else {
            continue;
        };
        if !running.ids().contains(&id) {
            continue;
        }
        match statements::cancelled_among(db, &[id]).await {
            Ok(cancelled) if cancelled.contains(&id) => {
                tracing::info!(execution = %id, "cancel received");
                running.cancel(id);
            }
            Ok(_) => {
                tracing::warn!(execution = %id, "a cancel for a row that is not cancelled; ignored")
            }
            // The recheck tries again within a second.
            Err(err) => tracing::debug!(%err, execution = %id, "could not check a cancel"),
        }
    }
    Ok(())
}

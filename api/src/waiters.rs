//! Waking `wait` requests when an execution finishes, from Redis pub/sub
//! (workers publish a notice per finished execution, see
//! `runeflow_shared::finished_notice`), instead of polling PostgreSQL in a
//! loop.

use std::time::Duration;

use std::sync::Arc;

use futures::StreamExt;
use runeflow_shared::finished_notice::{self, FinishedNotice};
use tokio::sync::broadcast;

/// What a waiter receives: a notice, or `None` for "messages may have been
/// missed" (the subscription reconnected): waiters re-check PostgreSQL.
pub type Wakeup = Option<Arc<FinishedNotice>>;

/// Fan-out of finished-execution notices to in-process waiters.
#[derive(Clone)]
pub struct Waiters {
    tx: broadcast::Sender<Wakeup>,
}

impl Waiters {
    /// Starts the subscriber task on `redis_url`'s channel `channel`.
    pub fn spawn(redis_url: String, channel: String) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let waiters = Waiters { tx: tx.clone() };
        tokio::spawn(subscribe_forever(redis_url, channel, tx));
        waiters
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Wakeup> {
        self.tx.subscribe()
    }
}

async fn subscribe_forever(url: String, channel: String, tx: broadcast::Sender<Wakeup>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(&url, &channel, &tx).await {
            Ok(()) => tracing::warn!("execution pub/sub closed; resubscribing"),
            Err(err) => tracing::warn!(%err, "execution pub/sub failed; resubscribing"),
        }
        let _ = tx.send(None);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen(
    url: &str,
    channel: &str,
    tx: &broadcast::Sender<Wakeup>,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Anything finished while we were not subscribed is found by re-checking.
    let _ = tx.send(None);
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let payload: String = match msg.get_payload() {
            Ok(p) => p,
            Err(_) => continue,
        };
        if let Some(notice) = finished_notice::decode(&payload) {
            let _ = tx.send(Some(Arc::new(notice)));
        }
    }
    Ok(())
}

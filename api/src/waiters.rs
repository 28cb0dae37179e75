//! Waking `wait` requests when an execution finishes, from Redis pub/sub
//! (workers publish each finished execution id), instead of polling
//! PostgreSQL in a loop.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Fan-out of finished execution ids to in-process waiters. `None` means
/// "messages may have been missed" (the subscription reconnected): waiters
/// re-check PostgreSQL.
#[derive(Clone)]
pub struct Waiters {
    tx: broadcast::Sender<Option<Uuid>>,
}

impl Waiters {
    /// Starts the subscriber task on `redis_url`'s channel `channel`.
    pub fn spawn(redis_url: String, channel: String) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let waiters = Waiters { tx: tx.clone() };
        tokio::spawn(subscribe_forever(redis_url, channel, tx));
        waiters
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Option<Uuid>> {
        self.tx.subscribe()
    }
}

async fn subscribe_forever(url: String, channel: String, tx: broadcast::Sender<Option<Uuid>>) {
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
    tx: &broadcast::Sender<Option<Uuid>>,
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
        if let Ok(id) = payload.parse::<Uuid>() {
            let _ = tx.send(Some(id));
        }
    }
    Ok(())
}

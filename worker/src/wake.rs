//! Waking idle workers on push instead of waiting for the next poll: one
//! Redis subscription per process, fanned out to each (re)started apalis
//! worker as a stream.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

/// Subscribes to `channel` for as long as the process runs (reconnecting
/// with backoff) and returns the sender wake-ups are fanned out from.
pub fn subscribe(redis_url: String, channel: String) -> broadcast::Sender<()> {
    let (tx, _) = broadcast::channel(64);
    let fanout = tx.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen(&redis_url, &channel, &fanout).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(err) => tracing::warn!(%err, "wake-up subscription failed; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    tx
}

async fn listen(url: &str, channel: &str, tx: &broadcast::Sender<()>) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while messages.next().await.is_some() {
        let _ = tx.send(());
    }
    Ok(())
}

/// A stream of wake-ups for one apalis worker run. Lagging (many pushes at
/// once) still yields a wake-up; apalis fetches a batch each time.
pub fn stream(rx: broadcast::Receiver<()>) -> impl Stream<Item = ()> + Send + Unpin + 'static {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }))
}

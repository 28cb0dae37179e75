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

/// A stream of wake-ups for one apalis worker run: one item for all the
/// wake-ups that arrived since it was last polled.
///
/// apalis 1.0 takes one item each time it polls its backend and only then
/// asks for the next, so a backlog would keep this stream ready at every
/// poll: it would then never register apalis's waker, and the worker would
/// fall back to its poll interval for good (seen: one of two workers
/// ignoring every push after its first second, jobs waiting up to the
/// 500 ms poll). Draining the backlog makes the next poll pend and arm the
/// waker again.
pub fn stream(rx: broadcast::Receiver<()>) -> impl Stream<Item = ()> + Send + Unpin + 'static {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                drain(&mut rx);
                Some(((), rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }))
}

/// Drops every wake-up already queued (they all mean "fetch now").
fn drain(rx: &mut broadcast::Receiver<()>) {
    use broadcast::error::TryRecvError;
    loop {
        match rx.try_recv() {
            Ok(()) | Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn a_backlog_of_wake_ups_is_one_item() {
        let (tx, rx) = broadcast::channel(4);
        let mut wakes = stream(rx);
        for _ in 0..10 {
            let _ = tx.send(()); // more than the channel holds: lagged
        }
        assert_eq!(wakes.next().now_or_never(), Some(Some(())));
        // Nothing left: the stream pends (and so registers the waker).
        assert_eq!(wakes.next().now_or_never(), None);
        tx.send(()).unwrap();
        assert_eq!(wakes.next().await, Some(()));
        drop(tx);
        assert_eq!(wakes.next().await, None);
    }
}

//! Waking idle workers on push instead of waiting for the next poll: one
//! Redis subscription per process, fanned out to each (re)started apalis
//! worker as a stream, and a queue connection ([`fetch`]) that makes sure
//! a wake-up arriving during a fetch is answered by a fetch sent after it.

mod fetch;

use std::sync::Arc;
use std::time::Duration;

use crate::incoming::{Incoming, Lenient};
use apalis::prelude::BackendExt;
use apalis_core::backend::ext::with_codec::WithCodec;
use apalis_redis::RedisStorage;
use futures::{Stream, StreamExt};
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use fetch::FetchWatch;
pub use fetch::{FetchCounts, WatchedConn, fetch_counts};

/// The executions queue as a worker consumes it: on the watched
/// connection, decoded leniently (see `incoming.rs`).
pub type Queue = WithCodec<RedisStorage<Incoming, WatchedConn>, Lenient>;

/// The wake-ups of one worker process (cheap to clone).
#[derive(Clone)]
pub struct WakeUps {
    tx: broadcast::Sender<()>,
    watch: Arc<FetchWatch>,
}

/// Subscribes to `channel` for as long as the process runs (reconnecting
/// with backoff).
pub fn subscribe(redis_url: String, channel: String) -> WakeUps {
    let (tx, _) = broadcast::channel(64);
    let wake_ups = WakeUps {
        tx,
        watch: Arc::default(),
    };
    let fanout = wake_ups.clone();
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
    wake_ups
}

async fn listen(url: &str, channel: &str, wake_ups: &WakeUps) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        // The payload is the execution id, which is also the job's id.
        let id: String = message.get_payload().unwrap_or_default();
        wake_ups.watch.received(&id);
        let _ = wake_ups.tx.send(());
    }
    Ok(())
}

impl WakeUps {
    /// The queue storage of this process's apalis workers, on a connection
    /// that watches their fetches (see [`fetch`]).
    pub fn storage(&self, conn: ConnectionManager, config: apalis_redis::Config) -> Queue {
        let conn = WatchedConn::new(conn, self.watch.clone(), &config);
        RedisStorage::new(conn)
            .with_config(config)
            .with_codec(Lenient)
    }

    /// The wake-up stream for one apalis worker run (see [`stream`]).
    pub fn stream(&self) -> impl Stream<Item = ()> + Send + Unpin + use<> {
        let watch = self.watch.clone();
        stream(self.tx.subscribe()).map(move |()| watch.stream_fired())
    }
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

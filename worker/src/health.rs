//! Worker liveness for container healthchecks.
//!
//! apalis emits a heartbeat event each time the consumer loop has written
//! its heartbeat to Redis; the loop only does so while it is being driven
//! (fetching, or waiting with every slot busy). So "a heartbeat recently"
//! means: this process is alive, reaches Redis and its consumer is not
//! stuck. The worker records the time of the last one ([`Liveness`]) and,
//! when `RUNEFLOW_HEALTH_FILE` is set, writes it to that file;
//! `runeflow worker-health` reads the file ([`check`]) and fails once the
//! heartbeat is older than the bound written next to it.
//!
//! The file holds one line, `last=<unix seconds> max_age=<seconds>`, and is
//! replaced atomically (written aside, then renamed).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds of the last consumer heartbeat (0: none yet).
#[derive(Clone, Default)]
pub struct Liveness(Arc<AtomicU64>);

impl Liveness {
    /// Records a heartbeat now.
    pub fn beat(&self) {
        self.0.store(unix_now(), Ordering::Relaxed);
    }

    pub fn last(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How old the last heartbeat may be before the worker counts as unhealthy:
/// as long as other workers wait before reclaiming its jobs, and never less
/// than 10 s (a consumer loop restarting after a Redis blip).
pub fn max_age(heartbeat: Duration, missed: usize) -> Duration {
    (heartbeat * missed.max(1) as u32).max(Duration::from_secs(10))
}

/// Writes the liveness to `path` every `every` while it changes, until
/// `stop` resolves. Write errors are logged once per kind, not fatal.
pub async fn publish(
    path: PathBuf,
    liveness: Liveness,
    max_age: Duration,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut written = 0;
    let mut failing = false;
    loop {
        let last = liveness.last();
        if last != written {
            match write(&path, last, max_age).await {
                Ok(()) => {
                    written = last;
                    failing = false;
                }
                Err(err) if !failing => {
                    tracing::warn!(%err, path = %path.display(), "cannot write the health file");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn write(path: &Path, last: u64, max_age: Duration) -> std::io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".tmp");
    let line = format!("last={last} max_age={}\n", max_age.as_secs());
    tokio::fs::write(&aside, line).await?;
    tokio::fs::rename(&aside, path).await
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot read the health file {path}: {source} (has the worker started?)")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the health file {path} is not of the form 'last=<secs> max_age=<secs>'")]
    Malformed { path: String },
    #[error("the worker's last heartbeat was {age} s ago (more than {max_age} s)")]
    Stale { age: u64, max_age: u64 },
}

/// Reads the health file and answers the age of the last heartbeat, or why
/// the worker is not healthy.
pub fn check(path: &Path) -> Result<Duration, HealthError> {
    let text = std::fs::read_to_string(path).map_err(|source| HealthError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    let malformed = || HealthError::Malformed {
        path: path.display().to_string(),
    };
    let (last, max_age) = parse(&text).ok_or_else(malformed)?;
    let age = unix_now().saturating_sub(last);
    if age > max_age {
        return Err(HealthError::Stale { age, max_age });
    }
    Ok(Duration::from_secs(age))
}

fn parse(text: &str) -> Option<(u64, u64)> {
    let mut last = None;
    let mut max_age = None;
    for field in text.split_whitespace() {
        match field.split_once('=')? {
            ("last", v) => last = v.parse().ok(),
            ("max_age", v) => max_age = v.parse().ok(),
            _ => {}
        }
    }
    Some((last.filter(|l| *l > 0)?, max_age?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("runeflow-health-{}-{name}", std::process::id()))
    }

    #[tokio::test]
    async fn a_recent_heartbeat_is_healthy_and_an_old_one_is_not() {
        let path = temp_file("ages");
        let liveness = Liveness::default();
        liveness.beat();
        write(&path, liveness.last(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(check(&path).unwrap() <= Duration::from_secs(1));

        write(&path, unix_now() - 60, Duration::from_secs(10))
            .await
            .unwrap();
        let err = check(&path).unwrap_err();
        assert!(
            matches!(err, HealthError::Stale { max_age: 10, .. }),
            "{err}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_missing_or_malformed_file_is_unhealthy() {
        let path = temp_file("missing");
        assert!(matches!(check(&path), Err(HealthError::Unreadable { .. })));
        std::fs::write(&path, "last=0 max_age=10\n").unwrap();
        assert!(matches!(check(&path), Err(HealthError::Malformed { .. })));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(check(&path), Err(HealthError::Malformed { .. })));
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn publish_writes_only_after_a_heartbeat() {
        let path = temp_file("publish");
        let liveness = Liveness::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(publish(
            path.clone(),
            liveness.clone(),
            Duration::from_secs(10),
            Duration::from_millis(10),
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !path.exists(),
            "nothing to publish before the first heartbeat"
        );
        liveness.beat();
        for _ in 0..200 {
            if check(&path).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(check(&path).is_ok());
        stop_tx.send(()).unwrap();
        task.await.unwrap();
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn max_age_follows_the_reclaim_delay_with_a_floor() {
        assert_eq!(max_age(Duration::from_secs(1), 5), Duration::from_secs(10));
        assert_eq!(max_age(Duration::from_secs(4), 5), Duration::from_secs(20));
    }
}

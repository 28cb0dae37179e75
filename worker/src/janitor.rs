//! Trimming apalis's records. apalis-redis 1.0 never deletes finished or
//! dead task records (done, killed, and failed after its 25 attempts), and its own `vacuum()` also deletes tasks waiting for
//! a retry (which then crash the worker that fetches them). PostgreSQL keeps
//! every execution's outcome, so Redis only needs a task until it is done.

use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis_redis::Config;
use redis::Script;
use redis::aio::ConnectionManager;

/// How long a finished task's record is kept (for apalis tooling).
pub const RETENTION: Duration = Duration::from_secs(3600);
/// How often the janitor runs.
pub const EVERY: Duration = Duration::from_secs(60);
/// Worker names silent this long are forgotten.
pub const STALE_WORKER: Duration = Duration::from_secs(24 * 3600);
const BATCH: usize = 500;

/// KEYS: done set, dead set, data hash, workers zset, scheduled zset.
/// ARGV: meta key prefix,
/// finished-before cutoff (unix seconds), batch size, stale-worker cutoff,
/// worker-metadata prefix, inflight prefix. Deletes the data and meta of
/// tasks in the done/dead sets whose `done_at` is older than the cutoff:
/// `Done` and `Killed`, and `Failed` in the dead set (apalis's retries are
/// exhausted) unless it is scheduled for a retry. A task waiting for a
/// retry is never touched,
/// and forgets workers whose last heartbeat is older than the stale cutoff
/// and that hold nothing in flight. Returns tasks removed.
static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local removed = 0
for _, set in ipairs({KEYS[1], KEYS[2]}) do
  local ids = redis.call('SRANDMEMBER', set, tonumber(ARGV[3]))
  for _, id in ipairs(ids) do
    local meta = ARGV[1] .. id
    local status = redis.call('HGET', meta, 'status')
    local done_at = tonumber(redis.call('HGET', meta, 'done_at') or '0') or 0
    local final = status == 'Done' or status == 'Killed' or status == false
    -- Failed and in the dead set: out of retries. Never one scheduled for
    -- a retry (a Failed record elsewhere may still be retried).
    if status == 'Failed' and set == KEYS[2] and not redis.call('ZSCORE', KEYS[5], id) then
      final = true
    end
    if final and done_at <= tonumber(ARGV[2]) then
      redis.call('HDEL', KEYS[3], id)
      redis.call('DEL', meta)
      redis.call('SREM', set, id)
      removed = removed + 1
    end
  end
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[4])
for _, name in ipairs(stale) do
  if redis.call('SCARD', ARGV[6] .. name) == 0 then
    redis.call('ZREM', KEYS[4], name)
    redis.call('DEL', ARGV[5] .. name)
  end
end
return removed
"#,
    )
});

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One pass; returns how many task records it removed.
pub async fn trim_once(
    conn: &mut ConnectionManager,
    config: &Config,
    retention: Duration,
) -> redis::RedisResult<u64> {
    let now = unix_now();
    let mut inv = TRIM.prepare_invoke();
    inv.key(config.done_jobs_set())
        .key(config.dead_jobs_set())
        .key(config.job_data_hash())
        .key(config.workers_set())
        .key(config.scheduled_jobs_set())
        .arg(format!("{}:", config.job_meta_hash()))
        .arg(now.saturating_sub(retention.as_secs()))
        .arg(BATCH)
        .arg(now.saturating_sub(STALE_WORKER.as_secs()))
        .arg(format!("{}:metadata:", config.workers_set()))
        .arg(format!("{}:", config.inflight_jobs_set()));
    inv.invoke_async(conn).await
}

/// Runs [`trim_once`] every [`EVERY`] until `stop` resolves.
pub async fn run(mut conn: ConnectionManager, config: Config, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        match trim_once(&mut conn, &config, RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "trimmed finished task records"),
            Err(err) => tracing::warn!(%err, "trimming task records failed"),
        }
    }
}

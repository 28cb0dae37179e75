//! The worker process: warm the zygote, then consume the executions queue
//! with apalis until the shutdown signal, draining running executions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BackendExt, Monitor, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::Config;
use redis::aio::ConnectionManager;
use runeflow_shared::jobs::{queue_name, wake_channel};
use runeflow_shared::protocol::Rlimits;
use runeflow_shared::store::ModuleStore;
use sea_orm::DatabaseConnection;

use crate::child_users::{ChildUsers, ChildUsersError, ChildUsersMode, UidRange, cannot_switch};
use crate::compiler::Compiler;
use crate::config::WorkerConfig;
use crate::execution::Limits;
use crate::index::IndexMirror;
use crate::job::{JobContext, handle};
use crate::modules::Sources;
use crate::prefetch::Prefetcher;
use crate::running::Running;
use crate::zygote::{ZygoteConfig, ZygoteError, Zygotes, child_environment};

/// How long an execution id stays deduplicated in the queue.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum WorkerRunError {
    #[error("the Python zygote cannot start: {0}")]
    Zygote(#[from] ZygoteError),
    #[error(transparent)]
    ChildUsers(#[from] ChildUsersError),
    #[error("worker stopped: {0}")]
    Monitor(String),
}

/// Connections a worker runs on.
pub struct WorkerDeps {
    pub db: DatabaseConnection,
    pub redis: ConnectionManager,
    /// For the wake-up subscription (a connection of its own).
    pub redis_url: String,
    pub prefix: String,
}

/// The apalis-redis configuration for our queue: unique worker name per
/// process, heartbeat and orphan reclaim from config, a fetch batch no
/// larger than the concurrency, deduplication kept for a week.
pub fn queue_config(prefix: &str, config: &WorkerConfig) -> Config {
    Config::default()
        .queue(queue_name(prefix))
        .batch_size(config.concurrency.max(1))
        .heartbeat_interval(Duration::from_millis(config.heartbeat_ms.max(100)))
        .missed_heartbeats(config.missed_heartbeats.max(1))
        .idempotency_ttl(Some(IDEMPOTENCY_TTL))
}

/// Builds the shared job context (starts the zygote).
pub async fn context(
    deps: &WorkerDeps,
    config: &WorkerConfig,
    name: &str,
) -> Result<Arc<JobContext>, WorkerRunError> {
    let store = ModuleStore::new(deps.redis.clone(), &deps.prefix);
    let python = ZygoteConfig {
        python: config.python.clone(),
        preload: config.preload.clone(),
        child_env: config.child_env.clone(),
        virtual_root: config.virtual_root.clone(),
    };
    let prefetcher = Prefetcher::new(
        Compiler::new(ZygoteConfig {
            preload: Vec::new(),
            ..python.clone()
        }),
        &config.virtual_root,
    );
    let users = child_users(config)?;
    if let Some(users) = &users {
        users.check_interpreter(&config.python, &child_environment(&config.child_env))?;
    }
    let zygotes = Zygotes::new(python);
    zygotes.warm_up().await?;
    prefetcher.warm_up().await;
    let mb = |v: u64| (v > 0).then(|| v * 1024 * 1024);
    let some = |v: u64| (v > 0).then_some(v);
    Ok(Arc::new(JobContext {
        db: deps.db.clone(),
        redis: deps.redis.clone(),
        prefix: deps.prefix.clone(),
        worker_name: name.to_owned(),
        mirror: IndexMirror::new(store.clone(), deps.db.clone()),
        sources: Arc::new(Sources::new(store, deps.db.clone())),
        zygotes,
        prefetcher,
        running: Running::default(),
        limits: Limits {
            rlimits: Rlimits {
                as_bytes: mb(config.memory_limit_mb),
                cpu_seconds: some(config.cpu_limit_secs),
                // Counted per real uid: only meaningful with a uid per slot.
                processes: users.as_ref().and_then(|_| some(config.max_processes)),
                open_files: some(config.max_open_files),
                file_size_bytes: mb(config.max_file_size_mb),
            },
            max_log_bytes: config.max_log_bytes,
            max_frame_bytes: config.max_frame_bytes,
            max_result_bytes: config.max_result_bytes.min(config.max_frame_bytes),
            virtual_root: config.virtual_root.clone(),
        },
        default_timeout: config.default_timeout(),
        max_attempts: config.max_attempts,
        users,
    }))
}

/// The uids this worker's children run under, per `RUNEFLOW_CHILD_USERS`;
/// `None` when children run as the worker's own user (said once here).
fn child_users(config: &WorkerConfig) -> Result<Option<Arc<ChildUsers>>, ChildUsersError> {
    let why_not = match config.child_users {
        ChildUsersMode::Off => return Ok(None),
        mode => match cannot_switch() {
            None => None,
            Some(why) if mode == ChildUsersMode::Required => {
                return Err(ChildUsersError::CannotSwitch(why));
            }
            Some(why) => Some(why),
        },
    };
    if let Some(why) = why_not {
        tracing::warn!(
            "children run as this worker's own user ({why}): user code can signal the worker and other executions; run the worker as root with CAP_SETUID, CAP_SETGID and CAP_KILL for a uid per slot"
        );
        return Ok(None);
    }
    let range: UidRange = config.child_uid_range.parse()?;
    let users = ChildUsers::claim(range, config.concurrency.max(1))?;
    tracing::info!(uids = ?users.uids(), "children run under a uid of their own per slot");
    Ok(Some(users))
}

/// Runs until `shutdown` resolves; then stops fetching and gives running
/// executions up to `drain_secs` to finish. A worker loop that fails (Redis
/// restarted, timeouts) is rebuilt under a new name by the monitor.
pub async fn run(
    deps: WorkerDeps,
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerRunError> {
    let base_name = config.resolve_name();
    let ctx = context(&deps, &config, &base_name).await?;
    let queue = queue_config(&deps.prefix, &config);
    let wakeups = crate::wake::subscribe(deps.redis_url.clone(), wake_channel(&deps.prefix));
    let storage = wakeups.storage(deps.redis.clone(), queue.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let janitor = tokio::spawn(crate::janitor::run(deps.redis.clone(), queue, stopped()));
    let poll = Duration::from_millis(config.poll_ms.max(1));
    let concurrency = config.concurrency.max(1);
    tracing::info!(worker = %base_name, concurrency, poll_ms = config.poll_ms, "worker starting");
    let monitor = Monitor::new()
        .register(move |run| {
            let name = if run == 0 {
                base_name.clone()
            } else {
                format!("{base_name}-r{run}")
            };
            WorkerBuilder::new(name)
                .backend(
                    storage
                        .clone()
                        .poll_with_interval(poll)
                        .poll_with_stream(wakeups.stream()),
                )
                .concurrency(concurrency)
                .data(ctx.clone())
                .build(handle)
        })
        .should_restart(|_ctx, err| {
            tracing::warn!(%err, "worker loop failed; restarting it");
            true
        })
        .shutdown_timeout(Duration::from_secs(config.drain_secs));
    let result = monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| WorkerRunError::Monitor(e.to_string()));
    let _ = stop_tx.send(true);
    let _ = janitor.await;
    result
}

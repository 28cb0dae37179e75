//! The worker process: warm the zygote, then consume the executions queue
//! with apalis until the shutdown signal, draining running executions
//! without letting another worker start them again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis_redis::Config;
use redis::aio::ConnectionManager;
use runeflow_queue::{Enqueue, JobQueue};
use runeflow_shared::jobs::{cancel_channel, wake_channel};
use runeflow_shared::protocol::Rlimits;
use runeflow_shared::shutdown::Shutdown;
use runeflow_shared::store::ModuleStore;
use sea_orm::DatabaseConnection;

use crate::child_users::{ChildUsers, ChildUsersError, ChildUsersMode, UidRange, cannot_switch};
use crate::compiler::Compiler;
use crate::config::WorkerConfig;
use crate::config_reads::ConfigReader;
use crate::consume::{Consumer, Phase};
use crate::drain::{self, WorkerNames};
use crate::execution::Limits;
use crate::health::{self, Liveness};
use crate::index::IndexMirror;
use crate::job::JobContext;
use crate::modules::Sources;
use crate::prefetch::Prefetcher;
use crate::running::Running;
use crate::zygote::{ZygoteConfig, ZygoteError, Zygotes, child_environment};
use runeflow_shared::secrets::SecretKey;

#[derive(Debug, thiserror::Error)]
pub enum WorkerRunError {
    #[error("the Python zygote cannot start: {0}")]
    Zygote(#[from] ZygoteError),
    #[error(transparent)]
    ChildUsers(#[from] ChildUsersError),
    #[error(
        "RUNEFLOW_CHILD_ENV names {0}, one of Runeflow's own secrets: workflow processes never get it"
    )]
    SecretInChildEnv(String),
}

/// Variables RUNEFLOW_CHILD_ENV may not pass to workflow processes.
const NEVER_TO_CHILDREN: &[&str] = &[
    "RUNEFLOW_SECRET_KEY",
    "RUNEFLOW_NEW_SECRET_KEY",
    "RUNEFLOW_API_TOKEN",
    "RUNEFLOW_GIT_TOKEN",
    "DATABASE_URL",
    "REDIS_URL",
];

/// Connections a worker runs on.
pub struct WorkerDeps {
    pub db: DatabaseConnection,
    pub redis: ConnectionManager,
    /// For the wake-up subscription (a connection of its own).
    pub redis_url: String,
    pub prefix: String,
    /// Opens the secrets workflows read (RUNEFLOW_SECRET_KEY), if given.
    pub secret_key: Option<SecretKey>,
}

/// The queue as this worker consumes it (`runeflow_queue::config`): a fetch
/// batch no larger than the concurrency, heartbeat and orphan reclaim from
/// config.
pub fn queue_config(prefix: &str, config: &WorkerConfig) -> Config {
    runeflow_queue::config::consumer(
        prefix,
        runeflow_queue::config::ConsumerTimings {
            batch_size: config.concurrency,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            missed_heartbeats: config.missed_heartbeats,
        },
    )
}

/// Builds the shared job context (starts the zygote).
pub async fn context(
    deps: &WorkerDeps,
    config: &WorkerConfig,
    name: &str,
) -> Result<Arc<JobContext>, WorkerRunError> {
    if let Some(name) = config
        .child_env
        .iter()
        .find(|name| NEVER_TO_CHILDREN.contains(&name.as_str()))
    {
        return Err(WorkerRunError::SecretInChildEnv(name.clone()));
    }
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
        config.code_cache_mb.saturating_mul(1024 * 1024),
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
        sources: Arc::new(Sources::new(
            store,
            deps.db.clone(),
            config.source_cache_mb.saturating_mul(1024 * 1024),
        )),
        zygotes,
        prefetcher,
        running: Running::default(),
        enqueue: Enqueue::new(
            deps.db.clone(),
            JobQueue::new(deps.redis.clone(), &deps.prefix),
        ),
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
            max_result_memory: config.max_result_memory_mb.saturating_mul(1024 * 1024),
            virtual_root: config.virtual_root.clone(),
        },
        default_timeout: config.default_timeout(),
        max_attempts: config.max_attempts,
        users,
        config: ConfigReader::new(deps.db.clone(), deps.secret_key.clone()),
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

/// How long a stopping worker waits for its consumer loop to acknowledge
/// the jobs whose runs ended, after the drain.
const ACK_GRACE: Duration = Duration::from_secs(3);

/// Runs until `shutdown` resolves; then fetches nothing more and keeps the
/// running executions' heartbeat until they end, up to `drain_secs` (see
/// `drain.rs`). A consumer loop that fails (Redis restarted or gone) is
/// rebuilt under a new name, with backoff (see `consume.rs`).
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
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(Phase::Consuming);
    // The janitor and the health file stop once the drain is over.
    let tasks = Shutdown::new();
    let heartbeat = Duration::from_millis(config.heartbeat_ms.max(100));
    let cancels = crate::cancel::listen(
        deps.redis_url.clone(),
        cancel_channel(&deps.prefix),
        deps.db.clone(),
        ctx.running.clone(),
        tasks.stopped(),
    );
    let janitor = tokio::spawn(crate::janitor::run(
        deps.redis.clone(),
        queue.clone(),
        tasks.stopped(),
    ));
    let liveness = Liveness::default();
    let health = config.health_file.clone().map(|path| {
        let max_age = health::max_age(heartbeat, config.missed_heartbeats);
        tokio::spawn(health::publish(
            path,
            liveness.clone(),
            max_age,
            heartbeat,
            tasks.stopped(),
        ))
    });
    let names = WorkerNames::default();
    let concurrency = config.concurrency.max(1);
    tracing::info!(worker = %base_name, concurrency, poll_ms = config.poll_ms, "worker starting");
    let consumer = Consumer {
        base_name,
        storage,
        poll: Duration::from_millis(config.poll_ms.max(1)),
        wakeups,
        concurrency,
        ctx: ctx.clone(),
        liveness,
        names: names.clone(),
    };
    let mut consumer = tokio::spawn(consumer.run(phase_rx));

    shutdown.await;
    let _ = phase_tx.send(Phase::Draining);
    let running = ctx.running.len();
    if running > 0 {
        tracing::info!(
            running,
            drain_secs = config.drain_secs,
            "draining: fetching nothing more; waiting for the running executions"
        );
    }
    let drained = drain::hold_until_done(
        &ctx.running,
        drain::Heartbeat {
            conn: deps.redis.clone(),
            workers_set: queue.workers_set(),
            names,
            every: heartbeat,
        },
        tokio::time::Instant::now() + Duration::from_secs(config.drain_secs),
    )
    .await;
    if let drain::Drained::DeadlinePassed { running } = drained {
        tracing::warn!(
            running,
            "drain deadline passed: the executions still running are stopped with this process and run again elsewhere"
        );
    }
    if tokio::time::timeout(ACK_GRACE, &mut consumer)
        .await
        .is_err()
    {
        consumer.abort();
    }
    tasks.trigger();
    let _ = janitor.await;
    let _ = cancels.await;
    if let Some(health) = health {
        let _ = health.await;
    }
    Ok(())
}

//! Handling one `RunWorkflow` job: record the start, pin the workspace
//! version, run the child, record the outcome once, announce it.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use redis::aio::ConnectionManager;
use runeflow_shared::durability::flush_wal;
use runeflow_shared::entities::execution as execution_row;
use runeflow_shared::finished_notice;
use runeflow_shared::jobs::{RunDetails, RunWorkflow, finished_channel};

use runeflow_shared::path::module_name;
use runeflow_shared::timeout::{TimeoutOutOfRange, timeout_duration};
use sea_orm::DatabaseConnection;

use crate::child_users::ChildUsers;
use crate::config_reads::ConfigReader;
use crate::execution::{self, Child, Limits, RunSpec};
use crate::incoming::Incoming;
use crate::index::IndexMirror;
use crate::modules::{ModuleServer, Sources};
use crate::prefetch::Prefetcher;
use crate::record::{self, Recorded, Start};
use crate::running::{CancelSignal, Running};
use crate::zygote::Zygotes;
use runeflow_queue::Enqueue;
use runeflow_shared::executions::limits;

/// Everything a job handler needs, shared by all jobs of a worker.
pub struct JobContext {
    pub db: DatabaseConnection,
    pub redis: ConnectionManager,
    pub prefix: String,
    pub worker_name: String,
    pub mirror: IndexMirror,
    pub sources: Arc<Sources>,
    pub zygotes: Zygotes,
    pub prefetcher: Prefetcher,
    pub running: Running,
    pub limits: Limits,
    pub default_timeout: Duration,
    pub max_attempts: i32,
    /// Pushes executions whose concurrency slot this worker freed.
    pub enqueue: Enqueue,
    /// A uid per running execution, when the worker can switch users.
    pub users: Option<Arc<ChildUsers>>,
    /// Serves `context.config` / `context.secret` reads.
    pub config: ConfigReader,
}

/// Why a job did not complete. User-code failures are not faults: they are
/// recorded outcomes and the job succeeds.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// Infrastructure trouble (PostgreSQL, Redis, no interpreter): the queue
    /// delivers the job again; `record::start` bounds the attempts.
    #[error("{0}")]
    Retry(String),
}

/// The apalis handler: waits for the execution's run, which is a task of
/// its own (see `running.rs`), so a dropped handler does not stop it. A
/// job it cannot read fails its execution, or is dropped when it names
/// none (see `incoming.rs`).
pub async fn handle(job: Incoming, ctx: Data<Arc<JobContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<JobContext> = (*ctx).clone();
    let (id, job) = match job {
        Incoming::Run(job) => (job.execution_id, Ok(job)),
        Incoming::Unreadable {
            execution_id: Some(id),
            problem,
        } => (id, Err(problem)),
        Incoming::Unreadable {
            execution_id: None,
            problem,
        } => {
            tracing::warn!(%problem, "dropped a job that names no execution: its payload is unreadable");
            return Ok(());
        }
    };
    // A limited execution's attempt frees its slot when it ends, whatever
    // way (see `executions::limits`).
    let limited = job.as_ref().ok().and_then(|job| {
        job.run
            .max_concurrency
            .map(|_| limits::key(&job.run.path, &job.run.function))
    });
    let runner = ctx.clone();
    let result = ctx
        .running
        .join_or_start(id, move |mut cancel| async move {
            match &job {
                Ok(job) => process(&runner, job, &mut cancel).await,
                Err(problem) => unreadable(&runner, id, problem).await,
            }
            .map_err(|Fault::Retry(message)| message)
        })
        .await;
    if let Some(key) = limited {
        release_slots(&ctx, &key).await;
    }
    match result {
        Ok(()) => Ok(()),
        Err(message) => {
            tracing::warn!(execution = %id, %message, "worker fault; the job will be delivered again");
            // Bounded: PostgreSQL itself may be the fault.
            let noted = tokio::time::timeout(
                Duration::from_secs(2),
                record::note_fault(&ctx.db, id, &message),
            )
            .await;
            if !matches!(noted, Ok(Ok(()))) {
                tracing::warn!(execution = %id, "could not note the fault in PostgreSQL");
            }
            Err(message.into())
        }
    }
}

async fn process(
    ctx: &JobContext,
    job: &RunWorkflow,
    cancel: &mut CancelSignal,
) -> Result<(), Fault> {
    let id = job.execution_id;
    let t0 = std::time::Instant::now();
    // The child is prepared (gated) while the row is marked running. A job
    // it cannot run (see `spec_of`) only marks the row, then records why.
    let spec = match spec_of(id, &job.run, ctx.default_timeout) {
        Ok(spec) => spec,
        Err(err) => return cannot_run(ctx, id, "InvalidTimeout", &err.to_string()).await,
    };
    // A task of its own, so the update leaves at once rather than after
    // the synchronous part of preparing the child.
    let limit = job
        .run
        .max_concurrency
        .map(|max| (limits::key(&job.run.path, &job.run.function), max));
    let update = tokio::spawn(start(ctx, id, limit));
    tokio::task::yield_now().await; // lets the update go out first
    let prepared = prepare(ctx, job, &spec).await;
    let start = update
        .await
        .map_err(|e| Fault::Retry(format!("marking the execution running: {e}")))??;
    let row = match start {
        Start::Run(row) => row,
        // A prepared child is dropped here, before it was told to go.
        Start::Skip | Start::Waiting => return make_durable(ctx).await,
        Start::GaveUp => {
            announce(ctx, id, None).await;
            return make_durable(ctx).await;
        }
    };
    let t_start = t0.elapsed();
    let prepared = prepared?;
    let t_prepared = t0.elapsed();
    let Some((server, child)) = prepared else {
        let message = format!(
            "the workflow file '{}' is no longer in the workspace",
            spec.path
        );
        let recorded = finish_with_retries(ctx, || {
            record::fail(&ctx.db, id, row.attempt, "WorkflowNotFound", &message)
        })
        .await?;
        announce(ctx, id, recorded.as_deref()).await;
        return make_durable(ctx).await;
    };
    let finished = child
        .run(&server, &ctx.config, &spec, &ctx.limits, cancel)
        .await
        .map_err(|lost| Fault::Retry(lost.to_string()))?;
    let t_ran = t0.elapsed();
    let retry_at = record::retry_at(&row, &finished);
    let recorded = match retry_at {
        Some(at) => {
            finish_with_retries(ctx, || {
                record::retry_later(&ctx.db, id, row.attempt, &finished, at)
            })
            .await?
        }
        None => {
            finish_with_retries(ctx, || record::finish(&ctx.db, id, row.attempt, &finished)).await?
        }
    };
    if recorded.is_none() {
        tracing::info!(execution = %id, attempt = row.attempt, "outcome not recorded: another attempt owns the execution");
    }
    let t_recorded = t0.elapsed();
    // A retried attempt is not an outcome: `wait`ing requests go on waiting.
    if recorded.as_ref().is_some_and(|row| row.status.is_final()) || recorded.is_none() {
        announce(ctx, id, recorded.as_deref()).await;
    }
    let t_announced = t0.elapsed();
    let durable = make_durable(ctx).await;
    // Phases overlap when the child was prepared during the start update:
    // `ready` is then when both were done.
    tracing::debug!(
        execution = %id,
        start_us = t_start.as_micros() as u64,
        ready_us = t_prepared.as_micros() as u64,
        spawn_us = finished.spawn.as_micros() as u64,
        run_us = (t_ran - t_prepared).as_micros() as u64,
        record_us = (t_recorded - t_ran).as_micros() as u64,
        announce_us = (t_announced - t_recorded).as_micros() as u64,
        flush_us = t0.elapsed().saturating_sub(t_announced).as_micros() as u64,
        "execution phases"
    );
    durable
}

/// A job whose payload names an execution but cannot be read: the
/// execution is failed (`UnreadableJob`) at once instead of being left to
/// the queue's retries, which would read it no better.
async fn unreadable(ctx: &JobContext, id: uuid::Uuid, problem: &str) -> Result<(), Fault> {
    tracing::warn!(execution = %id, %problem, "the job's payload is unreadable; failing its execution");
    let message = format!("the worker could not read the queued job: {problem}");
    cannot_run(ctx, id, "UnreadableJob", &message).await
}

/// Records a job that cannot run as a failure of its execution (`kind`),
/// once the row is this attempt's; a final row is left alone.
async fn cannot_run(
    ctx: &JobContext,
    id: uuid::Uuid,
    kind: &str,
    message: &str,
) -> Result<(), Fault> {
    let row = match start(ctx, id, None).await? {
        Start::Run(row) => row,
        Start::Skip | Start::Waiting => return make_durable(ctx).await,
        Start::GaveUp => {
            announce(ctx, id, None).await;
            return make_durable(ctx).await;
        }
    };
    let recorded = finish_with_retries(ctx, || {
        record::fail(&ctx.db, id, row.attempt, kind, message)
    })
    .await?;
    announce(ctx, id, recorded.as_deref()).await;
    make_durable(ctx).await
}

/// Gives the slots of `key` that are free to waiting executions and pushes
/// them. Best effort: every API does the same each promotion tick.
async fn release_slots(ctx: &JobContext, key: &str) {
    let released = match limits::release_slots(&ctx.db, key).await {
        Ok(rows) => ctx
            .enqueue
            .push_rows(&rows)
            .await
            .map_err(|e| e.to_string()),
        Err(err) => Err(err.to_string()),
    };
    if let Err(err) = released {
        tracing::warn!(%err, key, "could not release a concurrency slot; an API will");
    }
}

/// Marks the execution running for this attempt (see `record::start`); a
/// `'static` future, so it can run as a task of its own.
fn start(
    ctx: &JobContext,
    id: uuid::Uuid,
    limit: Option<(String, i32)>,
) -> impl std::future::Future<Output = Result<Start, Fault>> + Send + 'static {
    let (db, worker, max_attempts) = (ctx.db.clone(), ctx.worker_name.clone(), ctx.max_attempts);
    async move {
        let limit = limit.as_ref().map(|(key, max)| (key.as_str(), *max));
        record::start(&db, id, &worker, max_attempts, limit)
            .await
            .map_err(|e| Fault::Retry(format!("PostgreSQL: {e}")))
    }
}

/// What to run, or why it cannot run: a timeout a `Duration` cannot hold
/// (or that is not positive) fails the execution instead of the worker.
fn spec_of(
    id: uuid::Uuid,
    run: &RunDetails,
    default_timeout: Duration,
) -> Result<RunSpec, TimeoutOutOfRange> {
    Ok(RunSpec {
        execution_id: id.to_string(),
        module: module_name(&run.path),
        path: run.path.clone(),
        function: run.function.clone(),
        parameters: run.parameters.clone(),
        timeout: match run.timeout_seconds {
            Some(seconds) => timeout_duration(seconds)?,
            None => default_timeout,
        },
    })
}

/// Pins the workspace version, gathers the workflow's compiled imports and
/// forks the child with its `run`; `None` when the workflow's file is gone
/// from that version.
async fn prepare(
    ctx: &JobContext,
    job: &RunWorkflow,
    spec: &RunSpec,
) -> Result<Option<(ModuleServer, Child)>, Fault> {
    let snapshot = ctx
        .mirror
        .snapshot_at_least(&job.workspace)
        .await
        .map_err(|e| Fault::Retry(format!("module index: {e}")))?;
    if snapshot.sha(&spec.path).is_none() {
        return Ok(None);
    }
    let server = ModuleServer {
        snapshot,
        sources: ctx.sources.clone(),
    };
    let prefetch = match &spec.module {
        Some(module) => Some(
            ctx.prefetcher
                .bundle(&server, module)
                .await
                .map_err(|e| Fault::Retry(format!("module store: {e}")))?,
        ),
        None => None,
    };
    let slot = match &ctx.users {
        Some(users) => Some(
            users
                .acquire()
                .await
                .ok_or_else(|| Fault::Retry("the pool of child uids is closed".to_owned()))?,
        ),
        None => None,
    };
    let child = execution::spawn(
        &ctx.zygotes,
        &server,
        spec,
        prefetch,
        &ctx.limits,
        true,
        slot,
    )
    .await
    .map_err(|e| Fault::Retry(format!("could not start Python: {e}")))?;
    Ok(Some((server, child)))
}

/// Flushes the WAL before the job is acknowledged: the outcome was
/// committed asynchronously (and already announced, so `wait`ing clients
/// do not pay for the flush). If PostgreSQL loses it in a crash, the job
/// is still in the queue and runs again; it is never lost.
async fn make_durable(ctx: &JobContext) -> Result<(), Fault> {
    flush_wal(&ctx.db)
        .await
        .map_err(|e| Fault::Retry(format!("PostgreSQL: cannot flush the outcome to disk: {e}")))
}

/// Writes an outcome, retrying a few times in process: the child already
/// ran, so giving up here would mean running user code again.
async fn finish_with_retries<F, Fut>(ctx: &JobContext, write: F) -> Result<Recorded, Fault>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Recorded, sea_orm::DbErr>>,
{
    let mut delay = Duration::from_millis(200);
    for _ in 0..5 {
        match write().await {
            Ok(done) => return Ok(done),
            Err(err) => {
                tracing::warn!(%err, worker = %ctx.worker_name, "recording an outcome failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    Err(Fault::Retry(
        "PostgreSQL: cannot record the outcome".to_owned(),
    ))
}

/// Tells `wait`ing API requests the execution is final, with the row this
/// worker recorded when there is one (see `finished_notice`).
async fn announce(ctx: &JobContext, id: uuid::Uuid, recorded: Option<&execution_row::Model>) {
    let mut conn = ctx.redis.clone();
    let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
        .arg(finished_channel(&ctx.prefix))
        .arg(finished_notice::encode(id, recorded))
        .query_async(&mut conn)
        .await;
    if let Err(err) = sent {
        tracing::warn!(%err, execution = %id, "could not announce a finished execution");
    }
}

//! `runeflow worker`: run workflows until SIGINT/SIGTERM.

use runeflow_shared::config::Config;
use runeflow_worker::WorkerConfig;
use runeflow_worker::run::{WorkerDeps, run as run_worker};

use crate::{connect, shutdown};

pub async fn run(config: &Config, worker: WorkerConfig) -> anyhow::Result<()> {
    let deps = deps(config).await?;
    run_worker(deps, worker, shutdown::signal()).await?;
    tracing::info!("worker stopped");
    Ok(())
}

/// PostgreSQL and Redis for a worker, with errors naming the service.
pub async fn deps(config: &Config) -> anyhow::Result<WorkerDeps> {
    let db = connect::postgres(config).await?;
    let store = connect::module_store(config).await?;
    let secret_key = crate::secret_key::load(&db).await?;
    Ok(WorkerDeps {
        secret_key,
        db,
        redis: store.connection(),
        redis_url: config.redis_url()?.to_owned(),
        prefix: config.redis_prefix.clone(),
    })
}

//! `runeflow dev`: init, the API and one worker in one process, like
//! `temporal server start-dev`. Without DATABASE_URL / REDIS_URL it runs a
//! private PostgreSQL and redis-server and stops them on exit.

use anyhow::Context;
use runeflow_shared::shutdown::Shutdown;
use tokio::net::TcpListener;

use super::dev_services::DevServices;
use crate::cli::DevArgs;
use crate::{commands, connect, shutdown};

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let mut config = args.config;
    let services = DevServices::start(
        &args.data_dir,
        config.database_url.is_none(),
        config.redis_url.is_none(),
    )
    .await?;
    if let Some(url) = &services.database_url {
        config.database_url = Some(url.clone());
    }
    if let Some(url) = &services.redis_url {
        config.redis_url = Some(url.clone());
    }
    let result = run_all(&mut config, args.worker).await;
    services.stop().await;
    result
}

async fn run_all(
    config: &mut runeflow_shared::config::Config,
    worker: runeflow_worker::WorkerConfig,
) -> anyhow::Result<()> {
    if config.api_token.is_none() {
        let token = uuid::Uuid::new_v4().simple().to_string();
        config.api_token = Some(token);
    }
    commands::init::run(config).await?;
    let workspace = connect::workspace(config).await?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    // One line a script can read: where the API is and how to reach it.
    println!(
        "runeflow dev: API on http://{addr} token {} (Ctrl-C stops everything)",
        config.api_token.as_deref().unwrap_or_default()
    );
    let stop = Shutdown::new();
    let deps = commands::worker::deps(config).await?;
    let mut worker_task = tokio::spawn(runeflow_worker::run::run(deps, worker, stop.stopped()));
    let api = commands::api::serve(config, workspace, listener, stop.stopped());
    tokio::pin!(api);
    let signal = stop.trigger_on(shutdown::signal());
    // A worker that cannot start (or stops) ends `dev` at once, rather than
    // leaving an API whose executions never run.
    let (served, worker_result) = tokio::select! {
        served = &mut api => (served, (&mut worker_task).await),
        ended = &mut worker_task => {
            stop.trigger();
            (api.await, ended)
        }
    };
    signal.abort();
    worker_result.context("worker task panicked")??;
    served?;
    Ok(())
}

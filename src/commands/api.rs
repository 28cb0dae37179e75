//! `runeflow api`: serve the REST API until SIGINT/SIGTERM.

use std::future::Future;

use anyhow::Context;
use runeflow_api::AppState;
use runeflow_api::git::{Credentials, GitSettings, SyncSlots, TransferLimits};
use runeflow_api::queue::{Enqueue, JobQueue};
use runeflow_api::waiters::Waiters;
use runeflow_shared::config::Config;
use runeflow_shared::jobs::finished_channel;
use runeflow_shared::shutdown::Shutdown;
use runeflow_shared::workspace::Workspace;
use tokio::net::TcpListener;

use crate::{commands::init::pending_migrations, connect, shutdown};

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let workspace = connect::workspace(config).await?;
    let pending = pending_migrations(&workspace.db).await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is behind ({} pending migrations); run `runeflow init` first",
            pending.len()
        );
    }
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    serve(config, workspace, listener, shutdown::signal()).await
}

/// Serves on `listener` with the background tasks the API owns (store
/// repair, re-push of stale pending executions, due scheduled executions,
/// execution retention, the scheduler) until `stop` resolves.
pub async fn serve(
    config: &Config,
    workspace: Workspace,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = config.api_token()?.to_owned();
    let secret_key = crate::secret_key::load(&workspace.db).await?;
    let redis_url = config.redis_url()?.to_owned();
    let queue = JobQueue::new(
        workspace.publisher.store().connection(),
        &config.redis_prefix,
    );
    let waiters = Waiters::spawn(redis_url, finished_channel(&config.redis_prefix));
    // The background tasks stop once the server has (so a write it served
    // is still repaired and published).
    let tasks = Shutdown::new();
    let repair = {
        let publisher = workspace.publisher.clone();
        let db = workspace.db.clone();
        tokio::spawn(publisher.run_repair_owned(db, tasks.stopped()))
    };
    let reconcile = tokio::spawn(runeflow_api::reconcile::run(
        workspace.db.clone(),
        Enqueue::new(workspace.db.clone(), queue.clone()),
        tasks.stopped(),
    ));
    let promote = tokio::spawn(runeflow_api::promote::run(
        Enqueue::new(workspace.db.clone(), queue.clone()),
        tasks.stopped(),
    ));
    let retention = tokio::spawn(runeflow_api::retention::run(
        workspace.db.clone(),
        config.retention_days,
        tasks.stopped(),
    ));
    let state = AppState::new(workspace, queue, waiters, &token)
        .with_git(git_settings(config))
        .with_secret_key(secret_key);
    let scheduler = tokio::spawn(runeflow_api::scheduler::run(state.clone(), tasks.stopped()));
    let served = runeflow_api::serve(listener, state, stop).await;
    tasks.trigger();
    let _ = repair.await;
    let _ = reconcile.await;
    let _ = promote.await;
    let _ = retention.await;
    let _ = scheduler.await;
    served.context("API server failed")?;
    tracing::info!("API stopped");
    Ok(())
}

/// Git author, remote credentials, allowed remotes and limits for
/// `/api/git/*`, from the config.
pub fn git_settings(config: &Config) -> GitSettings {
    let mut settings = GitSettings::default();
    let author = config.git_author.trim();
    match author.split_once('<') {
        Some((name, email)) => {
            settings.author_name = name.trim().to_owned();
            settings.author_email = email.trim_end_matches('>').trim().to_owned();
        }
        None if !author.is_empty() => settings.author_name = author.to_owned(),
        None => {}
    }
    settings.credentials = Credentials {
        username: config.git_username.clone().filter(|u| !u.is_empty()),
        token: config.git_token.clone().filter(|t| !t.is_empty()),
    };
    settings.allow_insecure = config.git_allow_insecure;
    settings.limits = TransferLimits {
        timeout: std::time::Duration::from_secs(config.git_timeout_secs.max(1)),
        max_fetch_bytes: config.git_max_fetch_bytes,
    };
    settings.slots = SyncSlots::new(config.git_max_syncs);
    settings
}

//! `runeflow api`: serve the REST API until SIGINT/SIGTERM.

use anyhow::Context;
use runeflow_api::AppState;
use runeflow_shared::config::Config;
use tokio::net::TcpListener;

use crate::{commands::init::pending_migrations, connect, shutdown};

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let token = config.api_token()?.to_owned();
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let repair = {
        let publisher = workspace.publisher.clone();
        let db = workspace.db.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            publisher
                .run_repair(db, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let state = AppState::new(workspace, &token);
    runeflow_api::serve(listener, state, shutdown::signal())
        .await
        .context("API server failed")?;
    let _ = stop_tx.send(true);
    let _ = repair.await;
    tracing::info!("API stopped");
    Ok(())
}

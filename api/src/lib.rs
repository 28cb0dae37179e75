//! Runeflow's REST API (axum): workspace files, workflows, executions,
//! schedules (and the scheduler loop), health.
//!
//! [`app`] builds the router from a ready [`AppState`] (tests drive it with
//! `oneshot`); [`serve`] binds it and shuts down gracefully.

pub mod audit;
mod auth;
pub mod error;
mod file_path;
pub mod git;
pub mod promote;
pub mod queue;
pub mod reconcile;
pub mod retention;
pub mod routes;
pub mod scheduler;
pub mod state;
pub mod waiters;
pub mod workflow_cache;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

pub use routes::openapi::ApiDoc;
pub use state::AppState;

/// The API router.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "API listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

//! `runeflow worker-health`: the worker's container healthcheck. Healthy
//! when the worker's consumer wrote its heartbeat to Redis recently (see
//! `runeflow_worker::health`).

use crate::cli::WorkerHealthArgs;

pub fn run(args: &WorkerHealthArgs) -> anyhow::Result<()> {
    let age = runeflow_worker::health::check(&args.health_file)
        .map_err(|e| anyhow::anyhow!("unhealthy: {e}"))?;
    println!("healthy: last heartbeat {} s ago", age.as_secs());
    Ok(())
}

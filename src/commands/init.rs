//! `runeflow init`: migrate under an advisory lock, then rebuild the module
//! store from PostgreSQL. Idempotent, and safe to run from several replicas.

use anyhow::Context;
use runeflow_migrations::{Migrator, MigratorTrait};
use runeflow_shared::config::Config;
use runeflow_shared::workspace::{RebuildReport, backfill_settings, rebuild};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};

use crate::connect;

/// Key of the advisory lock that serialises concurrent migrations
/// (the bytes of "runeflow").
pub const MIGRATION_LOCK_KEY: i64 = 0x7275_6e65_666c_6f77;

/// Migrates and warms; prints one line saying what it warmed and how long it took.
pub async fn run(config: &Config) -> anyhow::Result<RebuildReport> {
    let db = connect::postgres(config).await?;
    let store = connect::module_store(config).await?;
    migrate(&db).await?;
    // Secrets stored but no key (or another key): stop the deployment here.
    crate::secret_key::load(&db).await?;
    let backfill = backfill_settings(&db)
        .await
        .context("re-detecting workflow settings failed")?;
    let report = rebuild(&store, &db)
        .await
        .context("warming the module store failed")?;
    println!(
        "runeflow init: schema up to date; warmed {} files ({} bytes) in {} ms \
         (generation {}, {} deleted paths, {} orphans removed, {} unreferenced blobs expiring); \
         settings of {} workflows updated from {} files",
        report.files,
        report.bytes,
        report.elapsed.as_millis(),
        report.generation,
        report.tombstones,
        report.orphans_removed,
        report.blobs_expiring,
        backfill.updated,
        backfill.files,
    );
    Ok(report)
}

/// Applies pending migrations inside one transaction that first takes a
/// transaction-scoped advisory lock: a second `init` waits, then finds
/// nothing to do. (Each migration runs in a savepoint of that transaction.)
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let txn = db
        .begin()
        .await
        .context("PostgreSQL: cannot start a transaction")?;
    txn.execute_unprepared(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
    ))
    .await
    .context("PostgreSQL: cannot take the migration lock")?;
    Migrator::up(&txn, None).await.context("migration failed")?;
    txn.commit()
        .await
        .context("committing the migrations failed")?;
    Ok(())
}

/// Names of migrations not applied yet (the API refuses to start with any).
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    let pending = Migrator::get_pending_migrations(db)
        .await
        .context("reading the migration table failed")?;
    Ok(pending.iter().map(|m| m.name().to_owned()).collect())
}

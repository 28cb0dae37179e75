//! Runeflow's schema as sea-orm migrations. Every schema change is a new
//! migration appended to [`Migrator::migrations`]; applied ones never change.
//!
//! Migrations are written in SQL because they use PostgreSQL features the
//! builder does not express well (a `C`-collated path for byte-wise prefix
//! ranges, partial indexes, check constraints, a sequence).

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_workspace_files;
mod m20261126_000002_workflows;
mod m20261126_000003_executions;
mod m20261201_000004_git_sync;
mod m20261201_000005_execution_last_fault;
mod m20261206_000006_execution_scheduled;
mod m20261206_000007_workflow_settings;
mod m20261206_000008_delayed_runs_and_retries;
mod m20261206_000009_endpoint_keys_idempotency;
mod m20261206_000010_schedules;
mod m20261206_000011_api_tokens;
mod m20261206_000012_config_entries;
mod m20261206_000013_audit_log;
mod m20261206_000014_token_names_unique;

/// The ordered list of migrations `runeflow init` applies.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_workspace_files::Migration),
            Box::new(m20261126_000002_workflows::Migration),
            Box::new(m20261126_000003_executions::Migration),
            Box::new(m20261201_000004_git_sync::Migration),
            Box::new(m20261201_000005_execution_last_fault::Migration),
            Box::new(m20261206_000006_execution_scheduled::Migration),
            Box::new(m20261206_000007_workflow_settings::Migration),
            Box::new(m20261206_000008_delayed_runs_and_retries::Migration),
            Box::new(m20261206_000009_endpoint_keys_idempotency::Migration),
            Box::new(m20261206_000010_schedules::Migration),
            Box::new(m20261206_000011_api_tokens::Migration),
            Box::new(m20261206_000012_config_entries::Migration),
            Box::new(m20261206_000013_audit_log::Migration),
            Box::new(m20261206_000014_token_names_unique::Migration),
        ]
    }
}

/// Runs `up` SQL, statement by statement, on the migration's connection.
async fn run_sql(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

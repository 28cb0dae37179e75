//! Delayed runs, retries of user failures and concurrency limits: `run_at`
//! (when a `scheduled` row becomes `pending`; NULL while it waits for a
//! concurrency slot), the retry policy and the limit copied from the
//! workflow at enqueue time, the retries used, every earlier attempt's
//! outcome (`attempts`, oldest first) and how many times the row went back
//! to the queue (`requeues`, part of its job's key).

use sea_orm_migration::prelude::*;

use crate::run_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE executions
                 ADD COLUMN run_at timestamptz NULL,
                 ADD COLUMN retry_policy jsonb NULL,
                 ADD COLUMN retry integer NOT NULL DEFAULT 0,
                 ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]'::jsonb,
                 ADD COLUMN requeues integer NOT NULL DEFAULT 0,
                 ADD COLUMN concurrency_key text NULL,
                 ADD COLUMN max_concurrency integer NULL;
             CREATE INDEX executions_scheduled_run_at ON executions (run_at)
                 WHERE status = 'scheduled';
             CREATE INDEX executions_concurrency ON executions (concurrency_key, status)
                 WHERE concurrency_key IS NOT NULL;",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "DROP INDEX IF EXISTS executions_scheduled_run_at;
             DROP INDEX IF EXISTS executions_concurrency;
             ALTER TABLE executions DROP COLUMN run_at, DROP COLUMN retry_policy,
                 DROP COLUMN retry, DROP COLUMN attempts, DROP COLUMN requeues,
                 DROP COLUMN concurrency_key, DROP COLUMN max_concurrency;",
        )
        .await
    }
}

//! Delayed runs and retries of user failures: `run_at` (when a `scheduled`
//! row becomes `pending`), the retry policy copied from the workflow at
//! enqueue time, the number of retries used, and every earlier attempt's
//! outcome (`attempts`, oldest first).

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
                 ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]'::jsonb;
             CREATE INDEX executions_scheduled_run_at ON executions (run_at)
                 WHERE status = 'scheduled';",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "DROP INDEX IF EXISTS executions_scheduled_run_at;
             ALTER TABLE executions DROP COLUMN run_at, DROP COLUMN retry_policy,
                 DROP COLUMN retry, DROP COLUMN attempts;",
        )
        .await
    }
}

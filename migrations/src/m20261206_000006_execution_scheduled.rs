//! `executions.status` may be `scheduled`: a delayed run waiting for its
//! time (`runeflow_shared::executions::Status::Scheduled`).

use sea_orm_migration::prelude::*;

use crate::run_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE executions DROP CONSTRAINT executions_status_check,
                 ADD CONSTRAINT executions_status_check CHECK (status IN
                     ('scheduled', 'pending', 'running', 'success', 'failed', 'timeout', 'cancelled'));",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE executions DROP CONSTRAINT executions_status_check,
                 ADD CONSTRAINT executions_status_check CHECK (status IN
                     ('pending', 'running', 'success', 'failed', 'timeout', 'cancelled'));",
        )
        .await
    }
}

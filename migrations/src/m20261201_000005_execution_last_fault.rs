//! `executions.last_fault`: why the last attempt ended in a worker fault
//! (PostgreSQL or Redis unreachable, no interpreter, ...), so that an
//! execution given up as `WorkerLost` says what went wrong.

use sea_orm_migration::prelude::*;

use crate::run_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE executions ADD COLUMN last_fault TEXT;",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, "ALTER TABLE executions DROP COLUMN last_fault;").await
    }
}

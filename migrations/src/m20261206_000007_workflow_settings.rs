//! `workflows.settings`: what the decorator says about scheduling, retries,
//! the HTTP endpoint, concurrency and caching (`detect::Settings` as JSON;
//! absent settings are left out). Rows written before this migration get
//! `{}` here and are re-detected by `runeflow init`.

use sea_orm_migration::prelude::*;

use crate::run_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r#"
            ALTER TABLE workflows ADD COLUMN settings JSONB NOT NULL DEFAULT '{}'::jsonb;
            -- The scheduler reads only the workflows that have a schedule.
            CREATE INDEX ix_workflows_scheduled ON workflows (id) WHERE settings ? 'schedule';
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r#"
            DROP INDEX ix_workflows_scheduled;
            ALTER TABLE workflows DROP COLUMN settings;
            "#,
        )
        .await
    }
}

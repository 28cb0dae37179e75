//! `schedules`: cron schedules, from a decorator (`source = 'decorator'`,
//! derived from `workflows.settings` by the scheduler's sync) or from the
//! API (`source = 'api'`). `executions.schedule_tick` ("<schedule id>@<tick
//! RFC 3339>") is unique, so each tick enqueues at most one execution
//! however many API processes run the scheduler.

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
            CREATE TABLE schedules (
                id UUID PRIMARY KEY,
                workflow_name TEXT NOT NULL,
                -- For a decorator schedule: the function it decorates (with
                -- source_path it names the workflow row exactly).
                function_name TEXT NULL,
                cron TEXT NOT NULL,
                timezone TEXT NOT NULL,
                parameters JSONB NOT NULL DEFAULT '{}'::jsonb,
                catch_up BOOLEAN NOT NULL DEFAULT TRUE,
                source TEXT NOT NULL CHECK (source IN ('decorator', 'api')),
                source_path TEXT NULL,
                enabled BOOLEAN NOT NULL DEFAULT TRUE,
                last_tick TIMESTAMPTZ NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                CHECK (source = 'api' OR (source_path IS NOT NULL AND function_name IS NOT NULL))
            );
            -- One decorator schedule per workflow row (path, function).
            CREATE UNIQUE INDEX ux_schedules_decorator ON schedules (source_path, function_name)
                WHERE source = 'decorator';
            ALTER TABLE executions ADD COLUMN schedule_tick TEXT NULL UNIQUE;
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r#"
            ALTER TABLE executions DROP COLUMN schedule_tick;
            DROP TABLE schedules;
            "#,
        )
        .await
    }
}

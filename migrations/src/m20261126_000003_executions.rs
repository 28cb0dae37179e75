//! `executions`: the source of truth for every run's status and outcome.

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
            CREATE TABLE executions (
                id              UUID PRIMARY KEY,
                workflow_name   TEXT NOT NULL,
                workflow_path   TEXT NOT NULL,
                function_name   TEXT NOT NULL,
                parameters      JSONB NOT NULL DEFAULT '{}'::jsonb,
                status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'success', 'failed', 'timeout', 'cancelled')),
                result          JSONB,
                error_type      TEXT,
                error_message   TEXT,
                error_traceback TEXT,
                logs            TEXT NOT NULL DEFAULT '',
                logs_truncated  BOOLEAN NOT NULL DEFAULT FALSE,
                attempt         INTEGER NOT NULL DEFAULT 0,
                worker          TEXT,
                workspace_gen   BIGINT NOT NULL DEFAULT 0,
                timeout_seconds DOUBLE PRECISION,
                queued_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
                started_at      TIMESTAMPTZ,
                finished_at     TIMESTAMPTZ,
                duration_ms     BIGINT
            );
            -- Ids are UUIDv7 (time-ordered): listings page newest first by id.
            CREATE INDEX ix_executions_status ON executions (status, id DESC);
            CREATE INDEX ix_executions_workflow ON executions (workflow_name, id DESC);
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, "DROP TABLE executions;").await
    }
}

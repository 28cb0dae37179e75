//! `workflows`: metadata of each decorated function, rebuilt per file write.

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
            CREATE TABLE workflows (
                id              BIGSERIAL PRIMARY KEY,
                path            TEXT COLLATE "C" NOT NULL
                    REFERENCES workspace_files (path) ON DELETE CASCADE,
                name            TEXT NOT NULL,
                function_name   TEXT NOT NULL,
                kind            TEXT NOT NULL CHECK (kind IN ('workflow', 'data_provider')),
                description     TEXT,
                parameters      JSONB NOT NULL DEFAULT '[]'::jsonb,
                timeout_seconds DOUBLE PRECISION,
                is_async        BOOLEAN NOT NULL DEFAULT FALSE,
                line            INTEGER NOT NULL,
                updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
                UNIQUE (path, function_name)
            );
            CREATE INDEX ix_workflows_name ON workflows (name);
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, "DROP TABLE workflows;").await
    }
}

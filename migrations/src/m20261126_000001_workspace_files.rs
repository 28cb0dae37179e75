//! `workspace_files` and the revision sequence that orders module-store writes.

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
            CREATE SEQUENCE workspace_revision_seq;
            CREATE TABLE workspace_files (
                path          TEXT COLLATE "C" PRIMARY KEY,
                content       TEXT NOT NULL,
                content_hash  CHAR(64) NOT NULL,
                entity_type   TEXT NOT NULL
                    CHECK (entity_type IN ('workflow', 'data_provider', 'module', 'file')),
                is_deleted    BOOLEAN NOT NULL DEFAULT FALSE,
                size          BIGINT NOT NULL CHECK (size >= 0),
                revision      BIGINT NOT NULL DEFAULT nextval('workspace_revision_seq'),
                created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
                updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
                deleted_at    TIMESTAMPTZ
            );
            CREATE INDEX ix_workspace_files_modules ON workspace_files (path)
                WHERE entity_type = 'module' AND NOT is_deleted;
            CREATE INDEX ix_workspace_files_live ON workspace_files (path)
                WHERE NOT is_deleted;
            CREATE INDEX ix_workspace_files_revision ON workspace_files (revision);
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "DROP TABLE workspace_files; DROP SEQUENCE workspace_revision_seq;",
        )
        .await
    }
}

//! `endpoint_keys`: per-workflow keys accepted as `X-Runeflow-Key` on
//! `POST /api/endpoints/{name}` (only their sha256 is kept), and
//! `idempotency_keys`: which execution an `Idempotency-Key` created, per
//! scope (`executions` or `endpoint:<name>`), kept 24 h.

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
            CREATE TABLE endpoint_keys (
                id            UUID PRIMARY KEY,
                workflow_name TEXT NOT NULL,
                name          TEXT NOT NULL,
                key_hash      TEXT NOT NULL UNIQUE,
                created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
                revoked_at    TIMESTAMPTZ,
                last_used_at  TIMESTAMPTZ
            );
            CREATE INDEX ix_endpoint_keys_workflow ON endpoint_keys (workflow_name, created_at);
            -- The key row and the execution it names are inserted in one
            -- transaction; the execution's retention delete takes the key too.
            CREATE TABLE idempotency_keys (
                key          TEXT NOT NULL,
                scope        TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                execution_id UUID NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
                created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (scope, key)
            );
            CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at);
            CREATE INDEX ix_idempotency_keys_execution ON idempotency_keys (execution_id);
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r#"
            DROP TABLE idempotency_keys;
            DROP TABLE endpoint_keys;
            "#,
        )
        .await
    }
}

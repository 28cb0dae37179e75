//! Scoped API tokens: `RUNEFLOW_API_TOKEN` stays the bootstrap admin token;
//! others are created through the API, stored as their sha256 only.

use sea_orm_migration::prelude::*;

use crate::run_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "CREATE TABLE api_tokens (
                 id uuid PRIMARY KEY,
                 name text NOT NULL,
                 scopes text[] NOT NULL,
                 token_hash text NOT NULL UNIQUE,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 last_used_at timestamptz NULL,
                 revoked_at timestamptz NULL
             );",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, "DROP TABLE IF EXISTS api_tokens;").await
    }
}

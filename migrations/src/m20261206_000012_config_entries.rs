//! Config and secrets for workflows: one row per key. A plain entry keeps
//! its JSON value; a secret keeps only its XChaCha20-Poly1305 ciphertext,
//! nonce and the id of the key that sealed it (never the plaintext). Each
//! execution records the names of the entries it read.

use sea_orm_migration::prelude::*;

use crate::run_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "CREATE TABLE config_entries (
                 key text PRIMARY KEY CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$'),
                 secret boolean NOT NULL,
                 value jsonb NULL,
                 ciphertext bytea NULL,
                 nonce bytea NULL,
                 key_id text NULL,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 updated_at timestamptz NOT NULL DEFAULT now(),
                 CHECK (CASE WHEN secret
                     THEN value IS NULL AND ciphertext IS NOT NULL AND nonce IS NOT NULL AND key_id IS NOT NULL
                     ELSE value IS NOT NULL AND ciphertext IS NULL AND nonce IS NULL AND key_id IS NULL END)
             );
             ALTER TABLE executions ADD COLUMN config_read jsonb NOT NULL DEFAULT '[]'::jsonb;",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            "ALTER TABLE executions DROP COLUMN IF EXISTS config_read;
             DROP TABLE IF EXISTS config_entries;",
        )
        .await
    }
}

//! `audit_log`: who did what to which target, when, and how it ended (one
//! row per write, run, cancel, token, key, schedule, config or git request
//! of the API). Append-only in PostgreSQL itself: statement triggers refuse
//! every UPDATE, DELETE and TRUNCATE, whoever sends them.

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
            CREATE TABLE audit_log (
                id BIGSERIAL PRIMARY KEY,
                at TIMESTAMPTZ NOT NULL DEFAULT now(),
                -- A token's name, `bootstrap`, or `endpoint-key:<key name>`.
                actor TEXT NOT NULL,
                -- e.g. `file.write`, `execution.run`, `token.revoke`.
                action TEXT NOT NULL,
                -- A path, name or id; never a value from a request body.
                target TEXT NULL,
                outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
                -- The HTTP status; NULL for an action outside the API.
                status SMALLINT NULL
            );
            -- Listings are newest first, optionally since a time and for
            -- one actor or one action.
            CREATE INDEX ix_audit_log_at ON audit_log (at, id);
            CREATE INDEX ix_audit_log_actor ON audit_log (actor, at, id);
            CREATE INDEX ix_audit_log_action ON audit_log (action, at, id);

            CREATE FUNCTION audit_log_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % is refused', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END
            $$;
            -- Statement triggers: they fire even when no row matches.
            CREATE TRIGGER audit_log_no_update_delete
                BEFORE UPDATE OR DELETE ON audit_log
                FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
            CREATE TRIGGER audit_log_no_truncate
                BEFORE TRUNCATE ON audit_log
                FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(
            manager,
            r#"
            DROP TABLE IF EXISTS audit_log;
            DROP FUNCTION IF EXISTS audit_log_append_only();
            "#,
        )
        .await
    }
}

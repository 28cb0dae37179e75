//! `git_sync`: the last commit each remote branch was synced at (by a push
//! or a pull), the base of the three-way comparison that finds conflicts.

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
            CREATE TABLE git_sync (
                remote     TEXT NOT NULL,
                branch     TEXT NOT NULL,
                commit_id  TEXT NOT NULL,
                synced_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
                PRIMARY KEY (remote, branch)
            );
            "#,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_sql(manager, "DROP TABLE git_sync;").await
    }
}

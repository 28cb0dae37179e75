//! One git sync at a time per (remote, branch), across every API process:
//! a PostgreSQL advisory lock held, in a transaction of its own, while a
//! push or a pull runs. Without it two pulls could apply the same changes
//! in an interleaved order and record either one's commit as the base, and
//! a push could slip in between a pull's check and its writes.

use std::future::Future;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};

/// Held for as long as the sync runs; released by [`BranchLock::release`]
/// (or when the transaction ends with its connection).
struct BranchLock(DatabaseTransaction);

/// Runs `sync` holding the (remote, branch) lock: it starts once no other
/// sync of that branch runs, in this process or another.
pub async fn one_at_a_time<T, E: From<DbErr>>(
    db: &DatabaseConnection,
    remote: &str,
    branch: &str,
    sync: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let lock = BranchLock::acquire(db, remote, branch).await?;
    let result = sync.await;
    lock.release().await?;
    result
}

/// The advisory lock's key text: the lengths make every (remote, branch)
/// pair a distinct text, whatever characters the names hold.
pub fn lock_key(remote: &str, branch: &str) -> String {
    format!(
        "runeflow git sync {}:{remote} {}:{branch}",
        remote.len(),
        branch.len()
    )
}

/// The statement that takes the lock for [`lock_key`]`($1)`.
pub const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

impl BranchLock {
    /// Waits until no other sync of this (remote, branch) runs.
    async fn acquire(db: &DatabaseConnection, remote: &str, branch: &str) -> Result<Self, DbErr> {
        let txn = db.begin().await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            LOCK_SQL,
            [lock_key(remote, branch).into()],
        ))
        .await?;
        Ok(BranchLock(txn))
    }

    async fn release(self) -> Result<(), DbErr> {
        self.0.commit().await
    }
}

//! One git sync at a time per (remote, branch), across every API process:
//! a PostgreSQL advisory lock held while a push or a pull runs. Without it
//! two pulls could apply the same changes in an interleaved order and
//! record either one's commit as the base, and a push could slip in between
//! a pull's check and its writes.
//!
//! The lock lives on a connection of its own, opened for the sync with the
//! pool's settings and closed after it, never on one of the pool's: a sync
//! waits on its remote for up to the git time limit, and a pooled
//! connection held that long by each of a few slow syncs would leave none
//! for ordinary requests. It is a session lock, not a transaction's, so no
//! session sits "idle in transaction" for the length of a fetch. If the
//! sync's future is dropped, the connection closes and PostgreSQL releases
//! the lock with the session.

use std::future::Future;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgConnection;
use sea_orm::sqlx::{self, Connection};

/// The lock's connection could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[error("git sync lock (PostgreSQL): {0}")]
pub struct LockError(#[from] sqlx::Error);

/// Runs `sync` holding the (remote, branch) lock: it starts once no other
/// sync of that branch runs, in this process or another.
pub async fn one_at_a_time<T, E: From<LockError>>(
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

/// The statement that takes the (session) lock for [`lock_key`]`($1)`.
pub const LOCK_SQL: &str = "SELECT pg_advisory_lock(hashtextextended($1, 0))";
/// The statement that releases it, on the same session.
pub const UNLOCK_SQL: &str = "SELECT pg_advisory_unlock(hashtextextended($1, 0))";

/// Held for as long as the sync runs, on a dedicated connection.
struct BranchLock {
    conn: PgConnection,
    key: String,
}

impl BranchLock {
    /// Opens a connection outside the pool and waits on it until no other
    /// sync of this (remote, branch) runs.
    async fn acquire(
        db: &DatabaseConnection,
        remote: &str,
        branch: &str,
    ) -> Result<Self, LockError> {
        let options = db.get_postgres_connection_pool().connect_options();
        let mut conn = PgConnection::connect_with(&options).await?;
        let key = lock_key(remote, branch);
        sqlx::query(LOCK_SQL).bind(&key).execute(&mut conn).await?;
        Ok(BranchLock { conn, key })
    }

    async fn release(mut self) -> Result<(), LockError> {
        sqlx::query(UNLOCK_SQL)
            .bind(&self.key)
            .execute(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok(())
    }
}

//! Commits that skip the WAL flush, and the flush that makes them durable.
//!
//! A synchronous commit waits for one `fdatasync` of the WAL: 1–3 ms on the
//! machines we measured, more than the rest of a no-op execution. The
//! execution bookkeeping therefore commits asynchronously (the row is
//! visible to every session at once, durable within `wal_writer_delay`),
//! and each writer calls [`flush_wal`] before it promises anything that
//! must survive a PostgreSQL crash: the API before it answers (running
//! alongside the execution), the worker before it acknowledges the job (so
//! a lost outcome means the job is delivered again, never that it is gone).
//! WAL is flushed in order, so one flush covers every earlier commit.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// A `FROM` item that turns the statement's own (implicit) transaction into
/// an asynchronous commit: `UPDATE t SET … FROM ASYNC_COMMIT WHERE …` or
/// `INSERT INTO t (…) SELECT … FROM ASYNC_COMMIT`. One statement, one round
/// trip; the setting ends with that transaction.
pub const ASYNC_COMMIT: &str =
    "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit";

/// Waits until every commit this process made before the call is on disk.
///
/// A transaction that writes no WAL commits without a flush, so this one
/// writes a tiny transactional logical-decoding message (allowed to any
/// role) and commits synchronously.
pub async fn flush_wal(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_string(
        DbBackend::Postgres,
        "SELECT set_config('synchronous_commit', 'on', true), \
         pg_logical_emit_message(true, 'runeflow', 'durable')",
    ))
    .await
    .map(|_| ())
}

//! Cancelling an execution: the row becomes `cancelled` (final at once),
//! then the workers and the waiters are told.

use runeflow_shared::durability::flush_wal;
use runeflow_shared::entities::execution;
use runeflow_shared::executions::statements;
use runeflow_shared::finished_notice;
use sea_orm::DbErr;
use uuid::Uuid;

use crate::Enqueue;

/// What a cancel found.
#[derive(Debug)]
pub enum Cancelled {
    /// Cancelled now: it will never start, or its child is being killed.
    Now(Box<execution::Model>),
    /// Already final (cancelled before, or finished otherwise).
    AlreadyFinal(Box<execution::Model>),
    NotFound,
}

impl Enqueue {
    /// Cancels `id` if it is not final, makes that durable, then announces
    /// it (workers kill the child; `wait`ing requests return).
    pub async fn cancel(&self, id: Uuid) -> Result<Cancelled, DbErr> {
        let Some(row) = statements::cancel(self.db(), id).await? else {
            return Ok(match statements::get(self.db(), id).await? {
                Some(row) => Cancelled::AlreadyFinal(Box::new(row)),
                None => Cancelled::NotFound,
            });
        };
        flush_wal(self.db()).await?;
        self.queue()
            .announce_cancel(&id.to_string(), finished_notice::encode(id, Some(&row)))
            .await;
        Ok(Cancelled::Now(Box::new(row)))
    }
}

//! The core's `OutboxStore` over an outbox entity: the mail outbox
//! ([`crate::entity::mail_outbox`], the store itself) and the webhook deliveries
//! ([`crate::entity::webhook_outbox`], [`crate::WebhookOutbox`]), which have the same claim and
//! lease columns.
//!
//! A claim is a compare-and-swap per row: `UPDATE ... SET locked_until, locked_by WHERE id = ?
//! AND status = 'pending' AND locked_until <= now`. Of two workers that picked the same due
//! row, the database lets one update it (PostgreSQL and InnoDB re-check the condition on the
//! row they waited for; SQLite runs one writer at a time) and the other changes nothing, so no
//! message is held by two workers while its lease runs.

use axum_users::{NewOutboxMessage, OutboxMessage, OutboxStatus, OutboxStore, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::entity::{mail_outbox, webhook_outbox};
use crate::error::store_error;
use crate::{MfaEntities, SeaOrmStore, StoreEntity, UserEntity};

/// Longest stored error text: enough for an SMTP reply or an HTTP status line.
const MAX_ERROR: usize = 1000;

fn status_of(text: &str) -> Result<OutboxStatus, StoreError> {
    OutboxStatus::parse(text)
        .ok_or_else(|| StoreError::Backend(format!("unknown outbox status {text:?}").into()))
}

/// An outbox table: its lease columns, and its rows as the core's messages.
pub(crate) trait OutboxTable:
    EntityTrait<Model: Send + Sync, ActiveModel: Send + Sync>
{
    const ID: Self::Column;
    const STATUS: Self::Column;
    const ATTEMPTS: Self::Column;
    const NEXT_ATTEMPT_AT: Self::Column;
    const LOCKED_UNTIL: Self::Column;
    const LOCKED_BY: Self::Column;
    const LAST_ERROR: Self::Column;
    const CREATED_AT: Self::Column;

    /// A new pending row.
    fn row(message: NewOutboxMessage) -> Self::ActiveModel;

    /// A row as a message.
    fn message(model: Self::Model) -> Result<OutboxMessage, StoreError>;
}

/// Implements [`OutboxTable`] for the entity of `$module`, whose columns for the core's
/// `recipient`, `kind` and `sealed` are `$recipient`, `$kind` and `$sealed`.
macro_rules! outbox_table {
    ($module:ident, $recipient:ident, $kind:ident, $sealed:ident) => {
        impl OutboxTable for $module::Entity {
            const ID: Self::Column = $module::Column::Id;
            const STATUS: Self::Column = $module::Column::Status;
            const ATTEMPTS: Self::Column = $module::Column::Attempts;
            const NEXT_ATTEMPT_AT: Self::Column = $module::Column::NextAttemptAt;
            const LOCKED_UNTIL: Self::Column = $module::Column::LockedUntil;
            const LOCKED_BY: Self::Column = $module::Column::LockedBy;
            const LAST_ERROR: Self::Column = $module::Column::LastError;
            const CREATED_AT: Self::Column = $module::Column::CreatedAt;

            fn row(message: NewOutboxMessage) -> $module::ActiveModel {
                $module::ActiveModel {
                    id: ActiveValue::Set(message.id),
                    $recipient: ActiveValue::Set(message.recipient),
                    $kind: ActiveValue::Set(message.kind),
                    $sealed: ActiveValue::Set(message.sealed),
                    status: ActiveValue::Set(OutboxStatus::Pending.as_str().to_owned()),
                    attempts: ActiveValue::Set(0),
                    next_attempt_at: ActiveValue::Set(message.created_at),
                    locked_until: ActiveValue::Set(0),
                    locked_by: ActiveValue::Set(None),
                    last_error: ActiveValue::Set(None),
                    created_at: ActiveValue::Set(message.created_at),
                }
            }

            fn message(model: $module::Model) -> Result<OutboxMessage, StoreError> {
                Ok(OutboxMessage {
                    status: status_of(&model.status)?,
                    id: model.id,
                    recipient: model.$recipient,
                    kind: model.$kind,
                    sealed: model.$sealed,
                    attempts: u32::try_from(model.attempts).unwrap_or(u32::MAX),
                    next_attempt_at: model.next_attempt_at,
                    locked_until: model.locked_until,
                    last_error: model.last_error,
                    created_at: model.created_at,
                })
            }
        }
    };
}

outbox_table!(mail_outbox, recipient, kind, sealed);
// A delivery is a message whose recipient is the endpoint's name, whose kind is the event type
// and whose body is the JSON payload (in clear: it holds no secret).
outbox_table!(webhook_outbox, endpoint, event_type, payload);

/// Inserts a pending message through `conn`.
pub(crate) async fn enqueue<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
    message: NewOutboxMessage,
) -> Result<(), StoreError> {
    E::insert(E::row(message))
        .exec_without_returning(conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

async fn claim<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
    now: i64,
    lease_seconds: i64,
    limit: u32,
    worker: &str,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let pending = OutboxStatus::Pending.as_str();
    let candidates = E::find()
        .filter(E::STATUS.eq(pending))
        .filter(E::NEXT_ATTEMPT_AT.lte(now))
        .filter(E::LOCKED_UNTIL.lte(now))
        .order_by_asc(E::NEXT_ATTEMPT_AT)
        .order_by_asc(E::CREATED_AT)
        .limit(u64::from(limit))
        .all(conn)
        .await
        .map_err(store_error)?;
    let until = now.saturating_add(lease_seconds);
    let mut claimed = Vec::with_capacity(candidates.len());
    for model in candidates {
        let mut message = E::message(model)?;
        let taken = E::update_many()
            .col_expr(E::LOCKED_UNTIL, Expr::value(until))
            .col_expr(E::LOCKED_BY, Expr::value(worker))
            .filter(E::ID.eq(message.id.as_str()))
            .filter(E::STATUS.eq(pending))
            .filter(E::LOCKED_UNTIL.lte(now))
            .exec(conn)
            .await
            .map_err(store_error)?;
        if taken.rows_affected == 1 {
            message.locked_until = until;
            claimed.push(message);
        }
    }
    Ok(claimed)
}

async fn delete_sent<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
    id: &str,
    worker: &str,
) -> Result<bool, StoreError> {
    let done = E::delete_many()
        .filter(E::ID.eq(id))
        .filter(E::LOCKED_BY.eq(worker))
        .exec(conn)
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected == 1)
}

async fn record_failure<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
    id: &str,
    worker: &str,
    error: &str,
    next_attempt_at: Option<i64>,
) -> Result<(), StoreError> {
    let status = match next_attempt_at {
        Some(_) => OutboxStatus::Pending,
        None => OutboxStatus::Failed,
    };
    let error: String = error.chars().take(MAX_ERROR).collect();
    E::update_many()
        .col_expr(E::ATTEMPTS, Expr::col(E::ATTEMPTS).add(1))
        .col_expr(E::LAST_ERROR, Expr::value(error))
        .col_expr(E::STATUS, Expr::value(status.as_str()))
        .col_expr(
            E::NEXT_ATTEMPT_AT,
            Expr::value(next_attempt_at.unwrap_or(0)),
        )
        .col_expr(E::LOCKED_UNTIL, Expr::value(0_i64))
        .col_expr(E::LOCKED_BY, Expr::value(Option::<String>::None))
        .filter(E::ID.eq(id))
        .filter(E::LOCKED_BY.eq(worker))
        .exec(conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

async fn list<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
    limit: u32,
) -> Result<Vec<OutboxMessage>, StoreError> {
    E::find()
        .order_by_asc(E::CREATED_AT)
        .order_by_asc(E::ID)
        .limit(u64::from(limit))
        .all(conn)
        .await
        .map_err(store_error)?
        .into_iter()
        .map(E::message)
        .collect()
}

async fn retry_failed<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
    id: Option<&str>,
    now: i64,
) -> Result<u64, StoreError> {
    let mut update = E::update_many()
        .col_expr(E::STATUS, Expr::value(OutboxStatus::Pending.as_str()))
        .col_expr(E::ATTEMPTS, Expr::value(0_i64))
        .col_expr(E::NEXT_ATTEMPT_AT, Expr::value(now))
        .col_expr(E::LOCKED_UNTIL, Expr::value(0_i64))
        .col_expr(E::LOCKED_BY, Expr::value(Option::<String>::None))
        .filter(E::STATUS.eq(OutboxStatus::Failed.as_str()));
    if let Some(id) = id {
        update = update.filter(E::ID.eq(id));
    }
    let done = update.exec(conn).await.map_err(store_error)?;
    Ok(done.rows_affected)
}

/// Messages by status: `(pending, failed)`, two indexed counts.
pub(crate) async fn depth<E: OutboxTable, C: ConnectionTrait>(
    conn: &C,
) -> Result<(u64, u64), StoreError> {
    let count = |status: OutboxStatus| E::find().filter(E::STATUS.eq(status.as_str())).count(conn);
    let pending = count(OutboxStatus::Pending).await.map_err(store_error)?;
    let failed = count(OutboxStatus::Failed).await.map_err(store_error)?;
    Ok((pending, failed))
}

/// Implements `OutboxStore` for a type over the outbox table `$table`, reached by `$db`.
macro_rules! outbox_store {
    ($table:ty, |$queue:ident| $db:expr) => {
        async fn enqueue(&self, message: NewOutboxMessage) -> Result<(), StoreError> {
            let $queue = self;
            enqueue::<$table, _>($db, message).await
        }

        async fn claim(
            &self,
            now: i64,
            lease_seconds: i64,
            limit: u32,
            worker: &str,
        ) -> Result<Vec<OutboxMessage>, StoreError> {
            let $queue = self;
            claim::<$table, _>($db, now, lease_seconds, limit, worker).await
        }

        async fn delete_sent(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
            let $queue = self;
            delete_sent::<$table, _>($db, id, worker).await
        }

        async fn record_failure(
            &self,
            id: &str,
            worker: &str,
            error: &str,
            next_attempt_at: Option<i64>,
        ) -> Result<(), StoreError> {
            let $queue = self;
            record_failure::<$table, _>($db, id, worker, error, next_attempt_at).await
        }

        async fn list_outbox(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
            let $queue = self;
            list::<$table, _>($db, limit).await
        }

        async fn retry_failed(&self, id: Option<&str>, now: i64) -> Result<u64, StoreError> {
            let $queue = self;
            retry_failed::<$table, _>($db, id, now).await
        }
    };
}

impl<U, O, T, S, R, M> OutboxStore for SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    outbox_store!(mail_outbox::Entity, |store| &store.db);
}

impl<U, O, T, S, R, M> crate::WebhookOutbox<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    /// Deliveries by status: `(pending, failed)` (for metrics).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn depth(&self) -> Result<(u64, u64), StoreError> {
        depth::<webhook_outbox::Entity, _>(&self.0.db).await
    }
}

impl<U, O, T, S, R, M> OutboxStore for crate::WebhookOutbox<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    outbox_store!(webhook_outbox::Entity, |queue| &queue.0.db);
}

impl<U, O, T, S, R, M> SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    /// Mail by status: `(pending, failed)` (for metrics).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn outbox_depth(&self) -> Result<(u64, u64), StoreError> {
        depth::<mail_outbox::Entity, _>(&self.db).await
    }
}

//! The core's `OutboxStore` over the [`crate::entity::mail_outbox`] entity.
//!
//! A claim is a compare-and-swap per row: `UPDATE ... SET locked_until, locked_by WHERE id = ?
//! AND status = 'pending' AND locked_until <= now`. Of two workers that picked the same due
//! row, the database lets one update it (PostgreSQL and InnoDB re-check the condition on the
//! row they waited for; SQLite runs one writer at a time) and the other changes nothing, so no
//! message is held by two workers while its lease runs.

use axum_users::{NewOutboxMessage, OutboxMessage, OutboxStatus, OutboxStore, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::mail_outbox::{self, Column};
use crate::error::store_error;
use crate::{SeaOrmStore, StoreEntity, UserEntity};

/// Longest stored error text: enough for an SMTP reply.
const MAX_ERROR: usize = 1000;

fn message_from_model(model: mail_outbox::Model) -> Result<OutboxMessage, StoreError> {
    let status = OutboxStatus::parse(&model.status).ok_or_else(|| {
        StoreError::Backend(format!("unknown outbox status {:?}", model.status).into())
    })?;
    Ok(OutboxMessage {
        id: model.id,
        recipient: model.recipient,
        kind: model.kind,
        sealed: model.sealed,
        status,
        attempts: u32::try_from(model.attempts).unwrap_or(u32::MAX),
        next_attempt_at: model.next_attempt_at,
        locked_until: model.locked_until,
        last_error: model.last_error,
        created_at: model.created_at,
    })
}

impl<U, O, T, S, R> OutboxStore for SeaOrmStore<U, O, T, S, R>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
{
    async fn enqueue(&self, message: NewOutboxMessage) -> Result<(), StoreError> {
        let row = mail_outbox::ActiveModel {
            id: ActiveValue::Set(message.id),
            recipient: ActiveValue::Set(message.recipient),
            kind: ActiveValue::Set(message.kind),
            sealed: ActiveValue::Set(message.sealed),
            status: ActiveValue::Set(OutboxStatus::Pending.as_str().to_owned()),
            attempts: ActiveValue::Set(0),
            next_attempt_at: ActiveValue::Set(message.created_at),
            locked_until: ActiveValue::Set(0),
            locked_by: ActiveValue::Set(None),
            last_error: ActiveValue::Set(None),
            created_at: ActiveValue::Set(message.created_at),
        };
        mail_outbox::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn claim(
        &self,
        now: i64,
        lease_seconds: i64,
        limit: u32,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let candidates = mail_outbox::Entity::find()
            .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
            .filter(Column::NextAttemptAt.lte(now))
            .filter(Column::LockedUntil.lte(now))
            .order_by_asc(Column::NextAttemptAt)
            .order_by_asc(Column::CreatedAt)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        let until = now.saturating_add(lease_seconds);
        let mut claimed = Vec::with_capacity(candidates.len());
        for model in candidates {
            let taken = mail_outbox::Entity::update_many()
                .col_expr(Column::LockedUntil, Expr::value(until))
                .col_expr(Column::LockedBy, Expr::value(worker))
                .filter(Column::Id.eq(model.id.as_str()))
                .filter(Column::Status.eq(OutboxStatus::Pending.as_str()))
                .filter(Column::LockedUntil.lte(now))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            if taken.rows_affected == 1 {
                let mut message = message_from_model(model)?;
                message.locked_until = until;
                claimed.push(message);
            }
        }
        Ok(claimed)
    }

    async fn delete_sent(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let done = mail_outbox::Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::LockedBy.eq(worker))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected == 1)
    }

    async fn record_failure(
        &self,
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
        mail_outbox::Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::LastError, Expr::value(error))
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(
                Column::NextAttemptAt,
                Expr::value(next_attempt_at.unwrap_or(0)),
            )
            .col_expr(Column::LockedUntil, Expr::value(0_i64))
            .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
            .filter(Column::Id.eq(id))
            .filter(Column::LockedBy.eq(worker))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn list_outbox(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        mail_outbox::Entity::find()
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(message_from_model)
            .collect()
    }

    async fn retry_failed(&self, id: Option<&str>, now: i64) -> Result<u64, StoreError> {
        let mut update = mail_outbox::Entity::update_many()
            .col_expr(Column::Status, Expr::value(OutboxStatus::Pending.as_str()))
            .col_expr(Column::Attempts, Expr::value(0_i64))
            .col_expr(Column::NextAttemptAt, Expr::value(now))
            .col_expr(Column::LockedUntil, Expr::value(0_i64))
            .col_expr(Column::LockedBy, Expr::value(Option::<String>::None))
            .filter(Column::Status.eq(OutboxStatus::Failed.as_str()));
        if let Some(id) = id {
            update = update.filter(Column::Id.eq(id));
        }
        let done = update.exec(&self.db).await.map_err(store_error)?;
        Ok(done.rows_affected)
    }
}

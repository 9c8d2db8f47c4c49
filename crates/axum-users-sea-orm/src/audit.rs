//! The core's `AuditStore` over the [`crate::entity::audit_event`] entity: appended (with the
//! webhook deliveries of the event, in one transaction, see `webhooks.rs`), read newest first
//! through an index (`(created_at, id)`, `(user_id, created_at, id)` or
//! `(event_type, created_at, id)`), pruned by age.

use axum_users::auth::BoxFuture;
use axum_users::{
    AuditCursor, AuditEvent, AuditPage, AuditQuery, AuditRecord, AuditStore, StoreError,
};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use crate::entity::audit_event::{self, Column};
use crate::error::store_error;
use crate::{MfaEntities, SeaOrmStore, StoreEntity, UserEntity};

/// The longest stored detail (the column's length).
const MAX_DETAIL: usize = 200;

/// A stored record, or `None` for a type this version does not know (written by a newer one).
fn record_from_model(model: audit_event::Model) -> Option<AuditRecord> {
    let event = AuditEvent::from_parts(
        &model.event_type,
        model.reason.as_deref(),
        model.detail.as_deref(),
    )?;
    let mut record = AuditRecord::new(event);
    record.id = model.id;
    record.at = model.created_at;
    record.user_id = model.user_id;
    record.actor_id = model.actor_id;
    record.ip = model.ip;
    record.user_agent = model.user_agent;
    Some(record)
}

fn active_model(record: &AuditRecord) -> audit_event::ActiveModel {
    let event = &record.event;
    audit_event::ActiveModel {
        id: ActiveValue::Set(record.id.clone()),
        created_at: ActiveValue::Set(record.at),
        event_type: ActiveValue::Set(event.kind().to_owned()),
        user_id: ActiveValue::Set(record.user_id.clone()),
        actor_id: ActiveValue::Set(record.actor_id.clone()),
        ip: ActiveValue::Set(record.ip.clone()),
        user_agent: ActiveValue::Set(record.user_agent.clone()),
        outcome: ActiveValue::Set(event.outcome().to_owned()),
        reason: ActiveValue::Set(event.reason().map(str::to_owned)),
        detail: ActiveValue::Set(event.detail().map(|d| d.chars().take(MAX_DETAIL).collect())),
    }
}

impl<U, O, T, S, R, M> AuditStore for SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    fn append<'a>(&'a self, record: &'a AuditRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let row = audit_event::Entity::insert(active_model(record));
            let deliveries = self.webhooks.deliveries(record);
            if deliveries.is_empty() {
                row.exec_without_returning(&self.db)
                    .await
                    .map_err(store_error)?;
                return Ok(());
            }
            // The event and its deliveries are stored together or not at all.
            let txn = self.db.begin().await.map_err(store_error)?;
            row.exec_without_returning(&txn)
                .await
                .map_err(store_error)?;
            crate::webhooks::queue_in(&txn, deliveries).await?;
            txn.commit().await.map_err(store_error)
        })
    }

    fn list_events<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<AuditPage, StoreError>> {
        Box::pin(async move {
            let mut select = audit_event::Entity::find();
            if let Some(user) = &query.user_id {
                select = select.filter(Column::UserId.eq(user.as_str()));
            }
            if let Some(kind) = &query.kind {
                select = select.filter(Column::EventType.eq(kind.as_str()));
            }
            if let Some(since) = query.since {
                select = select.filter(Column::CreatedAt.gte(since));
            }
            if let Some(cursor) = &query.before {
                let key = Expr::tuple([Expr::col(Column::CreatedAt), Expr::col(Column::Id)]);
                let at = Expr::tuple([Expr::val(cursor.at), Expr::val(cursor.id.as_str())]);
                select = select.filter(key.lt(at));
            }
            let size = query.page_size() as usize;
            let rows = select
                .order_by_desc(Column::CreatedAt)
                .order_by_desc(Column::Id)
                .limit(u64::from(query.page_size()) + 1)
                .all(&self.db)
                .await
                .map_err(store_error)?;
            let more = rows.len() > size;
            let mut items = Vec::with_capacity(size);
            let mut last = None;
            for model in rows.into_iter().take(size) {
                last = Some(AuditCursor {
                    at: model.created_at,
                    id: model.id.clone(),
                });
                items.extend(record_from_model(model));
            }
            Ok(AuditPage {
                items,
                next_cursor: if more { last } else { None },
            })
        })
    }

    fn prune_events<'a>(&'a self, before: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = audit_event::Entity::delete_many()
                .filter(Column::CreatedAt.lt(before))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected)
        })
    }
}

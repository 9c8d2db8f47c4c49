//! Webhook deliveries in the `webhook_outbox` table (migration 8). A store given routes
//! ([`SqlStore::with_webhooks`]) queues the deliveries of an audit event in the transaction
//! that appends it (`audit.rs`): the event and its deliveries are stored together or not at
//! all, so a crash between the two cannot lose a delivery, and no delivery can exist for an
//! event that was not recorded.

use axum_users::{
    AuditRecord, NewOutboxMessage, OutboxMessage, OutboxStore, StoreError, UserFields,
    WebhookRoutes,
};

use super::SqlStore;
use super::outbox::{WEBHOOKS, outbox_store};
use crate::db::{Arg, Tx};
use crate::id::SqlId;

/// The queue of webhook deliveries of a [`SqlStore`]'s database: an [`OutboxStore`] whose
/// messages are deliveries (`recipient`: the endpoint's name, `kind`: the event type,
/// `sealed`: the JSON body, in clear: it holds no secret).
pub struct WebhookOutbox<Id = uuid::Uuid, F = axum_users::NoFields>(SqlStore<Id, F>);

impl<Id, F> Clone for WebhookOutbox<Id, F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<Id, F> std::fmt::Debug for WebhookOutbox<Id, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOutbox").finish_non_exhaustive()
    }
}

impl<Id: SqlId, F: UserFields> WebhookOutbox<Id, F> {
    /// Deliveries by status: `(pending, failed)` (for metrics; one indexed count).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn depth(&self) -> Result<(u64, u64), StoreError> {
        WEBHOOKS.depth(&self.0.db).await
    }
}

outbox_store!(WebhookOutbox, WEBHOOKS, |queue| &queue.0.db);

impl<Id: SqlId, F: UserFields> SqlStore<Id, F> {
    /// This store, queueing a delivery of each audit event it appends to every endpoint of
    /// `routes` that wants its type, in the same transaction. Set it before the store is
    /// cloned into the application: clones made earlier keep the routes they had.
    pub fn with_webhooks(mut self, routes: WebhookRoutes) -> Self {
        self.webhooks = std::sync::Arc::new(routes);
        self
    }

    /// The queue of webhook deliveries, for the worker that sends them and for `webhooks list`.
    pub fn webhook_outbox(&self) -> WebhookOutbox<Id, F> {
        WebhookOutbox(self.clone())
    }

    /// The deliveries `record` needs under this store's routes.
    pub(crate) fn webhook_deliveries(&self, record: &AuditRecord) -> Vec<NewOutboxMessage> {
        self.webhooks.deliveries(record)
    }
}

/// Inserts `deliveries` in `tx` (the audit record's transaction).
pub(crate) async fn queue_in(
    tx: &mut Tx,
    deliveries: Vec<NewOutboxMessage>,
) -> Result<(), StoreError> {
    for delivery in deliveries {
        let (sql, args): (String, Vec<Arg>) = WEBHOOKS.insert(delivery);
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

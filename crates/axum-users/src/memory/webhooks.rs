//! Webhook deliveries in memory: a store of their own whose mail outbox is their queue, so that
//! they follow the same claim and lease rules as every other outbox.

use super::MemoryStore;
use crate::audit::AuditRecord;
use crate::model::{UserFields, UserId};
use crate::outbox::OutboxStore;
use crate::store::StoreError;
use crate::webhooks::WebhookRoutes;

impl<Id: UserId, F: UserFields> MemoryStore<Id, F> {
    /// Queues a delivery of each audit event this store appends to every endpoint of `routes`
    /// that wants its type; returns the queue (its [`OutboxStore`] holds the deliveries).
    pub fn with_webhooks(&self, routes: WebhookRoutes) -> Self {
        let queue = Self::new();
        let _ = self.with(|t| {
            t.webhooks = Some((routes, queue.clone()));
            Ok(())
        });
        queue
    }
}

/// Queues the deliveries of `record` (right after the record: memory has no transaction).
pub(super) async fn queue<Id: UserId, F: UserFields>(
    webhooks: Option<(WebhookRoutes, MemoryStore<Id, F>)>,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    let Some((routes, queue)) = webhooks else {
        return Ok(());
    };
    for delivery in routes.deliveries(record) {
        queue.enqueue(delivery).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::MemoryStore;
    use crate::testing;

    #[tokio::test]
    async fn the_memory_store_queues_webhooks() {
        let store = MemoryStore::<uuid::Uuid>::new();
        let queue = store.with_webhooks(testing::conformance_routes());
        testing::webhook_queueing(&store, &queue, false).await;
        testing::outbox_store(&queue).await;
    }
}

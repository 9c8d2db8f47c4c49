//! Webhook deliveries in the [`crate::entity::webhook_outbox`] entity. A store given routes
//! ([`SeaOrmStore::with_webhooks`]) queues the deliveries of an audit event in the transaction
//! that appends it (`audit.rs`): the event and its deliveries are stored together or not at
//! all, so a crash between the two cannot lose a delivery, and no delivery exists for an event
//! that was not recorded. The application's sender claims them from
//! [`SeaOrmStore::webhook_outbox`] (see `docs/sea-orm.md`).

use axum_users::{NewOutboxMessage, StoreError, WebhookRoutes};
use sea_orm::ConnectionTrait;

use crate::entity::webhook_outbox;
use crate::{MfaEntities, SeaOrmStore, StoreEntity, UserEntity};

/// The queue of webhook deliveries of a [`SeaOrmStore`]'s database: an `OutboxStore` whose
/// messages are deliveries (`recipient`: the endpoint's name, `kind`: the event type,
/// `sealed`: the JSON body, in clear: it holds no secret).
pub struct WebhookOutbox<
    U: UserEntity = crate::entity::user::Entity,
    O: StoreEntity = crate::entity::oauth_account::Entity,
    T: StoreEntity = crate::entity::access_token::Entity,
    S: StoreEntity = crate::entity::session::Entity,
    R: StoreEntity = crate::entity::session_rotated_token::Entity,
    M: MfaEntities = crate::entity::Mfa,
>(pub(crate) SeaOrmStore<U, O, T, S, R, M>);

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    Clone for WebhookOutbox<U, O, T, S, R, M>
{
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    std::fmt::Debug for WebhookOutbox<U, O, T, S, R, M>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOutbox").finish_non_exhaustive()
    }
}

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    SeaOrmStore<U, O, T, S, R, M>
{
    /// This store, queueing a delivery of each audit event it appends to every endpoint of
    /// `routes` that wants its type, in the same transaction. Set it before the store is
    /// cloned into the application: clones made earlier keep the routes they had.
    pub fn with_webhooks(mut self, routes: WebhookRoutes) -> Self {
        self.webhooks = std::sync::Arc::new(routes);
        self
    }

    /// The queue of webhook deliveries, for the worker that sends them.
    pub fn webhook_outbox(&self) -> WebhookOutbox<U, O, T, S, R, M> {
        WebhookOutbox(self.clone())
    }
}

/// Inserts `deliveries` through `conn` (the audit record's transaction).
pub(crate) async fn queue_in<C: ConnectionTrait>(
    conn: &C,
    deliveries: Vec<NewOutboxMessage>,
) -> Result<(), StoreError> {
    for delivery in deliveries {
        crate::outbox::enqueue::<webhook_outbox::Entity, _>(conn, delivery).await?;
    }
    Ok(())
}

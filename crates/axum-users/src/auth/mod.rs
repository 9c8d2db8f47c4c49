//! Authentication backends (transport x strategy) and the authenticator that tries them in order.

mod strategy;
mod transport;

use std::sync::Arc;

use http::HeaderMap;

pub use strategy::{BoxFuture, DatabaseStrategy, JwtStrategy, Strategy};
pub use transport::{CookieSettings, SameSite, Transport, read_cookie};

use crate::error::ApiError;
use crate::model::{User, UserFields, UserId};
use crate::store::UserStore;

/// A named way to authenticate: a transport carrying a strategy's tokens.
pub struct AuthBackend<Id> {
    /// The name, also the path segment of its login route (`/auth/{name}/login`).
    pub name: String,
    /// How the token travels.
    pub transport: Transport,
    /// What the token is.
    pub strategy: Arc<dyn Strategy<Id>>,
}

impl<Id> Clone for AuthBackend<Id> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            transport: self.transport.clone(),
            strategy: self.strategy.clone(),
        }
    }
}

impl<Id> std::fmt::Debug for AuthBackend<Id> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBackend")
            .field("name", &self.name)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl<Id: UserId> AuthBackend<Id> {
    /// A backend from its parts.
    pub fn new(name: impl Into<String>, transport: Transport, strategy: impl Strategy<Id>) -> Self {
        Self {
            name: name.into(),
            transport,
            strategy: Arc::new(strategy),
        }
    }
}

/// What a route requires of the current user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Inactive users are refused with 401.
    pub active: bool,
    /// Unverified users are refused with 403.
    pub verified: bool,
    /// Non-superusers are refused with 403.
    pub superuser: bool,
}

impl Requirements {
    /// Applies the reference's status rules: no user or inactive → 401; else unverified or not a
    /// superuser where required → 403.
    ///
    /// # Errors
    /// 401 or 403 [`ApiError`].
    pub fn check<Id, F>(&self, user: Option<&User<Id, F>>) -> Result<(), ApiError> {
        let Some(user) = user else {
            return Err(ApiError::unauthorized());
        };
        if self.active && !user.is_active {
            return Err(ApiError::unauthorized());
        }
        if (self.verified && !user.is_verified) || (self.superuser && !user.is_superuser) {
            return Err(ApiError::forbidden());
        }
        Ok(())
    }
}

/// A user found by a backend, with the token that proved it.
#[derive(Debug, Clone)]
pub struct Authenticated<Id, F> {
    /// The user, read fresh from the store.
    pub user: User<Id, F>,
    /// The token presented.
    pub token: String,
}

/// Finds the current user of a request; type-erased over the store, so that extractors only
/// name the user type.
pub trait Authenticate<Id, F>: Send + Sync + 'static {
    /// The first backend, in order, whose transport carries a token its strategy accepts and
    /// whose user exists.
    fn authenticate<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Authenticated<Id, F>>, ApiError>>;
}

/// The backends over a store.
pub(crate) struct Authenticator<S: UserStore> {
    pub(crate) backends: Vec<AuthBackend<S::Id>>,
    pub(crate) store: S,
}

impl<S: UserStore> Authenticate<S::Id, S::Fields> for Authenticator<S> {
    fn authenticate<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Authenticated<S::Id, S::Fields>>, ApiError>> {
        Box::pin(async move {
            // A backend whose service is down does not hide the others: its error counts only
            // when no backend accepts the request.
            let mut outage = None;
            for backend in &self.backends {
                let Some(token) = backend.transport.read(headers) else {
                    continue;
                };
                let id = match backend.strategy.read_token(&token).await {
                    Ok(Some(id)) => id,
                    Ok(None) => continue,
                    Err(e) => {
                        outage = Some(e);
                        continue;
                    }
                };
                match self.store.get(&id).await {
                    Ok(Some(user)) => return Ok(Some(Authenticated { user, token })),
                    Ok(None) => {}
                    Err(e) => outage = Some(e),
                }
            }
            match outage {
                Some(e) => Err(e.into()),
                None => Ok(None),
            }
        })
    }
}

/// The authenticator as request extension, so extractors can find it: add it with
/// [`crate::AxumUsers::layer`].
pub struct AuthExtension<Id, F>(pub(crate) Arc<dyn Authenticate<Id, F>>);

impl<Id, F> Clone for AuthExtension<Id, F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<Id: UserId, F: UserFields> AuthExtension<Id, F> {
    /// Authenticates and applies `requirements`.
    ///
    /// # Errors
    /// 401/403, or 503 when a store is down.
    pub async fn require(
        &self,
        headers: &HeaderMap,
        requirements: Requirements,
    ) -> Result<Authenticated<Id, F>, ApiError> {
        let found = self.0.authenticate(headers).await?;
        requirements.check(found.as_ref().map(|a| &a.user))?;
        found.ok_or_else(ApiError::unauthorized)
    }
}

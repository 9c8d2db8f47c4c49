//! Authentication backends (transport x strategy) and the authenticator that tries them in order.

mod strategy;
mod transport;

use std::sync::Arc;

use http::request::Parts;

pub use strategy::{
    BoxFuture, DatabaseStrategy, IssuedToken, JwtStrategy, Strategy, StrategyError, TokenOwner,
};
#[cfg(feature = "oauth")]
pub(crate) use transport::cookie_values;
pub(crate) use transport::no_store;
pub use transport::{CookieSettings, SameSite, Transport, read_cookie};

use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::manager::UserManager;
use crate::model::{User, UserFields, UserId};
use crate::secret::Secret;
use crate::store::UserStore;

impl From<StrategyError> for ApiError {
    fn from(e: StrategyError) -> Self {
        match e {
            StrategyError::Unavailable(cause) => {
                tracing::warn!(%cause, "token store unavailable");
                ApiError::unavailable()
            }
            other => ApiError::internal(&other),
        }
    }
}

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
#[non_exhaustive]
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
    pub token: Secret,
    /// The name of the backend that accepted it.
    pub backend: String,
    /// The session the token belongs to, when it belongs to one.
    pub session_id: Option<String>,
}

/// Finds the current user of a request; type-erased over the store, so that extractors only
/// name the user type.
pub trait Authenticate<Id, F>: Send + Sync + 'static {
    /// The first backend, in order, whose transport carries a token its strategy accepts and
    /// whose user exists.
    ///
    /// # Errors
    /// 503 when a token store is down and no other backend accepted the request; 403
    /// `CSRF_ORIGIN_MISMATCH` for a cookie-authenticated state-changing request from another site.
    fn authenticate<'a>(
        &'a self,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<Authenticated<Id, F>>, ApiError>>;
}

/// The backends, resolving users through the manager.
pub(crate) struct Authenticator<S: UserStore, H> {
    pub(crate) backends: Vec<AuthBackend<S::Id>>,
    pub(crate) manager: UserManager<S, H>,
    pub(crate) origins: OriginPolicy,
}

impl<S: UserStore, H: UserHooks<S::Id, S::Fields>> Authenticate<S::Id, S::Fields>
    for Authenticator<S, H>
{
    fn authenticate<'a>(
        &'a self,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<Option<Authenticated<S::Id, S::Fields>>, ApiError>> {
        Box::pin(async move {
            // A backend whose service is down does not hide the others: its error counts only
            // when no backend accepts the request.
            let mut outage = None;
            for backend in &self.backends {
                let Some(token) = backend.transport.read(&request.headers) else {
                    continue;
                };
                let owner = match backend.strategy.read_token_owner(&token).await {
                    Ok(Some(owner)) => owner,
                    Ok(None) => continue,
                    Err(e) => {
                        outage = Some(ApiError::from(e));
                        continue;
                    }
                };
                // A token no revocation can reach is refused once sessions exist.
                if owner.session_id.is_none()
                    && owner.needs_session
                    && self.manager.sessions().is_some()
                {
                    continue;
                }
                let session_id = owner.session_id;
                let user = match &session_id {
                    Some(sid) if owner.revocable => {
                        self.manager.user_of_session(&owner.user_id, sid).await
                    }
                    _ if owner.fastapi_users => {
                        self.manager
                            .user_of_fastapi_users_token(&owner.user_id)
                            .await
                    }
                    _ => self.manager.user_of_token(&owner.user_id).await,
                };
                match user {
                    Ok(Some(user)) => {
                        if backend.transport.is_cookie() {
                            self.origins.check(request)?;
                        }
                        return Ok(Some(Authenticated {
                            user,
                            token: Secret::new(token),
                            backend: backend.name.clone(),
                            session_id,
                        }));
                    }
                    Ok(None) => {}
                    Err(e) => outage = Some(crate::routes::server_error(e)),
                }
            }
            match outage {
                Some(e) => Err(e),
                None => Ok(None),
            }
        })
    }
}

/// Which sites may send cookie requests that change state: the API's own origin, the trusted
/// origins, `Origin: null` only when `Sec-Fetch-Site` says same-origin, and clients that send
/// no `Origin` at all (not browsers). The API's own origin is the public URL's (scheme, host
/// and port: `http://` + our host, served by a network attacker, is another origin); only
/// without a public URL is it the request's `Host`, whatever the scheme. `strict_compat` turns
/// the check off, as in the reference.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginPolicy {
    pub(crate) disabled: bool,
    /// Serialized origins (`https://app.example.com`), see [`serialized_origin`].
    pub(crate) trusted: Vec<String>,
    /// The public URL's serialized origin.
    pub(crate) public: Option<String>,
}

/// The ASCII serialization of a URL's origin (`scheme://host[:port]`, lower case, no default
/// port), the form browsers send in `Origin`; `None` for what has no such origin.
pub(crate) fn serialized_origin(url: &str) -> Option<String> {
    let origin = webauthn_rs::prelude::Url::parse(url.trim()).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

impl OriginPolicy {
    /// The policy of a configuration: `trusted` origins and the `public_url`, both compared
    /// as origins.
    pub(crate) fn new(disabled: bool, trusted: &[String], public_url: Option<&str>) -> Self {
        Self {
            disabled,
            trusted: trusted
                .iter()
                .filter_map(|t| serialized_origin(t))
                .collect(),
            public: public_url.and_then(serialized_origin),
        }
    }

    /// # Errors
    /// 403 `CSRF_ORIGIN_MISMATCH`.
    pub(crate) fn check(&self, request: &Parts) -> Result<(), ApiError> {
        let safe = matches!(
            request.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if self.disabled || safe {
            return Ok(());
        }
        let header = |name: http::HeaderName| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let fetch_site = header(http::HeaderName::from_static("sec-fetch-site"));
        let origin = header(http::header::ORIGIN);
        if origin == Some("null") {
            // An opaque origin (a sandboxed frame, a redirect, a `no-referrer` form): only the
            // browser's own word that the request is same-origin lets it through.
            return match fetch_site {
                Some("same-origin") => Ok(()),
                _ => Err(ApiError::code(ErrorCode::CsrfOriginMismatch)),
            };
        }
        let Some(origin) = origin else {
            return match fetch_site {
                Some("cross-site") => Err(ApiError::code(ErrorCode::CsrfOriginMismatch)),
                _ => Ok(()),
            };
        };
        let Some(origin) = serialized_origin(origin) else {
            return Err(ApiError::code(ErrorCode::CsrfOriginMismatch));
        };
        let ours = match &self.public {
            Some(public) => *public == origin,
            None => {
                let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
                let host = header(http::header::HOST).unwrap_or_default();
                !authority.is_empty() && authority.eq_ignore_ascii_case(host)
            }
        };
        if ours || self.trusted.contains(&origin) {
            Ok(())
        } else {
            Err(ApiError::code(ErrorCode::CsrfOriginMismatch))
        }
    }
}

/// The authenticator of one store's users, as the extractors get it from the router state
/// ([`crate::UsersState::authenticator`]).
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
        request: &Parts,
        requirements: Requirements,
    ) -> Result<Authenticated<Id, F>, ApiError> {
        let found = self.0.authenticate(request).await?;
        requirements.check(found.as_ref().map(|a| &a.user))?;
        found.ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri("/users/me");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn an_opaque_origin_passes_only_when_the_browser_says_same_origin() {
        let policy = OriginPolicy::default();
        let host = ("host", "api.example.com");
        let null = ("origin", "null");
        let verdict = |headers: &[(&str, &str)]| policy.check(&request("POST", headers)).is_ok();
        assert!(verdict(&[host, null, ("sec-fetch-site", "same-origin")]));
        for site in ["same-site", "cross-site", "none"] {
            assert!(!verdict(&[host, null, ("sec-fetch-site", site)]), "{site}");
        }
        assert!(
            !verdict(&[host, null]),
            "a browser without Fetch Metadata sending an opaque origin"
        );
    }

    #[test]
    fn cookie_requests_from_other_sites_are_refused_unless_trusted() {
        let policy = OriginPolicy::new(false, &["https://app.example.com/".into()], None);
        let host = ("host", "api.example.com");
        let refused = |r: Parts| {
            policy.check(&r).unwrap_err().error_code() == Some(ErrorCode::CsrfOriginMismatch)
        };
        assert!(refused(request(
            "PATCH",
            &[host, ("origin", "https://evil.example")]
        )));
        assert!(refused(request(
            "DELETE",
            &[host, ("sec-fetch-site", "cross-site")]
        )));
        assert!(
            policy
                .check(&request(
                    "PATCH",
                    &[host, ("origin", "https://api.example.com")]
                ))
                .is_ok()
        );
        assert!(
            policy
                .check(&request(
                    "PATCH",
                    &[host, ("origin", "https://app.example.com")]
                ))
                .is_ok()
        );
        assert!(
            policy
                .check(&request(
                    "PATCH",
                    &[host, ("sec-fetch-site", "same-origin")]
                ))
                .is_ok()
        );
        assert!(
            policy.check(&request("PATCH", &[host])).is_ok(),
            "no browser, no CSRF"
        );
        assert!(
            policy
                .check(&request("GET", &[host, ("origin", "https://evil.example")]))
                .is_ok()
        );
        let compat = OriginPolicy::new(true, &[], None);
        assert!(
            compat
                .check(&request(
                    "PATCH",
                    &[host, ("origin", "https://evil.example")]
                ))
                .is_ok()
        );
    }

    #[test]
    fn with_a_public_url_the_whole_origin_is_compared_not_the_host() {
        let policy = OriginPolicy::new(
            false,
            &["https://app.example.com".into()],
            Some("https://api.example.com/base"),
        );
        let host = ("host", "api.example.com");
        let verdict = |origin: &str| {
            policy
                .check(&request("POST", &[host, ("origin", origin)]))
                .map_err(|e| e.error_code())
        };
        let refused = Err(Some(ErrorCode::CsrfOriginMismatch));
        assert_eq!(verdict("https://api.example.com"), Ok(()));
        assert_eq!(
            verdict("https://API.example.com:443"),
            Ok(()),
            "the same origin"
        );
        assert_eq!(
            verdict("http://api.example.com"),
            refused,
            "plain http served by a network attacker"
        );
        assert_eq!(
            verdict("https://api.example.com:8443"),
            refused,
            "another port"
        );
        assert_eq!(verdict("https://app.example.com"), Ok(()), "trusted");
        assert_eq!(
            verdict("http://app.example.com"),
            refused,
            "trusted is https only"
        );
        assert_eq!(verdict("not an origin"), refused);
        assert!(
            policy
                .check(&request(
                    "POST",
                    &[host, ("origin", "null"), ("sec-fetch-site", "same-origin")]
                ))
                .is_ok(),
            "the hosted pages' opaque origin"
        );
        // Without a public URL, the request's Host stands in for it (scheme unchecked).
        let by_host = OriginPolicy::new(false, &[], None);
        assert!(
            by_host
                .check(&request(
                    "POST",
                    &[host, ("origin", "http://api.example.com")]
                ))
                .is_ok()
        );
    }
}

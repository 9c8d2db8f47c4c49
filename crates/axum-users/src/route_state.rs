//! [`RouteState`]: what the routes share, in a module of its own so that the routes depend on
//! it and never on [`crate::app`] (which builds it and hands out the routers), and
//! [`SecurityPolicy`], the switches both read.

use std::sync::Arc;

#[cfg(feature = "oauth")]
use crate::auth::CookieSettings;
use crate::auth::{AuthBackend, AuthExtension, Authenticator};
use crate::hooks::UserHooks;
use crate::manager::UserManager;
use crate::store::UserStore;
#[cfg(feature = "oauth")]
use crate::tokens::JwtCodec;

/// What every route shares: the manager, the authenticator, the policy, the background jobs
/// and the OAuth settings. Built once by `AxumUsersBuilder::build`.
pub(crate) struct RouteState<S: UserStore, H> {
    pub(crate) manager: UserManager<S, H>,
    pub(crate) auth: Arc<Authenticator<S, H>>,
    pub(crate) policy: SecurityPolicy,
    #[cfg(feature = "oauth")]
    pub(crate) oauth: OAuthSettings,
    /// `POST /register` sends the verification mail (`on_after_request_verify`) by itself.
    pub(crate) send_verification_on_register: bool,
}

/// How many jobs of one kind (forgot-password, request-verify, register's verification mail:
/// each its own budget) may run or wait at once; beyond it the request still answers as usual
/// and the job is dropped with a warning. Each job is abandoned after 60 s.
pub(crate) const BACKGROUND_JOBS: usize = 64;

/// The OAuth clients and what their routes share.
#[cfg(feature = "oauth")]
pub(crate) struct OAuthSettings {
    pub(crate) clients: Vec<crate::OAuthClient>,
    pub(crate) public_url: String,
    pub(crate) csrf_cookie: CookieSettings,
    pub(crate) state_codec: JwtCodec,
    pub(crate) login_codes: crate::routes::oauth::LoginCodes,
}

impl<S: UserStore, H: UserHooks<S::Id, S::Fields>> RouteState<S, H> {
    pub(crate) fn extension(&self) -> AuthExtension<S::Id, S::Fields> {
        AuthExtension(self.auth.clone())
    }

    pub(crate) fn requires_verification(&self) -> bool {
        self.manager.login_rules().requires_verification
    }
}

impl<S: UserStore, H> RouteState<S, H> {
    pub(crate) fn backend(&self, index: usize) -> &AuthBackend<S::Id> {
        &self.auth.backends[index]
    }
}

/// The client-visible rules where axum-users is stricter than FastAPI Users, and the origins a
/// cookie-authenticated browser may send state-changing requests from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecurityPolicy {
    /// Restores the reference's client-visible behaviour (no current password on a self
    /// e-mail or password change, no `Origin` check on cookie requests). The fixes clients
    /// cannot see stay on.
    pub strict_compat: bool,
    /// Origins (`https://app.example.com`) besides the API's own from which a cookie-
    /// authenticated request that changes state is accepted.
    pub trusted_origins: Vec<String>,
}

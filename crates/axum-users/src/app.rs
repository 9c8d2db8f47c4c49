//! [`AxumUsers`]: the one value an application builds, handing out routers and the layer.

use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};

use crate::auth::{
    AuthBackend, AuthExtension, Authenticator, CookieSettings, JwtStrategy, OriginPolicy, Transport,
};
use crate::hooks::{NoHooks, UserHooks};
use crate::keys::KeyRing;
#[cfg(feature = "oauth")]
use crate::keys::Purpose;
use crate::manager::{LoginRules, TokenSettings, UserManager};
use crate::password::{Argon2Params, PasswordError, PasswordHasher};
#[cfg(feature = "oauth")]
use crate::route_state::OAuthSettings;
use crate::route_state::{RouteState, SecurityPolicy};
use crate::routes;
use crate::secret::Secret;
use crate::store::UserStore;

/// User management for an axum application: build it once, mount its routers, add its layer.
///
/// # Examples
/// ```no_run
/// # async fn run(store: impl axum_users::RouterStore<Id = uuid::Uuid, Fields = axum_users::NoFields>) {
/// use axum::{Router, routing::get};
/// use axum_users::{ActiveUser, AxumUsers};
///
/// let users = AxumUsers::builder(store, "a secret of at least 32 bytes, from config!").build().unwrap();
/// let app: Router = Router::new()
///     .route("/hello", get(|ActiveUser(user): ActiveUser<_, _>| async move { format!("Hello {}", user.email) }))
///     .with_state(users.clone())
///     .merge(users.router());
/// # }
/// ```
pub struct AxumUsers<S: UserStore, H = NoHooks> {
    pub(crate) inner: Arc<RouteState<S, H>>,
}

impl<S: UserStore, H> Clone for AxumUsers<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: UserStore> AxumUsers<S, NoHooks> {
    /// Starts a builder over `store`, signing tokens with `secret` (HS256).
    pub fn builder(store: S, secret: impl Into<Secret>) -> AxumUsersBuilder<S, NoHooks> {
        AxumUsersBuilder {
            store,
            secret: secret.into(),
            hooks: NoHooks,
            argon2: Argon2Params::default(),
            jwt_lifetime: Duration::from_secs(3600),
            cookie: CookieSettings::auth(),
            backends: Vec::new(),
            default_backends: true,
            tokens: TokenSettings::default(),
            requires_verification: false,
            policy: SecurityPolicy::default(),
            previous_secrets: Vec::new(),
            defences: crate::limits::Defences::default(),
            sessions: crate::SessionSettings::default(),
            email_change: None,
            mfa: crate::MfaSettings::default(),
            passkeys: None,
            #[cfg(feature = "oauth")]
            oauth_clients: Vec::new(),
            public_url: None,
            send_verification_on_register: false,
        }
    }
}

#[cfg(not(feature = "oauth"))]
/// The store an [`AxumUsers`] with all its routes needs: a [`UserStore`] (with the `oauth`
/// feature, an [`crate::OAuthAccountStore`] too, as every store of this project is).
pub trait RouterStore: UserStore {}
#[cfg(not(feature = "oauth"))]
impl<S: UserStore> RouterStore for S {}
#[cfg(feature = "oauth")]
/// The store an [`AxumUsers`] with all its routes needs: a [`UserStore`] (with the `oauth`
/// feature, an [`crate::OAuthAccountStore`] too, as every store of this project is).
pub trait RouterStore: crate::OAuthAccountStore {}
#[cfg(feature = "oauth")]
impl<S: crate::OAuthAccountStore> RouterStore for S {}

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> AxumUsers<S, H> {
    /// The user manager, for programmatic use (create a superuser, issue tokens...).
    pub fn manager(&self) -> &UserManager<S, H> {
        &self.inner.manager
    }

    /// The client-visible security rules in force (strict compatibility, trusted origins).
    pub fn policy(&self) -> &SecurityPolicy {
        &self.inner.policy
    }

    /// Resolves once no background job is running: the mail work of forgot-password and
    /// request-verify-token that overran its floor (it normally ends before the 202). Such jobs
    /// start before their request is answered, so a test that awaits this after the answer
    /// reads the hook's token without racing it.
    pub async fn background_idle(&self) {
        self.inner.manager.defences().mail_jobs.idle().await;
    }

    /// The backends, in the order they are tried.
    pub fn backends(&self) -> &[AuthBackend<S::Id>] {
        &self.inner.auth.backends
    }

    /// The authenticator as a request extension. The extractors ([`crate::ActiveUser`], ...)
    /// no longer read it: they read the router state (`.with_state(users.clone())`), so that
    /// their types are checked against the store's at compile time.
    #[deprecated(
        since = "0.1.0",
        note = "the extractors read the router state: `.with_state(users.clone())` instead"
    )]
    pub fn layer(&self) -> Extension<AuthExtension<S::Id, S::Fields>> {
        Extension(self.inner.extension())
    }

    /// Every route at FastAPI Users' documented paths: `/auth/{backend}/login|logout`,
    /// `/auth/register`, `/auth/forgot-password`, `/auth/reset-password`,
    /// `/auth/request-verify-token`, `/auth/verify`, `/users/me`, `/users/{id}`, and with the
    /// `oauth` feature the routes of every configured provider and
    /// `/users/me/oauth-accounts` (so no configured provider is left without routes).
    #[allow(clippy::let_and_return)] // with the `oauth` feature off
    pub fn router(&self) -> Router {
        let mut auth = Router::new()
            .merge(self.register_router())
            .merge(self.reset_password_router())
            .merge(self.verify_router());
        for backend in self.backends() {
            if let Some(router) = self.auth_router(&backend.name) {
                auth = auth.nest(&format!("/{}", backend.name), router);
            }
        }
        let router = Router::new()
            .nest("/auth", auth)
            .nest("/users", self.users_router())
            .merge(self.audit_router());
        #[cfg(feature = "oauth")]
        let router = router.merge(self.oauth_router());
        // The extractors read the router state, not an extension: nothing to layer.
        router
    }

    /// `POST /register`.
    pub fn register_router(&self) -> Router {
        routes::register::router(self.inner.clone())
    }

    /// `POST /login` and `POST /logout` of the backend named `name`.
    pub fn auth_router(&self, name: &str) -> Option<Router> {
        let index = self.backends().iter().position(|b| b.name == name)?;
        Some(routes::auth::router(self.inner.clone(), index))
    }

    /// `POST /forgot-password` and `POST /reset-password`.
    pub fn reset_password_router(&self) -> Router {
        routes::reset::router(self.inner.clone())
    }

    /// `POST /request-verify-token`, `POST /verify` and `POST /confirm-email-change`.
    pub fn verify_router(&self) -> Router {
        routes::verify::router(self.inner.clone())
            .merge(routes::email_change::router(self.inner.clone()))
    }

    /// `GET /audit-events` (superusers), mounted at the root by [`AxumUsers::router`].
    pub fn audit_router(&self) -> Router {
        routes::admin::audit_router(self.inner.clone())
    }

    /// `GET|PATCH /me` and `GET|PATCH|DELETE /{id}`, with the sessions routes
    /// (`GET|DELETE /me/sessions`, `DELETE /me/sessions/{id}`, `GET|DELETE /{id}/sessions`) and the
    /// admin routes (`GET|POST /`, `GET /me/security-events`).
    pub fn users_router(&self) -> Router {
        routes::users::router(self.inner.clone())
            .merge(routes::sessions::router(self.inner.clone()))
            .merge(routes::admin::users_router(self.inner.clone()))
            .merge(routes::mfa::users_router(self.inner.clone()))
            .merge(routes::passkeys::users_router(self.inner.clone()))
    }
}

#[cfg(feature = "oauth")]
impl<S: crate::OAuthAccountStore, H: UserHooks<S::Id, S::Fields>> AxumUsers<S, H> {
    /// The OAuth routes of every configured provider at their full paths
    /// (`/auth/{name}/authorize|callback|token`, `/auth/associate/{name}/authorize|callback`)
    /// and `GET /users/me/oauth-accounts`, `DELETE /users/me/oauth-accounts/{id}`.
    /// [`AxumUsers::router`] includes it; use it alone to mount pieces by hand.
    pub fn oauth_router(&self) -> Router {
        routes::oauth::router(self.inner.clone())
    }
}

#[cfg(feature = "oauth")]
impl<S: UserStore, H> AxumUsers<S, H> {
    /// The names of the configured OAuth providers (the `{name}` of their routes).
    pub fn oauth_providers(&self) -> impl Iterator<Item = &str> {
        self.inner.oauth.clients.iter().map(|c| c.provider.name())
    }
}

/// Configures [`AxumUsers`].
pub struct AxumUsersBuilder<S: UserStore, H> {
    store: S,
    secret: Secret,
    hooks: H,
    argon2: Argon2Params,
    jwt_lifetime: Duration,
    cookie: CookieSettings,
    backends: Vec<AuthBackend<S::Id>>,
    default_backends: bool,
    tokens: TokenSettings,
    requires_verification: bool,
    policy: SecurityPolicy,
    previous_secrets: Vec<Secret>,
    /// Rate limits, throttle, password policy: set through the methods in `limits/builder.rs`.
    pub(crate) defences: crate::limits::Defences,
    sessions: crate::SessionSettings,
    /// `None`: confirm, or immediate under `strict_compat`.
    email_change: Option<crate::EmailChangeSettings>,
    mfa: crate::MfaSettings,
    passkeys: Option<crate::PasskeySettings>,
    #[cfg(feature = "oauth")]
    oauth_clients: Vec<crate::OAuthClient>,
    public_url: Option<String>,
    send_verification_on_register: bool,
}

/// Why [`AxumUsersBuilder::build`] refused the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The secret is too short to sign tokens safely.
    #[error("the secret must be at least 32 bytes long")]
    WeakSecret,
    /// Two backends have the same name.
    #[error("two authentication backends are named `{0}`")]
    DuplicateBackend(String),
    /// Two OAuth providers have the same name.
    #[error("two OAuth providers are named `{0}`")]
    DuplicateProvider(String),
    /// An OAuth provider logs in through a backend that does not exist.
    #[error("no authentication backend is named `{0}`")]
    UnknownBackend(String),
    /// An OAuth provider is configured but the public URL is not: callback URLs must never
    /// be built from request headers.
    #[error("an OAuth provider is configured: set the public URL (`AxumUsersBuilder::public_url`)")]
    PublicUrlRequired,
    /// The public URL is not an absolute `http(s)://` URL.
    #[error("the public URL must be an absolute http:// or https:// URL, got `{0}`")]
    InvalidPublicUrl(String),
    /// The Argon2 parameters are out of range.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The passkeys' relying party was refused.
    #[error(transparent)]
    Passkeys(#[from] crate::PasskeyConfigError),
}

impl<S: UserStore, H> AxumUsersBuilder<S, H> {
    /// Lifecycle hooks and password policy.
    pub fn hooks<H2: UserHooks<S::Id, S::Fields>>(self, hooks: H2) -> AxumUsersBuilder<S, H2> {
        AxumUsersBuilder {
            store: self.store,
            secret: self.secret,
            hooks,
            argon2: self.argon2,
            jwt_lifetime: self.jwt_lifetime,
            cookie: self.cookie,
            backends: self.backends,
            default_backends: self.default_backends,
            tokens: self.tokens,
            requires_verification: self.requires_verification,
            policy: self.policy,
            previous_secrets: self.previous_secrets,
            defences: self.defences,
            sessions: self.sessions,
            email_change: self.email_change,
            mfa: self.mfa,
            passkeys: self.passkeys,
            #[cfg(feature = "oauth")]
            oauth_clients: self.oauth_clients,
            public_url: self.public_url,
            send_verification_on_register: self.send_verification_on_register,
        }
    }

    /// Adds sign-in with an OAuth provider (routes from [`AxumUsers::oauth_router`]).
    #[cfg(feature = "oauth")]
    pub fn oauth(mut self, client: crate::OAuthClient) -> Self {
        self.oauth_clients.push(client);
        self
    }

    /// The public base URL of the API, e.g. `https://api.example.com`: the OAuth callback URLs
    /// are `{public_url}/auth/{name}/callback` (required as soon as one provider is added), and
    /// its origin is the one the cookie backends' Origin check accepts (with the trusted ones).
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Argon2id parameters for new hashes (default m=19456 KiB, t=2, p=1).
    pub fn argon2(mut self, params: Argon2Params) -> Self {
        self.argon2 = params;
        self
    }

    /// Lifetime of the default backends' JWTs (default one hour). Every JWT expires: a
    /// signed token cannot be revoked.
    pub fn jwt_lifetime(mut self, lifetime: Duration) -> Self {
        self.jwt_lifetime = lifetime;
        self
    }

    /// Attributes of the default `cookie` backend's cookie.
    pub fn cookie(mut self, cookie: CookieSettings) -> Self {
        self.cookie = cookie;
        self
    }

    /// Adds a backend after the defaults (or instead of them, see [`Self::without_default_backends`]).
    pub fn backend(mut self, backend: AuthBackend<S::Id>) -> Self {
        self.backends.push(backend);
        self
    }

    /// Drops the default `jwt` (Bearer) and `cookie` backends.
    pub fn without_default_backends(mut self) -> Self {
        self.default_backends = false;
        self
    }

    /// Lifetimes of reset and verification tokens (default one hour each). Their keys are
    /// sub-keys of the secret.
    pub fn token_settings(mut self, settings: TokenSettings) -> Self {
        self.tokens = settings;
        self
    }

    /// `true` restores FastAPI Users' client-visible behaviour where axum-users is stricter
    /// (see docs/compatibility.md); default `false`.
    pub fn strict_compat(mut self, strict: bool) -> Self {
        self.policy.strict_compat = strict;
        self
    }

    /// Origins besides the API's own that may send cookie-authenticated state-changing requests.
    pub fn trusted_origins<O: Into<String>>(
        mut self,
        origins: impl IntoIterator<Item = O>,
    ) -> Self {
        self.policy.trusted_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Secrets used before the current one: tokens they signed are still accepted, so the
    /// secret can be rotated without signing everyone out. New tokens use the current secret.
    pub fn previous_secrets<K: Into<Secret>>(
        mut self,
        secrets: impl IntoIterator<Item = K>,
    ) -> Self {
        self.previous_secrets = secrets.into_iter().map(Into::into).collect();
        self
    }

    /// `POST /register` also issues a verification token to the new (active, unverified) user
    /// and calls `on_after_request_verify` with it, after the 201, as
    /// `POST /request-verify-token` would (default `false`, as FastAPI Users). Tests wait for
    /// that mail with [`AxumUsers::background_idle`].
    pub fn send_verification_on_register(mut self, send: bool) -> Self {
        self.send_verification_on_register = send;
        self
    }

    /// Sessions: revocable JWTs, refresh tokens and their lifetimes (see docs/sessions.md).
    pub fn sessions(mut self, settings: crate::SessionSettings) -> Self {
        self.sessions = settings;
        self
    }

    /// Passkeys, for the relying party of `settings` (usually
    /// [`crate::PasskeySettings::for_public_url`] of the public URL). Without it the passkey
    /// routes answer 501 `PASSKEY_UNAVAILABLE`.
    pub fn passkeys(mut self, settings: crate::PasskeySettings) -> Self {
        self.passkeys = Some(settings);
        self
    }

    /// Second factors: the issuer authenticator apps show, and how recent a password-less
    /// user's sign-in must be to enrol (see docs/mfa.md).
    pub fn mfa(mut self, settings: crate::MfaSettings) -> Self {
        self.mfa = settings;
        self
    }

    /// How a self-service change of e-mail address applies (see docs/compatibility.md):
    /// confirmed through a link to the new address (the default), or at once (FastAPI Users,
    /// and the default under `strict_compat`).
    pub fn email_change(mut self, settings: crate::EmailChangeSettings) -> Self {
        self.email_change = Some(settings);
        self
    }

    /// Login, logout and the users routes refuse unverified users.
    pub fn requires_verification(mut self, required: bool) -> Self {
        self.requires_verification = required;
        self
    }

    /// The JWT strategy of the default backends, for building more backends with the same key.
    ///
    /// # Errors
    /// [`BuildError::WeakSecret`] for a secret shorter than 32 bytes.
    pub fn jwt_strategy(&self) -> Result<JwtStrategy<S::Id>, BuildError> {
        let codec = self
            .keys()?
            .auth_codec()
            .map_err(|_| BuildError::WeakSecret)?;
        Ok(JwtStrategy::new(codec, self.jwt_lifetime)
            .with_revocable(self.sessions.jwt_revocable)
            .with_fastapi_users_jwt_until(self.sessions.fastapi_users_jwt_until))
    }

    fn keys(&self) -> Result<KeyRing, BuildError> {
        if self.secret.expose().len() < 32 {
            return Err(BuildError::WeakSecret);
        }
        Ok(KeyRing::new(
            self.secret.clone(),
            self.previous_secrets.clone(),
        ))
    }

    /// Builds it.
    ///
    /// # Errors
    /// [`BuildError`] for a weak secret, duplicate backend names or bad Argon2 parameters.
    pub fn build(self) -> Result<AxumUsers<S, H>, BuildError>
    where
        H: UserHooks<S::Id, S::Fields>,
    {
        let jwt = self.jwt_strategy()?;
        let keys = self.keys()?;
        let mut backends = Vec::new();
        if self.default_backends {
            let bearer = Transport::Bearer {
                token_url: "auth/jwt/login".into(),
            };
            backends.push(AuthBackend::new("jwt", bearer, jwt.clone()));
            backends.push(AuthBackend::new(
                "cookie",
                Transport::Cookie(self.cookie.clone()),
                jwt,
            ));
        }
        backends.extend(self.backends);
        for (i, b) in backends.iter().enumerate() {
            if backends[..i].iter().any(|o| o.name == b.name) {
                return Err(BuildError::DuplicateBackend(b.name.clone()));
            }
        }
        let passwords = PasswordHasher::new(self.argon2)?;
        let rules = LoginRules {
            requires_verification: self.requires_verification,
            strict_compat: self.policy.strict_compat,
            ..LoginRules::default()
        };
        let manager = UserManager::with_keys(
            self.store.clone(),
            self.hooks,
            passwords,
            keys.clone(),
            self.tokens,
        )
        .map_err(|_| BuildError::WeakSecret)?
        .with_login_rules(rules)
        .with_defences(self.defences)
        .with_session_settings(self.sessions)
        .with_mfa_settings(self.mfa);
        let manager = match &self.passkeys {
            Some(settings) => manager.with_passkeys(settings)?,
            None => manager,
        };
        let manager = manager.with_email_change(self.email_change.unwrap_or_else(|| {
            crate::EmailChangeSettings::new(if self.policy.strict_compat {
                crate::EmailChange::Immediate
            } else {
                crate::EmailChange::Confirm
            })
        }));
        let origins = OriginPolicy::new(
            self.policy.strict_compat,
            &self.policy.trusted_origins,
            self.public_url.as_deref(),
        );
        #[cfg(feature = "oauth")]
        let oauth = {
            for (i, c) in self.oauth_clients.iter().enumerate() {
                let name = c.provider.name();
                if self.oauth_clients[..i]
                    .iter()
                    .any(|o| o.provider.name() == name)
                {
                    return Err(BuildError::DuplicateProvider(name.to_owned()));
                }
                if !backends.iter().any(|b| b.name == c.backend) {
                    return Err(BuildError::UnknownBackend(c.backend.clone()));
                }
            }
            let public_url = match self.public_url {
                Some(url) => url,
                None if self.oauth_clients.is_empty() => String::new(),
                None => return Err(BuildError::PublicUrlRequired),
            };
            let absolute = public_url.starts_with("https://") || public_url.starts_with("http://");
            if !public_url.is_empty() && !absolute {
                return Err(BuildError::InvalidPublicUrl(public_url));
            }
            OAuthSettings {
                clients: self.oauth_clients,
                public_url,
                csrf_cookie: CookieSettings::named(crate::routes::oauth::csrf_cookie_name(
                    self.cookie.secure,
                    self.policy.strict_compat,
                ))
                .with_secure(self.cookie.secure),
                state_codec: keys
                    .codec(Purpose::OAuthState)
                    .map_err(|_| BuildError::WeakSecret)?,
                login_codes: crate::routes::oauth::LoginCodes::default(),
            }
        };
        let auth = Arc::new(Authenticator {
            backends,
            manager: manager.clone(),
            origins,
        });
        Ok(AxumUsers {
            inner: Arc::new(RouteState {
                manager,
                auth,
                policy: self.policy,
                #[cfg(feature = "oauth")]
                oauth,
                send_verification_on_register: self.send_verification_on_register,
            }),
        })
    }
}

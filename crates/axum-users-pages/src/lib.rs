//! # axum-users-pages
//!
//! Hosted, server-rendered pages over [`axum_users`]: sign in (e-mail and password, a button per
//! OAuth provider), sign up, forgot and reset password, verify e-mail, confirm an e-mail change,
//! sign out, and the account page (e-mail and password change, signed-in devices, linked
//! provider accounts, two-step sign-in, passkeys). They work without JavaScript (but for the
//! WebAuthn calls of passkeys: one small script of our own, `static/passkeys.js`), carry every string in one file per
//! language (`locales/*.toml`, chosen by `Accept-Language`), and call the [`UserManager`]
//! for every act: no rule lives here, the pages parse, call and render.
//!
//! ```no_run
//! # fn run(users: axum_users::AxumUsers<axum_users::MemoryStore>) -> Result<(), axum_users_pages::PagesError> {
//! use axum_users_pages::{Pages, PagesConfig};
//!
//! let pages = Pages::new(users.clone(), "a secret of at least 32 bytes, from config!", PagesConfig::default())?;
//! let app = pages.wrap_oauth_callbacks(users.router().merge(pages.router()));
//! # let _: axum::Router = app; Ok(()) }
//! ```
//!
//! # Security
//! - Every form carries a CSRF token: a signed double-submit (a random cookie, `__Host-` when
//!   Secure, and in the form its HMAC under a sub-key of the secret that is the pages' own).
//! - Every POST checks `Origin`: the pages' own origin, or `null` (what Chromium sends for
//!   the pages' own forms under `Referrer-Policy: no-referrer`) when `Sec-Fetch-Site` does not
//!   say cross-site; the CSRF token is checked either way.
//! - `Content-Security-Policy` without inline script, `frame-ancestors 'none'`,
//!   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control: no-store`.
//! - `return_to` goes only to the pages' own paths or to an allowed origin
//!   ([`PagesConfig::return_to`]); anything else is ignored.
//!
//! [`UserManager`]: axum_users::UserManager

mod account;
mod flows;
mod i18n;
mod oauth;
mod passkeys;
mod render;
mod return_to;
mod second_factor;
mod security;
mod two_step;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use axum_users::{AxumUsers, RouterStore, Secret, UserHooks};

pub use i18n::LANGUAGES;
pub use return_to::ReturnToPolicy;

/// How the pages are mounted and what they may do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PagesConfig {
    /// Path prefix of every page, e.g. `/ui` (default): `/ui/sign-in`, `/ui/account`, ...
    pub prefix: String,
    /// Origins (`https://app.example.com`) a `return_to` may send the browser to after a
    /// sign-in, besides the pages' own paths.
    pub return_to: Vec<String>,
    /// `Secure` on the pages' cookies (the CSRF cookie is then `__Host-` prefixed); as the auth
    /// cookie's (default `true`).
    pub secure_cookies: bool,
    /// The name in titles and the header (default `axum-users`).
    pub app_name: String,
    /// The OAuth providers that get a button: those that sign in through a cookie backend (a
    /// Bearer backend's token cannot reach a page).
    pub providers: Vec<String>,
    /// A sign-up mails the verification link at once (default `true`).
    pub send_verification: bool,
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            prefix: "/ui".into(),
            return_to: Vec::new(),
            secure_cookies: true,
            app_name: "axum-users".into(),
            providers: Vec::new(),
            send_verification: true,
        }
    }
}

impl PagesConfig {
    /// The path prefix (`/ui`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The origins a `return_to` may name.
    pub fn with_return_to<O: Into<String>>(mut self, origins: impl IntoIterator<Item = O>) -> Self {
        self.return_to = origins.into_iter().map(Into::into).collect();
        self
    }

    /// `Secure` on the pages' cookies.
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// The application's name.
    pub fn with_app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// The OAuth providers with a button (they must sign in through a cookie backend).
    pub fn with_providers<P: Into<String>>(
        mut self,
        providers: impl IntoIterator<Item = P>,
    ) -> Self {
        self.providers = providers.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a sign-up mails the verification link.
    pub fn with_send_verification(mut self, send: bool) -> Self {
        self.send_verification = send;
        self
    }
}

/// Why [`Pages::new`] refused the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PagesError {
    /// The prefix is not `/` followed by path characters.
    #[error("invalid pages prefix `{0}`: use a path like /ui")]
    InvalidPrefix(String),
    /// A `return_to` origin is not `http(s)://host[:port]`.
    #[error("invalid return_to origin `{0}`: use scheme://host[:port], without a path")]
    InvalidOrigin(String),
    /// The users have no cookie backend to sign in through.
    #[error("the pages sign in through a cookie backend, and none is configured")]
    NoCookieBackend,
    /// A provider with a button is not configured.
    #[error("no OAuth provider is named `{0}`")]
    UnknownProvider(String),
    /// The secret is shorter than 32 bytes.
    #[error("the secret must be at least 32 bytes long")]
    WeakSecret,
    /// A template or a locale does not parse (a bug of this crate, caught by its tests).
    #[error("the pages' templates or locales are broken: {0}")]
    Broken(String),
}

/// The hosted pages of one [`AxumUsers`].
pub struct Pages<S: RouterStore, H> {
    state: Arc<PagesState<S, H>>,
}

impl<S: RouterStore, H> Clone for Pages<S, H> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
        }
    }
}

/// What every page handler shares.
pub(crate) struct PagesState<S: RouterStore, H> {
    pub(crate) users: AxumUsers<S, H>,
    pub(crate) config: PagesConfig,
    pub(crate) keys: security::PageKeys,
    pub(crate) templates: minijinja::Environment<'static>,
    pub(crate) locales: i18n::Locales,
    pub(crate) return_to: ReturnToPolicy,
    /// Index of the cookie backend in `users.backends()`.
    pub(crate) backend: usize,
    /// The OAuth routes, called in-process to start a provider's flow.
    pub(crate) oauth: Router,
}

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> Pages<S, H> {
    /// The pages over `users`, signing their CSRF tokens with a sub-key of `secret` (the
    /// users' secret: one secret to configure).
    ///
    /// # Errors
    /// [`PagesError`] for a bad prefix or origin, no cookie backend, an unknown provider.
    pub fn new(
        users: AxumUsers<S, H>,
        secret: impl Into<Secret>,
        mut config: PagesConfig,
    ) -> Result<Self, PagesError> {
        let prefix = config.prefix.trim_end_matches('/').to_owned();
        let valid = prefix.starts_with('/')
            && prefix.len() > 1
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
            && !prefix.contains("//");
        if !valid {
            return Err(PagesError::InvalidPrefix(config.prefix));
        }
        config.prefix = prefix;
        let return_to = ReturnToPolicy::new(&config.prefix, &config.return_to)?;
        let backend = users
            .backends()
            .iter()
            .position(|b| b.transport.is_cookie())
            .ok_or(PagesError::NoCookieBackend)?;
        for name in &config.providers {
            if !users.oauth_providers().any(|p| p == name) {
                return Err(PagesError::UnknownProvider(name.clone()));
            }
        }
        let keys = security::PageKeys::new(&secret.into())?;
        let templates = render::templates()?;
        let locales = i18n::Locales::load()?;
        let oauth = users.oauth_router();
        Ok(Self {
            state: Arc::new(PagesState {
                users,
                config,
                keys,
                templates,
                locales,
                return_to,
                backend,
                oauth,
            }),
        })
    }

    /// Every page under the prefix, and its stylesheet.
    pub fn router(&self) -> Router {
        let pages = Router::new()
            .route(
                "/sign-in",
                get(flows::sign_in_page::<S, H>).post(flows::sign_in::<S, H>),
            )
            .route(
                "/sign-up",
                get(flows::sign_up_page::<S, H>).post(flows::sign_up::<S, H>),
            )
            .route(
                "/forgot-password",
                get(flows::forgot_page::<S, H>).post(flows::forgot::<S, H>),
            )
            .route(
                "/reset-password",
                get(flows::reset_page::<S, H>).post(flows::reset::<S, H>),
            )
            .route(
                "/verify",
                get(flows::verify_page::<S, H>).post(flows::verify::<S, H>),
            )
            .route(
                "/verify/resend",
                get(flows::resend_page::<S, H>).post(flows::resend::<S, H>),
            )
            .route(
                "/confirm-email-change",
                get(flows::email_change_page::<S, H>).post(flows::email_change::<S, H>),
            )
            .route("/second-factor", post(second_factor::submit::<S, H>))
            .route("/sign-out", post(flows::sign_out::<S, H>))
            .route("/account", get(account::page::<S, H>))
            .route("/account/email", post(account::change_email::<S, H>))
            .route("/account/password", post(account::change_password::<S, H>))
            .route(
                "/account/sessions/sign-out",
                post(account::sign_out_device::<S, H>),
            )
            .route(
                "/account/sessions/sign-out-others",
                post(account::sign_out_others::<S, H>),
            )
            .route("/account/oauth/unlink", post(account::unlink::<S, H>))
            .route("/account/two-step/start", post(two_step::start::<S, H>))
            .route("/account/two-step/confirm", post(two_step::confirm::<S, H>))
            .route(
                "/account/two-step/recovery-codes",
                post(two_step::regenerate::<S, H>),
            )
            .route("/account/two-step/off", post(two_step::turn_off::<S, H>))
            .route("/account/passkeys/rename", post(passkeys::rename::<S, H>))
            .route("/account/passkeys/remove", post(passkeys::remove::<S, H>))
            .route("/oauth/{name}/sign-in", get(oauth::sign_in::<S, H>))
            .route("/oauth/{name}/link", get(oauth::link::<S, H>))
            .route("/static/pages.css", get(render::stylesheet))
            .route("/static/passkeys.js", get(passkeys::script))
            .fallback(flows::not_found::<S, H>)
            .layer(axum::extract::DefaultBodyLimit::max(security::FORM_LIMIT))
            .layer(axum::middleware::map_response_with_state(
                self.state.clone(),
                security::headers::<S, H>,
            ))
            .with_state(self.state.clone());
        Router::new().nest(&self.state.config.prefix, pages)
    }

    /// `router` with the OAuth callbacks of a flow the pages started answered as pages: the
    /// provider's callback stays the library's route (the URL registered at the provider), and
    /// its outcome becomes a redirect to the page that follows (the cookie of a sign-in rides
    /// on it) or an error in words. Callbacks of other flows (a single-page app's) pass as they are.
    pub fn wrap_oauth_callbacks(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.state.clone(),
            oauth::callbacks::<S, H>,
        ))
    }
}

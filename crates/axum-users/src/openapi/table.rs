//! What each route reads and answers, one row per operation: the document is built from this
//! table, and `tests/it/openapi.rs` drives the routes to keep it honest. A route's row lists
//! the codes its handler can answer with; the codes that follow from its authentication
//! (401, 403, `CSRF_ORIGIN_MISMATCH`) are added from [`Auth`] by the builder.

use crate::error_code::ErrorCode;

/// How many times a route is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mount {
    /// Once.
    Once,
    /// Once per backend: `{backend}` in the path and name is the backend's name.
    PerBackend,
    /// Once per OAuth provider: `{provider}` is its name, `{backend}` the backend it signs in with.
    #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
    PerProvider,
    /// Once, with the `oauth` feature (the linked accounts of the current user).
    #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
    OAuthAccounts,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Anyone.
    Public,
    /// An active user (and a verified one when the application requires verification).
    Active,
    /// An active superuser.
    Superuser,
}

/// What the request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// None.
    Empty,
    /// The OAuth2 password form of a login.
    LoginForm,
    /// JSON of a schema in `components/schemas`.
    Json(&'static str),
    /// A JSON object of required strings `(name, format)` (format `""` for none), documented
    /// as FastAPI names such bodies: `Body_{operation id}`.
    Object(&'static [(&'static str, &'static str)]),
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Success {
    /// The JSON of a schema in `components/schemas`, with a status.
    Json(u16, &'static str),
    /// A JSON array of a schema.
    List(&'static str),
    /// The JSON literal `null`, with a status.
    Null(u16),
    /// `204` and no body.
    NoContent,
    /// The backend's login answer: `200 BearerResponse` or `204` with the cookie.
    Login,
    /// The backend's login answer, or `303` to the configured front end.
    LoginOrRedirect,
}

/// A parameter besides the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    /// A required path segment.
    Path(&'static str),
    /// An optional query string value.
    Query(&'static str),
    /// An optional repeated query string value.
    QueryList(&'static str),
}

/// One operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteDoc {
    pub(crate) method: &'static str,
    /// The path, with `{backend}` / `{provider}` for [`Mount::PerBackend`] / [`Mount::PerProvider`].
    pub(crate) path: &'static str,
    pub(crate) mount: Mount,
    /// FastAPI's route name, from which the summary and operation id are made as FastAPI does.
    pub(crate) name: &'static str,
    pub(crate) tag: &'static str,
    pub(crate) auth: Auth,
    pub(crate) body: Body,
    pub(crate) params: &'static [Param],
    pub(crate) success: Success,
    /// Whether a malformed body or parameter answers 422.
    pub(crate) validates: bool,
    /// The error codes the handler answers with, besides those of [`Auth`].
    pub(crate) codes: &'static [ErrorCode],
}

use ErrorCode as E;

/// A login: its form, then the sign-in.
const LOGIN: &[ErrorCode] = &[
    E::UnparsableBody,
    E::PayloadTooLarge,
    E::LoginBadCredentials,
    E::LoginUserNotVerified,
    E::LoginSecondFactorRequired,
    E::TooManyRequests,
    E::ServiceUnavailable,
    E::InternalServerError,
];

const STORE: &[ErrorCode] = &[E::ServiceUnavailable, E::InternalServerError];

/// Every route of [`crate::AxumUsers::router`], in the order of the reference document.
pub(crate) const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "post",
        path: "/auth/{backend}/login",
        mount: Mount::PerBackend,
        name: "auth:{backend}.login",
        tag: "auth",
        auth: Auth::Public,
        body: Body::LoginForm,
        params: &[],
        success: Success::Login,
        validates: true,
        codes: LOGIN,
    },
    RouteDoc {
        method: "post",
        path: "/auth/{backend}/logout",
        mount: Mount::PerBackend,
        name: "auth:{backend}.logout",
        tag: "auth",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[],
        success: Success::NoContent,
        validates: false,
        codes: STORE,
    },
    RouteDoc {
        method: "post",
        path: "/auth/{backend}/refresh",
        mount: Mount::PerBackend,
        name: "auth:{backend}.refresh",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("refresh_token", "")]),
        params: &[],
        success: Success::Login,
        validates: true,
        codes: &[
            E::UnparsableBody,
            E::PayloadTooLarge,
            E::RefreshTokenInvalid,
            E::RefreshTokenReused,
            E::CsrfOriginMismatch,
            E::TooManyRequests,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "post",
        path: "/auth/register",
        mount: Mount::Once,
        name: "register:register",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Json("UserCreate"),
        params: &[],
        success: Success::Json(201, "UserRead"),
        validates: true,
        codes: &[
            E::TooManyRequests,
            E::RegisterUserAlreadyExists,
            E::RegisterInvalidPassword,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "post",
        path: "/auth/forgot-password",
        mount: Mount::Once,
        name: "reset:forgot_password",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("email", "email")]),
        params: &[],
        success: Success::Null(202),
        validates: true,
        codes: &[E::TooManyRequests],
    },
    RouteDoc {
        method: "post",
        path: "/auth/reset-password",
        mount: Mount::Once,
        name: "reset:reset_password",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("token", ""), ("password", "")]),
        params: &[],
        success: Success::Null(200),
        validates: true,
        codes: &[
            E::TooManyRequests,
            E::ResetPasswordBadToken,
            E::ResetPasswordInvalidPassword,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "post",
        path: "/auth/request-verify-token",
        mount: Mount::Once,
        name: "verify:request-token",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("email", "email")]),
        params: &[],
        success: Success::Null(202),
        validates: true,
        codes: &[E::TooManyRequests],
    },
    RouteDoc {
        method: "post",
        path: "/auth/verify",
        mount: Mount::Once,
        name: "verify:verify",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("token", "")]),
        params: &[],
        success: Success::Json(200, "UserRead"),
        validates: true,
        codes: &[
            E::TooManyRequests,
            E::VerifyUserBadToken,
            E::VerifyUserAlreadyVerified,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "post",
        path: "/auth/confirm-email-change",
        mount: Mount::Once,
        name: "email_change:confirm",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("token", "")]),
        params: &[],
        success: Success::Json(200, "UserRead"),
        validates: true,
        codes: &[
            E::TooManyRequests,
            E::EmailChangeBadToken,
            E::UpdateUserEmailAlreadyExists,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "get",
        path: "/users/me",
        mount: Mount::Once,
        name: "users:current_user",
        tag: "users",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[],
        success: Success::Json(200, "UserRead"),
        validates: false,
        codes: STORE,
    },
    RouteDoc {
        method: "patch",
        path: "/users/me",
        mount: Mount::Once,
        name: "users:patch_current_user",
        tag: "users",
        auth: Auth::Active,
        body: Body::Json("UserUpdate"),
        params: &[],
        success: Success::Json(200, "UserRead"),
        validates: true,
        codes: &[
            E::UpdateUserEmailAlreadyExists,
            E::UpdateUserInvalidPassword,
            E::UpdateUserCurrentPasswordRequired,
            E::UpdateUserBadCurrentPassword,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    // `DELETE /users/me` is `DELETE /users/{id}` with the id "me", as in the reference.
    RouteDoc {
        method: "delete",
        path: "/users/me",
        mount: Mount::Once,
        name: "users:delete_me",
        tag: "users",
        auth: Auth::Superuser,
        body: Body::Empty,
        params: &[],
        success: Success::NoContent,
        validates: false,
        codes: &[E::NotFound, E::ServiceUnavailable, E::InternalServerError],
    },
    RouteDoc {
        method: "get",
        path: "/users/{id}",
        mount: Mount::Once,
        name: "users:user",
        tag: "users",
        auth: Auth::Superuser,
        body: Body::Empty,
        params: &[Param::Path("id")],
        success: Success::Json(200, "UserRead"),
        validates: false,
        codes: &[E::NotFound, E::ServiceUnavailable, E::InternalServerError],
    },
    RouteDoc {
        method: "patch",
        path: "/users/{id}",
        mount: Mount::Once,
        name: "users:patch_user",
        tag: "users",
        auth: Auth::Superuser,
        body: Body::Json("UserUpdate"),
        params: &[Param::Path("id")],
        success: Success::Json(200, "UserRead"),
        validates: true,
        codes: &[
            E::NotFound,
            E::UpdateUserEmailAlreadyExists,
            E::UpdateUserInvalidPassword,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "delete",
        path: "/users/{id}",
        mount: Mount::Once,
        name: "users:delete_user",
        tag: "users",
        auth: Auth::Superuser,
        body: Body::Empty,
        params: &[Param::Path("id")],
        success: Success::NoContent,
        validates: false,
        codes: &[E::NotFound, E::ServiceUnavailable, E::InternalServerError],
    },
    RouteDoc {
        method: "get",
        path: "/users/me/sessions",
        mount: Mount::Once,
        name: "users:sessions",
        tag: "users",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[],
        success: Success::List("SessionRead"),
        validates: false,
        codes: STORE,
    },
    RouteDoc {
        method: "delete",
        path: "/users/me/sessions",
        mount: Mount::Once,
        name: "users:revoke_other_sessions",
        tag: "users",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[],
        success: Success::NoContent,
        validates: false,
        codes: STORE,
    },
    RouteDoc {
        method: "delete",
        path: "/users/me/sessions/{id}",
        mount: Mount::Once,
        name: "users:revoke_session",
        tag: "users",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[Param::Path("id")],
        success: Success::NoContent,
        validates: false,
        codes: &[
            E::SessionNotFound,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "get",
        path: "/users/{id}/sessions",
        mount: Mount::Once,
        name: "users:user_sessions",
        tag: "users",
        auth: Auth::Superuser,
        body: Body::Empty,
        params: &[Param::Path("id")],
        success: Success::List("SessionRead"),
        validates: false,
        codes: &[E::NotFound, E::ServiceUnavailable, E::InternalServerError],
    },
    RouteDoc {
        method: "delete",
        path: "/users/{id}/sessions",
        mount: Mount::Once,
        name: "users:revoke_user_sessions",
        tag: "users",
        auth: Auth::Superuser,
        body: Body::Empty,
        params: &[Param::Path("id")],
        success: Success::NoContent,
        validates: false,
        codes: &[E::NotFound, E::ServiceUnavailable, E::InternalServerError],
    },
    RouteDoc {
        method: "get",
        path: "/auth/{provider}/authorize",
        mount: Mount::PerProvider,
        name: "oauth:{provider}.{backend}.authorize",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Empty,
        params: &[Param::QueryList("scopes")],
        success: Success::Json(200, "OAuth2AuthorizeResponse"),
        validates: false,
        codes: &[E::TooManyRequests, E::InternalServerError],
    },
    RouteDoc {
        method: "get",
        path: "/auth/{provider}/callback",
        mount: Mount::PerProvider,
        name: "oauth:{provider}.{backend}.callback",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Empty,
        params: &[
            Param::Query("code"),
            Param::Query("state"),
            Param::Query("error"),
        ],
        success: Success::LoginOrRedirect,
        validates: false,
        codes: &[
            E::BadRequest,
            E::OAuthInvalidState,
            E::AccessTokenDecodeError,
            E::AccessTokenAlreadyExpired,
            E::OAuthCodeExchangeFailed,
            E::OAuthInvalidIdToken,
            E::OAuthNotAvailableEmail,
            E::OAuthUserAlreadyExists,
            E::OAuthEmailNotVerified,
            E::OAuthInvalidEmail,
            E::LoginBadCredentials,
            E::LoginUserNotVerified,
            E::LoginSecondFactorRequired,
            E::TooManyRequests,
            E::OAuthProviderUnavailable,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "post",
        path: "/auth/{provider}/token",
        mount: Mount::PerProvider,
        name: "oauth:{provider}.{backend}.token",
        tag: "auth",
        auth: Auth::Public,
        body: Body::Object(&[("code", "")]),
        params: &[],
        success: Success::Login,
        validates: true,
        codes: &[
            E::OAuthInvalidLoginCode,
            E::LoginBadCredentials,
            E::LoginUserNotVerified,
            E::LoginSecondFactorRequired,
            E::TooManyRequests,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "get",
        path: "/auth/associate/{provider}/authorize",
        mount: Mount::PerProvider,
        name: "oauth-associate:{provider}.authorize",
        tag: "auth",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[Param::QueryList("scopes")],
        success: Success::Json(200, "OAuth2AuthorizeResponse"),
        validates: false,
        codes: &[
            E::TooManyRequests,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "get",
        path: "/auth/associate/{provider}/callback",
        mount: Mount::PerProvider,
        name: "oauth-associate:{provider}.callback",
        tag: "auth",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[
            Param::Query("code"),
            Param::Query("state"),
            Param::Query("error"),
        ],
        success: Success::Json(200, "UserRead"),
        validates: false,
        codes: &[
            E::TooManyRequests,
            E::BadRequest,
            E::OAuthInvalidState,
            E::AccessTokenDecodeError,
            E::AccessTokenAlreadyExpired,
            E::OAuthCodeExchangeFailed,
            E::OAuthInvalidIdToken,
            E::OAuthNotAvailableEmail,
            E::OAuthAccountAlreadyLinked,
            E::OAuthProviderUnavailable,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
    RouteDoc {
        method: "get",
        path: "/users/me/oauth-accounts",
        mount: Mount::OAuthAccounts,
        name: "users:oauth_accounts",
        tag: "users",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[],
        success: Success::List("OAuthAccountRead"),
        validates: false,
        codes: STORE,
    },
    RouteDoc {
        method: "delete",
        path: "/users/me/oauth-accounts/{id}",
        mount: Mount::OAuthAccounts,
        name: "users:unlink_oauth_account",
        tag: "users",
        auth: Auth::Active,
        body: Body::Empty,
        params: &[Param::Path("id")],
        success: Success::NoContent,
        validates: false,
        codes: &[
            E::NotFound,
            E::OAuthLastSignInMethod,
            E::ServiceUnavailable,
            E::InternalServerError,
        ],
    },
];

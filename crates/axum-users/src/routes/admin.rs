//! The admin API (superusers): `GET|POST /users`, `GET /users/{id}/oauth-accounts` (with the
//! `oauth` feature, mounted by the OAuth router), and the
//! audit log (`GET /users/me/security-events` for everyone, `GET /audit-events` for
//! superusers). Additive to FastAPI Users' routes: none of its paths changes meaning.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
#[cfg(feature = "oauth")]
use axum::extract::Path;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use crate::audit::{AUDIT_EVENT_TYPES, Actor, AuditCursor, AuditPage, AuditQuery};
use crate::auth::Requirements;
use crate::body::{Fields, parse_json};
use crate::directory::{
    DEFAULT_PAGE, MAX_PAGE, UserCursor, UserQuery, UserSort, UserTimes, format_time, parse_time,
};
use crate::error::{ApiError, ValidationIssue};
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::manager::{ManagerError, UserCreate, UserOf};
use crate::model::UserId;
use crate::route_state::RouteState;
use crate::secret::Secret;
use crate::store::UserStore;

/// The routes under `/users`.
pub(crate) fn users_router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route("/", get(list_users::<S, H>).post(create_user::<S, H>))
        .route("/me/security-events", get(my_events::<S, H>))
        .with_state(inner)
}

/// `GET /audit-events`, at the root.
pub(crate) fn audit_router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route("/audit-events", get(all_events::<S, H>))
        .with_state(inner)
}

fn requirements<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    superuser: bool,
) -> Requirements {
    Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser,
    }
}

/// Authenticates a superuser and names them as the actor of what the request does.
pub(crate) async fn superuser<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &mut Parts,
) -> Result<UserOf<S>, ApiError> {
    let admin = inner
        .extension()
        .require(parts, requirements(inner, true))
        .await?
        .user;
    parts.extensions.insert(Actor(admin.id.to_string()));
    Ok(admin)
}

/// The superuser's view of a user: the public view with the times (additive members).
pub(crate) fn admin_view<Id: UserId, F: crate::UserFields>(
    user: &crate::User<Id, F>,
    times: Option<&UserTimes>,
) -> Value {
    let mut view = serde_json::to_value(user.public()).unwrap_or_default();
    if let Value::Object(map) = &mut view {
        let time = |t: Option<i64>| t.map(format_time).map_or(Value::Null, Value::String);
        map.insert("created_at".into(), time(times.map(|t| t.created_at)));
        map.insert("updated_at".into(), time(times.map(|t| t.updated_at)));
        map.insert(
            "last_login_at".into(),
            time(times.and_then(|t| t.last_login_at)),
        );
    }
    view
}

/// The query string's pairs; the last of a repeated name wins, as in FastAPI.
struct QueryString(Vec<(String, String)>);

impl QueryString {
    fn read(raw: Option<String>) -> Result<Self, ApiError> {
        let pairs = match raw {
            Some(raw) => serde_urlencoded::from_str(&raw)
                .map_err(|_| ApiError::code(ErrorCode::BadRequest))?,
            None => Vec::new(),
        };
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Collects the query's validation issues, answered together as one 422.
#[derive(Default)]
struct Issues(Vec<ValidationIssue>);

impl Issues {
    fn push(&mut self, name: &str, kind: &'static str, msg: &str, input: &str) {
        self.0.push(ValidationIssue {
            kind,
            loc: vec![json!("query"), json!(name)],
            msg: msg.into(),
            input: json!(input),
            ctx: None,
        });
    }

    fn flag(&mut self, query: &QueryString, name: &str) -> Option<bool> {
        let value = query.get(name)?;
        match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => {
                self.push(
                    name,
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                    value,
                );
                None
            }
        }
    }

    fn time(&mut self, query: &QueryString, name: &str) -> Option<i64> {
        let value = query.get(name)?;
        let parsed = parse_time(value);
        if parsed.is_none() {
            self.push(
                name,
                "datetime_parsing",
                "Input should be an RFC 3339 date-time or Unix seconds",
                value,
            );
        }
        parsed
    }

    fn limit(&mut self, query: &QueryString) -> u32 {
        let Some(value) = query.get("limit") else {
            return DEFAULT_PAGE;
        };
        match value.trim().parse::<u32>() {
            Ok(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
            _ => {
                self.push(
                    "limit",
                    "value_error",
                    "Input should be an integer from 1 to 100",
                    value,
                );
                DEFAULT_PAGE
            }
        }
    }

    fn done(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// Reads the listing's query: `q`, the three flags, `created_after`/`created_before`, `sort`,
/// `limit` and `cursor`. Every bad member is a 422 naming it.
fn user_query<Id: UserId>(query: &QueryString) -> Result<UserQuery, ApiError> {
    let mut issues = Issues::default();
    let q = query.get("q").map(str::to_owned);
    if q.as_ref().is_some_and(|q| q.chars().count() > 320) {
        issues.push("q", "string_too_long", "At most 320 characters", "");
    }
    let sort = match query.get("sort") {
        None => UserSort::default(),
        Some(value) => UserSort::parse(value).unwrap_or_else(|| {
            issues.push(
                "sort",
                "enum",
                "Input should be 'created_at', '-created_at', 'email' or '-email'",
                value,
            );
            UserSort::default()
        }),
    };
    let after = match query.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(text) => {
            let cursor = UserCursor::decode(text, sort).filter(|c| match c {
                UserCursor::CreatedAt { id, .. } => Id::parse(id).is_some(),
                _ => true,
            });
            if cursor.is_none() {
                issues.push(
                    "cursor",
                    "value_error",
                    "Not a cursor of this listing and sort",
                    text,
                );
            }
            cursor
        }
    };
    let parsed = UserQuery {
        q,
        is_active: issues.flag(query, "is_active"),
        is_verified: issues.flag(query, "is_verified"),
        is_superuser: issues.flag(query, "is_superuser"),
        created_after: issues.time(query, "created_after"),
        created_before: issues.time(query, "created_before"),
        sort,
        limit: issues.limit(query),
        after,
    };
    issues.done()?;
    Ok(parsed)
}

fn no_store(body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    crate::auth::no_store(&mut response);
    response
}

async fn list_users<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    RawQuery(raw): RawQuery,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    superuser(&inner, &mut parts).await?;
    let query = user_query::<S::Id>(&QueryString::read(raw)?)?;
    let page = inner
        .manager
        .list_users(&query)
        .await
        .map_err(super::server_error)?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(user, times)| admin_view(user, Some(times)))
        .collect();
    Ok(no_store(json!({
        "items": items,
        "next_cursor": page.next_cursor.map(|c| c.encode(query.sort)),
    })))
}

/// `POST /users`: `{"email", "password"?, "is_active"?, "is_superuser"?, "is_verified"?,
/// "send_set_password_link"?, ...fields}`. Without a password the user has none until they
/// set one through the reset link, mailed at once when `send_set_password_link` is true.
async fn create_user<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    mut parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    superuser(&inner, &mut parts).await?;
    let (create, with_password, send_link) = Fields::read(&value, |f| {
        let password = f.optional_string("password", true);
        let with_password = password.is_some();
        let mut create =
            UserCreate::new(f.email("email"), Secret::new(password.unwrap_or_default()));
        create.is_active = f.optional_bool("is_active", true);
        create.is_superuser = f.optional_bool("is_superuser", true);
        create.is_verified = f.optional_bool("is_verified", true);
        let send_link = f.optional_bool("send_set_password_link", true);
        create.fields = f.custom();
        (create, with_password, send_link.unwrap_or(false))
    })?;
    let user = match inner
        .manager
        .create_by_admin(create, with_password, Some(&parts))
        .await
    {
        Ok(user) => user,
        Err(ManagerError::UserAlreadyExists) => {
            return Err(ApiError::code(ErrorCode::RegisterUserAlreadyExists));
        }
        Err(ManagerError::InvalidPassword(p)) => {
            return Err(ApiError::invalid_password(
                ErrorCode::RegisterInvalidPassword,
                p.reason,
            ));
        }
        Err(e) => return Err(super::server_error(e)),
    };
    if send_link && user.is_active {
        // The set-password link is a reset token, mailed by `on_after_forgot_password`
        // (through the outbox on the server), queued before the answer so that a crash cannot
        // lose it; a failure is logged (the user exists: forgot-password sends it again).
        if let Err(e) = inner.manager.forgot_password(&user, Some(&parts)).await {
            tracing::warn!(error = %e, "set-password link: the mail was not queued");
        }
    }
    let times = inner
        .manager
        .user_times(&user.id)
        .await
        .map_err(super::server_error)?;
    Ok(super::json(
        StatusCode::CREATED,
        admin_view(&user, times.as_ref()),
    ))
}

/// `GET /users/{id}/oauth-accounts`, mounted with the OAuth routes (`oauth` feature).
#[cfg(feature = "oauth")]
pub(crate) async fn oauth_accounts<S: crate::OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    superuser(&inner, &mut parts).await?;
    let user = super::users::user_or_404(&inner, &id).await?;
    let accounts = inner
        .manager
        .oauth_accounts(&user)
        .await
        .map_err(super::server_error)?;
    // No provider token leaves the server: what a superuser needs is which accounts are linked.
    let body: Vec<Value> = accounts
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "oauth_name": a.oauth_name,
                "account_id": a.account_id,
                "account_email": a.account_email,
                "expires_at": a.expires_at,
            })
        })
        .collect();
    Ok(no_store(Value::Array(body)))
}

/// Reads `limit`, `cursor` and (for superusers) `user_id`, `type` and `since`.
fn audit_query(query: &QueryString, admin: bool) -> Result<AuditQuery, ApiError> {
    let mut issues = Issues::default();
    let mut parsed = AuditQuery {
        limit: issues.limit(query),
        ..AuditQuery::default()
    };
    if let Some(text) = query.get("cursor").filter(|c| !c.is_empty()) {
        parsed.before = AuditCursor::decode(text);
        if parsed.before.is_none() {
            issues.push(
                "cursor",
                "value_error",
                "Not a cursor of this listing",
                text,
            );
        }
    }
    if let Some(kind) = query.get("type") {
        if AUDIT_EVENT_TYPES.contains(&kind) {
            parsed.kind = Some(kind.to_owned());
        } else {
            issues.push("type", "enum", "Not an audit event type", kind);
        }
    }
    parsed.since = issues.time(query, "since");
    if admin && let Some(user) = query.get("user_id") {
        if user.len() <= 64 {
            parsed.user_id = Some(user.trim().to_owned());
        } else {
            issues.push("user_id", "string_too_long", "At most 64 characters", "");
        }
    }
    issues.done()?;
    Ok(parsed)
}

fn events_answer(page: AuditPage) -> Response {
    let items: Vec<Value> = page.items.iter().map(|r| r.to_json()).collect();
    no_store(json!({
        "items": items,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    }))
}

async fn my_events<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    RawQuery(raw): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    let me = inner
        .extension()
        .require(&parts, requirements(&inner, false))
        .await?
        .user;
    let query = audit_query(&QueryString::read(raw)?, false)?;
    // Always and only the caller's own events, whatever the query says.
    let page = inner
        .manager
        .own_audit_events(&me.id, query)
        .await
        .map_err(super::server_error)?;
    Ok(events_answer(page))
}

async fn all_events<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    RawQuery(raw): RawQuery,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    superuser(&inner, &mut parts).await?;
    let query = audit_query(&QueryString::read(raw)?, true)?;
    let page = inner
        .manager
        .audit_events(&query)
        .await
        .map_err(super::server_error)?;
    Ok(events_answer(page))
}

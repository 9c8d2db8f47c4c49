//! The account page: e-mail and password change (with the current password), the signed-in
//! devices (sign out one, or every other), the linked provider accounts; the two-step and
//! passkey sections are `two_step` and `passkeys`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum_users::auth::Authenticated;
use axum_users::{
    ApiError, ManagerError, Privilege, Requirements, RevokeReason, RouterStore, Secret, UserHooks,
    UserId, UserOf, UserUpdate,
};
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use crate::PagesState;
use crate::flows::provider_label;
use crate::render::{Visit, error_key, refused_password};
use crate::security::Form;

type Pages<S, H> = State<Arc<PagesState<S, H>>>;
pub(crate) type Me<S> =
    Authenticated<<S as axum_users::UserStore>::Id, <S as axum_users::UserStore>::Fields>;

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> PagesState<S, H> {
    /// The signed-in user of the request (active, verified where required), through the
    /// users' authenticator: the same backends and rules as the API.
    pub(crate) async fn signed_in(&self, parts: &Parts) -> Result<Option<Me<S>>, ApiError> {
        let mut requirements = Requirements::default();
        requirements.active = true;
        requirements.verified = self.users.manager().login_rules().requires_verification;
        match self
            .users_authenticator()
            .require(parts, requirements)
            .await
        {
            Ok(me) => Ok(Some(me)),
            Err(e) if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::FORBIDDEN => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn users_authenticator(&self) -> axum_users::auth::AuthExtension<S::Id, S::Fields> {
        axum_users::UsersState::authenticator(&self.users)
    }
}

/// The signed-in user and the visit, or the answer that sends the browser to sign in.
async fn me_or_sign_in<'a, S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &'a PagesState<S, H>,
    parts: &Parts,
) -> Result<(Me<S>, Visit<'a>), Response> {
    let mut visit = state.visit(parts);
    match state.signed_in(parts).await {
        Ok(Some(me)) => {
            visit.signed_in = true;
            Ok((me, visit))
        }
        Ok(None) => {
            let account = state.path("account");
            let target = format!("{}?return_to={account}", state.path("sign-in"));
            Err(state.redirect(&visit, &target))
        }
        Err(e) => {
            tracing::warn!(status = %e.status, "pages: cannot tell who is signed in");
            Err(state.message(
                &visit,
                StatusCode::SERVICE_UNAVAILABLE,
                "error_title",
                Some(visit.t("error_unavailable")),
                None,
            ))
        }
    }
}

/// What a POST of the account page needs: the user, the visit and the checked form.
pub(crate) async fn account_post<'a, S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &'a PagesState<S, H>,
    parts: &mut Parts,
    body: &[u8],
) -> Result<(Me<S>, Visit<'a>, Form), Response> {
    // The origin and the token first: a post from another site is refused as such, whether
    // or not its browser sent the (SameSite=Lax) auth cookie.
    state.checked_form(&state.visit(parts), parts, body)?;
    let (me, visit) = me_or_sign_in(state, parts).await?;
    let form = state.checked_form(&visit, parts, body)?;
    if let Some(sid) = &me.session_id {
        // The manager keeps this session when a change ends the others.
        parts
            .extensions
            .insert(axum_users::CurrentSession(sid.clone()));
    }
    Ok((me, visit, form))
}

/// The notices a redirect back to the account page may name.
const NOTICES: &[(&str, &str)] = &[
    ("email", "account_email_changed"),
    ("email_pending", "account_email_pending"),
    ("password", "account_password_changed"),
    ("session", "account_session_signed_out"),
    ("sessions", "account_sessions_signed_out"),
    ("linked", "account_accounts_linked"),
    ("unlinked", "account_accounts_unlinked"),
    ("two_step_off", "two_step_turned_off"),
    ("passkey_added", "passkey_added"),
    ("passkey_renamed", "passkey_renamed"),
    ("passkey_removed", "passkey_removed"),
];

/// `GET /account`.
pub(crate) async fn page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let (me, visit) = match me_or_sign_in(&state, &parts).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
    let mut extra = json!({});
    for (key, value) in pairs {
        match key.as_str() {
            "done" => {
                if let Some((_, words)) = NOTICES.iter().find(|(k, _)| *k == value) {
                    extra["notice"] = json!(visit.t(words));
                }
            }
            "error" => extra["error"] = json!(visit.t(crate::render::code_key(&value))),
            _ => {}
        }
    }
    render(&state, &visit, &me, StatusCode::OK, extra).await
}

/// The account page again, with `key`'s words on `field` (a section's field) and the summary.
pub(crate) async fn again<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    me: &Me<S>,
    field: &str,
    (status, key): (StatusCode, &'static str),
) -> Response {
    let mut errors = serde_json::Map::new();
    errors.insert(field.to_owned(), json!(visit.t(key)));
    let extra = json!({"errors": errors, "error": visit.t("error_summary")});
    render(state, visit, me, status, extra).await
}

/// The account page with `extra` (errors, values, a notice).
pub(crate) async fn render<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    me: &Me<S>,
    status: StatusCode,
    mut extra: Value,
) -> Response {
    let manager = state.users.manager();
    let sessions = match manager.list_sessions(&me.user.id).await {
        Ok(sessions) => sessions,
        Err(e) => return failed(state, visit, &e),
    };
    let accounts = match manager.oauth_accounts(&me.user).await {
        Ok(accounts) => accounts,
        Err(e) => return failed(state, visit, &e),
    };
    let mfa = match crate::two_step::status(state, me).await {
        Ok(mfa) => mfa,
        Err(e) => return failed(state, visit, &e),
    };
    let passkeys = match crate::passkeys::list(state, me).await {
        Ok(passkeys) => passkeys,
        Err(e) => return failed(state, visit, &e),
    };
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "current": me.session_id.as_deref() == Some(s.id.as_str()),
                "created_at": when(s.created_at),
                "last_seen_at": when(s.last_seen_at),
                "ip": s.ip,
                "device": s.user_agent.as_deref().map(device),
            })
        })
        .collect();
    let accounts: Vec<Value> = accounts
        .iter()
        .map(|a| json!({"id": a.id.to_string(), "oauth_name": a.oauth_name, "account_email": a.account_email}))
        .collect();
    let providers: Vec<Value> = state
        .config
        .providers
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "label": provider_label(name),
                "link_href": format!("{}/oauth/{name}/link", state.config.prefix),
            })
        })
        .collect();
    extra["user"] = json!({"email": me.user.email, "is_verified": me.user.is_verified});
    extra["sessions"] = json!(sessions);
    extra["accounts"] = json!(accounts);
    extra["providers"] = json!(providers);
    extra["mfa"] = json!(mfa);
    extra["passkeys"] = json!(passkeys);
    state.page(visit, status, "account.html", "account_title", extra)
}

fn failed<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    e: &ManagerError,
) -> Response {
    let (status, key) = error_key(e);
    state.message(visit, status, "error_title", Some(visit.t(key)), None)
}

/// `2026-12-02 11:53 UTC`.
pub(crate) fn when(unix: i64) -> String {
    let iso = axum_users::format_time(unix);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// A short name for a `User-Agent`: `Chrome on Linux`; the header itself when unknown.
fn device(user_agent: &str) -> String {
    let browsers = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ];
    let systems = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    let browser = browsers.iter().find(|(k, _)| user_agent.contains(k));
    let system = systems.iter().find(|(k, _)| user_agent.contains(k));
    match (browser, system) {
        (Some((_, b)), Some((_, s))) => format!("{b} on {s}"),
        (Some((_, b)), None) => (*b).to_owned(),
        _ => user_agent.chars().take(60).collect(),
    }
}

/// `POST /account/email`: a change of address, confirmed by a link to it (or at once, as
/// the manager is configured).
pub(crate) async fn change_email<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let raw = form.get("email").trim().to_owned();
    let again = |errors: Value, status| {
        let extra =
            json!({"values": {"email": raw}, "errors": errors, "error": visit.t("error_summary")});
        render(&state, &visit, &me, status, extra)
    };
    let email = match axum_users::normalize_email(&raw) {
        Ok(email) if !raw.is_empty() => email,
        _ => {
            return again(
                json!({"email": visit.t("error_invalid_email")}),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let update = UserUpdate {
        email: Some(email),
        raw: json!({"email": raw}),
        ..UserUpdate::default()
    };
    match change(&state, &parts, &me, &form, update).await {
        Ok(true) => state.redirect(
            &visit,
            &format!("{}?done=email_pending", state.path("account")),
        ),
        Ok(false) => state.redirect(&visit, &format!("{}?done=email", state.path("account"))),
        Err(e) => {
            let (errors, status) = change_refused(&visit, &e, "email_current_password", "email");
            again(errors, status).await
        }
    }
}

/// A self-service change with the form's current password; whether it waits for a
/// confirmation (a new address).
async fn change<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    parts: &Parts,
    me: &Me<S>,
    form: &Form,
    update: UserUpdate<S::Fields>,
) -> Result<bool, ManagerError> {
    let update = UserUpdate {
        current_password: form.secret("current_password"),
        ..update
    };
    let (_, pending) = state
        .users
        .manager()
        .update_pending(me.user.clone(), update, Privilege::SelfService, Some(parts))
        .await?;
    Ok(pending.is_some())
}

/// The field errors of a refused change: on the current password's field, on the new
/// password, or on `field`.
fn change_refused(
    visit: &Visit<'_>,
    e: &ManagerError,
    current_field: &str,
    field: &str,
) -> (Value, StatusCode) {
    let (field, words, status) = match e {
        ManagerError::CurrentPasswordRequired | ManagerError::BadCurrentPassword => (
            current_field,
            visit.t("error_current_password").to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        ManagerError::InvalidPassword(refused) => (
            "password",
            refused_password(visit, refused),
            StatusCode::BAD_REQUEST,
        ),
        other => {
            let (status, key) = error_key(other);
            (field, visit.t(key).to_owned(), status)
        }
    };
    let mut errors = serde_json::Map::new();
    errors.insert(field.to_owned(), Value::String(words));
    (Value::Object(errors), status)
}

/// `POST /account/password`: the other sessions end, this one stays.
pub(crate) async fn change_password<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let again = |errors: Value, status| {
        let extra = json!({"errors": errors, "error": visit.t("error_summary")});
        render(&state, &visit, &me, status, extra)
    };
    if form.get("password").is_empty() {
        return again(
            json!({"password": visit.t("error_required")}),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let update = UserUpdate {
        password: Some(Secret::new(form.get("password"))),
        raw: json!({}),
        ..UserUpdate::default()
    };
    match change(&state, &parts, &me, &form, update).await {
        Ok(_) => state.redirect(&visit, &format!("{}?done=password", state.path("account"))),
        Err(e) => {
            let (errors, status) =
                change_refused(&visit, &e, "current_password", "current_password");
            again(errors, status).await
        }
    }
}

/// `POST /account/sessions/sign-out`: one of the user's other devices.
pub(crate) async fn sign_out_device<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let revoked = state
        .users
        .manager()
        .revoke_session(&me.user.id, form.get("session"), RevokeReason::User)
        .await;
    match revoked {
        Ok(true) => state.redirect(&visit, &format!("{}?done=session", state.path("account"))),
        Ok(false) => failed(&state, &visit, &ManagerError::SessionNotFound),
        Err(e) => failed(&state, &visit, &e),
    }
}

/// `POST /account/sessions/sign-out-others`: every session but this one.
pub(crate) async fn sign_out_others<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: Parts,
    body: Bytes,
) -> Response {
    let (me, visit, _) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let revoked = state
        .users
        .manager()
        .revoke_sessions_for(
            &me.user.id,
            me.session_id.as_deref(),
            RevokeReason::User,
            Some(&parts),
        )
        .await;
    match revoked {
        Ok(_) => state.redirect(&visit, &format!("{}?done=sessions", state.path("account"))),
        Err(e) => failed(&state, &visit, &e),
    }
}

/// `POST /account/oauth/unlink`.
pub(crate) async fn unlink<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let Some(account) = S::Id::parse(form.get("account")) else {
        return failed(&state, &visit, &ManagerError::OAuthAccountNotFound);
    };
    let user: &UserOf<S> = &me.user;
    match state.users.manager().oauth_unlink(user, &account).await {
        Ok(()) => state.redirect(&visit, &format!("{}?done=unlinked", state.path("account"))),
        Err(e) => {
            let (status, key) = error_key(&e);
            render(&state, &visit, &me, status, json!({"error": visit.t(key)})).await
        }
    }
}

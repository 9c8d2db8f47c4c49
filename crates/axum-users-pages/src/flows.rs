//! The pages of a visitor who is not signed in: sign in, sign up, forgot and reset password,
//! verify, confirm an e-mail change; and sign out. Each parses the form, calls the manager
//! and renders its outcome.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum_users::{
    LimitedRoute, LoginOutcome, ManagerError, Privilege, RouterStore, UserCreate, UserHooks,
};
use http::request::Parts;
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::PagesState;
use crate::render::{Visit, error_key, refused_password};

type Pages<S, H> = State<Arc<PagesState<S, H>>>;

fn query(parts: &Parts, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The e-mail field, normalised as registration does, or its error key.
fn email_field(input: &str) -> Result<String, &'static str> {
    if input.trim().is_empty() {
        return Err("error_required");
    }
    axum_users::normalize_email(input).map_err(|_| "error_invalid_email")
}

/// A rate limit of the API route the page stands for; the refusal in words.
async fn limited<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    route: LimitedRoute,
    parts: &Parts,
    account: Option<&str>,
) -> Result<(), ManagerError> {
    state
        .users
        .manager()
        .rate_limit(route, Some(parts), account)
        .await
}

fn sign_in_context<S: RouterStore, H>(state: &PagesState<S, H>, return_to: Option<&str>) -> Value {
    let return_to = return_to.and_then(|r| state.return_to.allowed(r));
    let providers: Vec<Value> = state
        .config
        .providers
        .iter()
        .map(|name| {
            let mut href = format!("{}/oauth/{name}/sign-in", state.config.prefix);
            if let Some(r) = &return_to {
                href.push_str("?return_to=");
                href.extend(percent_encoding::utf8_percent_encode(
                    r,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            json!({"name": name, "label": provider_label(name), "href": href})
        })
        .collect();
    // Where the passkey button goes once signed in: what the form's redirect would be.
    let next = state.return_to.target(return_to.as_deref());
    json!({"return_to": return_to, "providers": providers, "next": next})
}

/// `github` → `GitHub`-ish: the provider's name with a capital.
pub(crate) fn provider_label(name: &str) -> String {
    let known = [
        ("github", "GitHub"),
        ("gitlab", "GitLab"),
        ("linkedin", "LinkedIn"),
    ];
    if let Some((_, label)) = known.iter().find(|(n, _)| *n == name) {
        return (*label).to_owned();
    }
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `GET /sign-in?return_to=...`.
pub(crate) async fn sign_in_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    let mut context = sign_in_context(&state, query(&parts, "return_to").as_deref());
    if query(&parts, "signed_out").is_some() {
        context["notice"] = json!(visit.t("signed_out"));
    }
    if let Some(code) = query(&parts, "error") {
        context["error"] = json!(visit.t(crate::render::code_key(&code)));
    }
    state.page(
        &visit,
        StatusCode::OK,
        "sign_in.html",
        "sign_in_title",
        context,
    )
}

/// `POST /sign-in`: signs in through the cookie backend and goes to `return_to`.
pub(crate) async fn sign_in<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    let form = match state.checked_form(&visit, &parts, &body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let return_to = Some(form.get("return_to")).filter(|r| !r.is_empty());
    let email = form.get("email").trim();
    let again = |status, error: &str, field_errors: Value| {
        let mut context = sign_in_context(&state, return_to);
        context["values"] = json!({"email": email});
        context["error"] = json!(error);
        context["errors"] = field_errors;
        state.page(&visit, status, "sign_in.html", "sign_in_title", context)
    };
    if email.is_empty() || form.get("password").is_empty() {
        let required = visit.t("error_required");
        let errors = json!({
            "email": email.is_empty().then_some(required),
            "password": form.get("password").is_empty().then_some(required),
        });
        return again(StatusCode::BAD_REQUEST, visit.t("error_summary"), errors);
    }
    let backend = &state.users.backends()[state.backend];
    let outcome = state
        .users
        .manager()
        .login_with_password(email, form.get("password"), backend, Some(&parts))
        .await;
    match outcome {
        Ok(LoginOutcome::SignedIn { response, .. }) => {
            signed_in(&state, &visit, &response, return_to)
        }
        Ok(LoginOutcome::SecondFactorRequired { mfa, .. }) => {
            crate::second_factor::required(&state, &visit, mfa.as_ref(), return_to)
        }
        Ok(_) => state.bad_request(&visit),
        Err(e) => {
            let (status, key) = error_key(&e);
            again(status, visit.t(key), json!({}))
        }
    }
}

/// After a sign-in: on to `return_to` (when allowed) with the library's cookie.
pub(crate) fn signed_in<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    response: &Response,
    return_to: Option<&str>,
) -> Response {
    let target = state.return_to.target(return_to);
    let mut answer = state.redirect(visit, &target);
    carry_cookies(response, &mut answer);
    answer
}

/// Copies the `Set-Cookie` headers of a library response (the auth cookie, its removal).
pub(crate) fn carry_cookies(from: &Response, to: &mut Response) {
    for value in from.headers().get_all(header::SET_COOKIE) {
        to.headers_mut().append(header::SET_COOKIE, value.clone());
    }
}

/// `GET /sign-up`.
pub(crate) async fn sign_up_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    state.page(
        &visit,
        StatusCode::OK,
        "sign_up.html",
        "sign_up_title",
        json!({}),
    )
}

/// `POST /sign-up`: registers (self-service), mails the verification link, says so.
pub(crate) async fn sign_up<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    let form = match state.checked_form(&visit, &parts, &body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let raw_email = form.get("email").trim();
    let password = form.get("password");
    let again = |status, errors: Value| {
        let context = json!({
            "values": {"email": raw_email},
            "errors": errors,
            "error": visit.t("error_summary"),
        });
        state.page(&visit, status, "sign_up.html", "sign_up_title", context)
    };
    let email = email_field(raw_email);
    if email.is_err() || password.is_empty() {
        let errors = json!({
            "email": email.as_ref().err().map(|k| visit.t(k)),
            "password": password.is_empty().then(|| visit.t("error_required")),
        });
        return again(StatusCode::BAD_REQUEST, errors);
    }
    let email = email.unwrap_or_default();
    if let Err(e) = limited(&state, LimitedRoute::Register, &parts, Some(&email)).await {
        let (status, key) = error_key(&e);
        return again(status, json!({"email": visit.t(key)}));
    }
    let manager = state.users.manager();
    let created = manager
        .create(
            UserCreate::new(email.clone(), password),
            Privilege::SelfService,
            Some(&parts),
        )
        .await;
    match created {
        Ok(user) => {
            if state.config.send_verification && user.is_active && !user.is_verified {
                // Queued before the answer, so that a crash cannot lose it (the account
                // exists either way: a failure is logged, and "resend" sends it again).
                if let Err(e) = manager.request_verify(&user, Some(&parts)).await {
                    tracing::warn!(error = %e, "pages: the verification mail was not queued");
                }
            }
            let done = visit.t("sign_up_done").replace("{email}", &email);
            state.message(
                &visit,
                StatusCode::CREATED,
                "sign_up_done_title",
                Some(&done),
                Some((state.path("sign-in"), "nav_sign_in")),
            )
        }
        Err(ManagerError::UserAlreadyExists) => again(
            StatusCode::BAD_REQUEST,
            json!({"email": visit.t("error_user_exists")}),
        ),
        Err(ManagerError::InvalidPassword(refused)) => {
            let words = refused_password(&visit, &refused);
            again(StatusCode::BAD_REQUEST, json!({"password": words}))
        }
        Err(e) => {
            let (status, key) = error_key(&e);
            again(status, json!({"email": visit.t(key)}))
        }
    }
}

/// `GET /forgot-password`.
pub(crate) async fn forgot_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    state.page(
        &visit,
        StatusCode::OK,
        "forgot.html",
        "forgot_title",
        json!({}),
    )
}

/// `POST /forgot-password`: the same answer whether the address has an account.
pub(crate) async fn forgot<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    mail_request(&state, &parts, &body, MailRequest::Forgot).await
}

/// The two pages that ask for a mail (a reset link, the verification link again).
#[derive(Debug, Clone, Copy)]
enum MailRequest {
    Forgot,
    Resend,
}

impl MailRequest {
    /// The rate limit of the API route, the page's template and its title.
    fn page(self) -> (LimitedRoute, &'static str, &'static str) {
        match self {
            MailRequest::Forgot => (LimitedRoute::ForgotPassword, "forgot.html", "forgot_title"),
            MailRequest::Resend => (
                LimitedRoute::RequestVerify,
                "verify_resend.html",
                "verify_resend",
            ),
        }
    }
}

/// Reads the address, asks the manager for the mail and answers, once the mail is written, as
/// the API does: the same words at the same time whatever the address
/// ([`axum_users::UserManager::forgot_password_at_floor`]).
async fn mail_request<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    parts: &Parts,
    body: &[u8],
    request: MailRequest,
) -> Response {
    let (route, template, title) = request.page();
    let visit = state.visit(parts);
    let form = match state.checked_form(&visit, parts, body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let email = match email_field(form.get("email")) {
        Ok(email) => email,
        Err(key) => {
            let context = json!({
                "values": {"email": form.get("email")},
                "errors": {"email": visit.t(key)},
                "error": visit.t("error_summary"),
            });
            return state.page(&visit, StatusCode::BAD_REQUEST, template, title, context);
        }
    };
    if let Err(e) = limited(state, route, parts, Some(&email)).await {
        let (status, key) = error_key(&e);
        return state.message(&visit, status, title, Some(visit.t(key)), None);
    }
    let manager = state.users.manager();
    let (done, link) = match request {
        MailRequest::Forgot => {
            manager.forgot_password_at_floor(&email, Some(parts)).await;
            ("forgot_done", Some((state.path("sign-in"), "nav_sign_in")))
        }
        MailRequest::Resend => {
            manager.request_verify_at_floor(&email, Some(parts)).await;
            ("verify_resent", None)
        }
    };
    state.message(&visit, StatusCode::OK, title, Some(visit.t(done)), link)
}

/// A token from the link, or the page that says the link is broken.
#[allow(clippy::result_large_err)] // the refusal is the page itself, answered at once
fn token_of<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    token: Option<String>,
    title_key: &str,
) -> Result<String, Response> {
    match token.filter(|t| !t.is_empty() && t.len() <= 4096) {
        Some(token) => Ok(token),
        None => Err(state.message(
            visit,
            StatusCode::BAD_REQUEST,
            title_key,
            Some(visit.t("error_bad_token")),
            None,
        )),
    }
}

/// `GET /reset-password?token=...`: the form (the token is checked when it is used).
pub(crate) async fn reset_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    match token_of(&state, &visit, query(&parts, "token"), "reset_title") {
        Ok(token) => state.page(
            &visit,
            StatusCode::OK,
            "reset.html",
            "reset_title",
            json!({"token": token}),
        ),
        Err(refused) => refused,
    }
}

/// `POST /reset-password`.
pub(crate) async fn reset<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    let form = match state.checked_form(&visit, &parts, &body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let token = match token_of(
        &state,
        &visit,
        Some(form.get("token").to_owned()),
        "reset_title",
    ) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let again = |status, error: String| {
        let context = json!({
            "token": token,
            "errors": {"password": error},
            "error": visit.t("error_summary"),
        });
        state.page(&visit, status, "reset.html", "reset_title", context)
    };
    if form.get("password").is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            visit.t("error_required").to_owned(),
        );
    }
    if let Err(e) = limited(&state, LimitedRoute::ResetPassword, &parts, None).await {
        let (status, key) = error_key(&e);
        return again(status, visit.t(key).to_owned());
    }
    let result = state
        .users
        .manager()
        .reset_password(&token, form.get("password"), Some(&parts))
        .await;
    match result {
        Ok(_) => state.message(
            &visit,
            StatusCode::OK,
            "reset_title",
            Some(visit.t("reset_done")),
            Some((state.path("sign-in"), "nav_sign_in")),
        ),
        Err(ManagerError::InvalidPassword(refused)) => {
            again(StatusCode::BAD_REQUEST, refused_password(&visit, &refused))
        }
        Err(e) => {
            let (status, key) = error_key(&e);
            let link = Some((state.path("forgot-password"), "forgot_title"));
            state.message(&visit, status, "reset_title", Some(visit.t(key)), link)
        }
    }
}

/// The confirmation form of a mailed link (verify, e-mail change): a GET changes nothing.
fn confirm_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    parts: &Parts,
    page: &str,
    keys: [&str; 3],
) -> Response {
    let [title, intro, button] = keys;
    match token_of(state, visit, query(parts, "token"), title) {
        Ok(token) => state.page(
            visit,
            StatusCode::OK,
            "confirm.html",
            title,
            json!({
                "token": token,
                "intro": visit.t(intro),
                "button": visit.t(button),
                "action": state.path(page),
            }),
        ),
        Err(refused) => refused,
    }
}

/// `GET /verify?token=...`.
pub(crate) async fn verify_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    confirm_page(
        &state,
        &visit,
        &parts,
        "verify",
        ["verify_title", "verify_intro", "verify_button"],
    )
}

/// `POST /verify`.
pub(crate) async fn verify<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    let form = match state.checked_form(&visit, &parts, &body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let token = match token_of(
        &state,
        &visit,
        Some(form.get("token").to_owned()),
        "verify_title",
    ) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    if let Err(e) = limited(&state, LimitedRoute::Verify, &parts, None).await {
        let (status, key) = error_key(&e);
        return state.message(&visit, status, "verify_title", Some(visit.t(key)), None);
    }
    match state.users.manager().verify(&token, Some(&parts)).await {
        Ok(_) => state.message(
            &visit,
            StatusCode::OK,
            "verify_title",
            Some(visit.t("verify_done")),
            Some((state.path("sign-in"), "nav_sign_in")),
        ),
        Err(ManagerError::UserAlreadyVerified) => state.message(
            &visit,
            StatusCode::OK,
            "verify_title",
            Some(visit.t("error_already_verified")),
            Some((state.path("sign-in"), "nav_sign_in")),
        ),
        Err(e) => {
            let (status, key) = error_key(&e);
            let link = Some((state.path("verify/resend"), "verify_resend"));
            state.message(&visit, status, "verify_title", Some(visit.t(key)), link)
        }
    }
}

/// `GET /verify/resend`.
pub(crate) async fn resend_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    state.page(
        &visit,
        StatusCode::OK,
        "verify_resend.html",
        "verify_resend",
        json!({}),
    )
}

/// `POST /verify/resend`: the same answer whether the address needs verifying.
pub(crate) async fn resend<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    mail_request(&state, &parts, &body, MailRequest::Resend).await
}

/// `GET /confirm-email-change?token=...`.
pub(crate) async fn email_change_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    confirm_page(
        &state,
        &visit,
        &parts,
        "confirm-email-change",
        [
            "email_change_title",
            "email_change_intro",
            "email_change_button",
        ],
    )
}

/// `POST /confirm-email-change`: the signed-in session that confirms survives the change.
pub(crate) async fn email_change<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    let form = match state.checked_form(&visit, &parts, &body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let title = "email_change_title";
    let token = match token_of(&state, &visit, Some(form.get("token").to_owned()), title) {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    if let Err(e) = limited(&state, LimitedRoute::Verify, &parts, None).await {
        let (status, key) = error_key(&e);
        return state.message(&visit, status, title, Some(visit.t(key)), None);
    }
    if let Ok(Some(me)) = state.signed_in(&parts).await
        && let Some(sid) = me.session_id
    {
        parts.extensions.insert(axum_users::CurrentSession(sid));
    }
    let confirmed = state
        .users
        .manager()
        .confirm_email_change(&token, Some(&parts))
        .await;
    match confirmed {
        Ok(_) => state.message(
            &visit,
            StatusCode::OK,
            title,
            Some(visit.t("email_change_done")),
            Some((state.path("account"), "nav_account")),
        ),
        Err(e) => {
            let (status, key) = error_key(&e);
            state.message(&visit, status, title, Some(visit.t(key)), None)
        }
    }
}

/// `POST /sign-out`: ends this session through the manager, clears the cookie.
pub(crate) async fn sign_out<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    if let Err(refused) = state.checked_form(&visit, &parts, &body) {
        return refused;
    }
    let target = format!("{}?signed_out=1", state.path("sign-in"));
    let me = match state.signed_in(&parts).await {
        Ok(Some(me)) => me,
        _ => return state.redirect(&visit, &target),
    };
    let Some(backend) = state.users.backends().iter().find(|b| b.name == me.backend) else {
        return state.redirect(&visit, &target);
    };
    match state.users.manager().logout(backend, &me.token).await {
        Ok(response) => {
            let mut answer = state.redirect(&visit, &target);
            carry_cookies(&response, &mut answer);
            answer
        }
        Err(e) => {
            let (status, key) = error_key(&e);
            state.message(&visit, status, "error_title", Some(visit.t(key)), None)
        }
    }
}

/// Any other path under the prefix.
pub(crate) async fn not_found<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
) -> Response {
    let visit = state.visit(&parts);
    let mut response = state.message(
        &visit,
        StatusCode::NOT_FOUND,
        "error_not_found",
        None,
        Some((state.path("sign-in"), "nav_sign_in")),
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.into_response()
}

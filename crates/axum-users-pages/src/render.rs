//! Templates compiled into the binary, the visit (language and CSRF cookie of one request),
//! and the answers the pages give: a page, a redirect, a refusal in words.

use axum::response::{IntoResponse, Response};
use axum_users::{InvalidPassword, ManagerError, PasswordRefusal, RouterStore, UserHooks};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::i18n::Locale;
use crate::security::{Form, csrf_cookie, same_origin};
use crate::{PagesError, PagesState};

/// The templates, by file name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("sign_up.html", include_str!("../templates/sign_up.html")),
    ("forgot.html", include_str!("../templates/forgot.html")),
    ("reset.html", include_str!("../templates/reset.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("message.html", include_str!("../templates/message.html")),
    (
        "verify_resend.html",
        include_str!("../templates/verify_resend.html"),
    ),
    ("account.html", include_str!("../templates/account.html")),
    (
        "second_factor.html",
        include_str!("../templates/second_factor.html"),
    ),
    (
        "two_step_setup.html",
        include_str!("../templates/two_step_setup.html"),
    ),
    (
        "recovery_codes.html",
        include_str!("../templates/recovery_codes.html"),
    ),
];

const STYLESHEET: &str = include_str!("../static/pages.css");

pub(crate) fn templates() -> Result<minijinja::Environment<'static>, PagesError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| PagesError::Broken(format!("{name}: {e}")))?;
    }
    Ok(env)
}

/// `GET {prefix}/static/pages.css`.
pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// One request's language and CSRF cookie (a new one when the browser has none yet).
pub(crate) struct Visit<'a> {
    pub(crate) locale: &'a Locale,
    csrf_cookie: String,
    new_cookie: bool,
    pub(crate) signed_in: bool,
}

impl<'a> Visit<'a> {
    pub(crate) fn t(&self, key: &'a str) -> &'a str {
        self.locale.get(key)
    }
}

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> PagesState<S, H> {
    pub(crate) fn visit(&self, parts: &Parts) -> Visit<'_> {
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let existing = csrf_cookie(self.config.secure_cookies).read(&parts.headers);
        let new_cookie = existing.is_none();
        Visit {
            locale: self.locales.choose(accept),
            csrf_cookie: existing.unwrap_or_else(|| axum_users::random_token(32)),
            new_cookie,
            signed_in: false,
        }
    }

    fn csrf_token(&self, visit: &Visit<'_>) -> String {
        self.keys.sign("csrf", &visit.csrf_cookie)
    }

    /// The form of a POST, once its origin and its CSRF token passed; else the refusal.
    #[allow(clippy::result_large_err)] // the refusal is the page itself, answered at once
    pub(crate) fn checked_form(
        &self,
        visit: &Visit<'_>,
        parts: &Parts,
        body: &[u8],
    ) -> Result<Form, Response> {
        let form = Form::parse(body);
        let token_ok = form.as_ref().is_some_and(|f| {
            !visit.new_cookie && self.keys.verify("csrf", &visit.csrf_cookie, f.get("csrf"))
        });
        if !same_origin(parts) || !token_ok {
            tracing::info!(path = %parts.uri.path(), "pages: a form without a valid origin or CSRF token was refused");
            return Err(self.message(
                visit,
                StatusCode::FORBIDDEN,
                "error_title_refused",
                Some(visit.t("error_csrf")),
                None,
            ));
        }
        form.ok_or_else(|| self.bad_request(visit))
    }

    /// A page: `template` with the common context and `extra`, under `title_key`.
    pub(crate) fn page(
        &self,
        visit: &Visit<'_>,
        status: StatusCode,
        template: &str,
        title_key: &str,
        extra: Value,
    ) -> Response {
        let mut context = Map::new();
        context.insert("t".into(), json!(visit.locale.strings));
        context.insert("lang".into(), json!(visit.locale.tag));
        context.insert("prefix".into(), json!(self.config.prefix));
        context.insert("app_name".into(), json!(self.config.app_name));
        context.insert("csrf".into(), json!(self.csrf_token(visit)));
        context.insert("title".into(), json!(visit.t(title_key)));
        context.insert("signed_in".into(), json!(visit.signed_in));
        context.insert("passkey_ui".into(), json!(crate::passkeys::ui(self, visit)));
        context.insert("values".into(), json!({}));
        context.insert("errors".into(), json!({}));
        context.insert(
            "min_length".into(),
            json!(self.users.manager().defences().password_policy.min_length),
        );
        if let Value::Object(extra) = extra {
            context.extend(extra);
        }
        let rendered = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(minijinja::Value::from_serialize(&context)));
        let mut response = match rendered {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "pages: a template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    visit.t("error_internal").to_owned(),
                )
                    .into_response()
            }
        };
        self.keep_cookie(visit, &mut response);
        response
    }

    /// A page of one message, with an optional link.
    pub(crate) fn message(
        &self,
        visit: &Visit<'_>,
        status: StatusCode,
        title_key: &str,
        message: Option<&str>,
        link: Option<(String, &str)>,
    ) -> Response {
        let link = link.map(|(href, label)| json!({"href": href, "label": visit.t(label)}));
        let (error, message) = if status.is_success() {
            (None, message)
        } else {
            (message, None)
        };
        self.page(
            visit,
            status,
            "message.html",
            title_key,
            json!({"message": message, "error": error, "link": link}),
        )
    }

    pub(crate) fn bad_request(&self, visit: &Visit<'_>) -> Response {
        self.message(
            visit,
            StatusCode::BAD_REQUEST,
            "error_title",
            Some(visit.t("error_internal")),
            None,
        )
    }

    /// A 303 to `location` (a path of the pages or an allowed URL).
    pub(crate) fn redirect(&self, visit: &Visit<'_>, location: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        if let Ok(value) = HeaderValue::from_str(location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        self.keep_cookie(visit, &mut response);
        response
    }

    /// Sets the CSRF cookie when the visit made a new one.
    fn keep_cookie(&self, visit: &Visit<'_>, response: &mut Response) {
        if !visit.new_cookie {
            return;
        }
        let cookie = csrf_cookie(self.config.secure_cookies).set_cookie(&visit.csrf_cookie, None);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }

    pub(crate) fn path(&self, page: &str) -> String {
        format!("{}/{page}", self.config.prefix)
    }
}

/// The message key of a manager error that any page may meet; `None` for the ones each page
/// words itself.
pub(crate) fn error_key(e: &ManagerError) -> (StatusCode, &'static str) {
    use axum_users::PasswordError;
    match e {
        ManagerError::BadCredentials => (StatusCode::BAD_REQUEST, "error_bad_credentials"),
        ManagerError::UserNotVerified => (StatusCode::BAD_REQUEST, "error_not_verified"),
        ManagerError::LoginRefused(_) => (StatusCode::TOO_MANY_REQUESTS, "error_too_many"),
        ManagerError::UserAlreadyExists => (StatusCode::BAD_REQUEST, "error_email_taken"),
        ManagerError::CurrentPasswordRequired | ManagerError::BadCurrentPassword => {
            (StatusCode::BAD_REQUEST, "error_current_password")
        }
        ManagerError::InvalidResetPasswordToken
        | ManagerError::InvalidVerifyToken
        | ManagerError::InvalidEmailChangeToken => (StatusCode::BAD_REQUEST, "error_bad_token"),
        ManagerError::UserAlreadyVerified => (StatusCode::BAD_REQUEST, "error_already_verified"),
        ManagerError::LastSignInMethod => (StatusCode::BAD_REQUEST, "error_last_method"),
        ManagerError::OAuthAccountNotFound | ManagerError::SessionNotFound => {
            (StatusCode::NOT_FOUND, "error_not_found")
        }
        ManagerError::Password(PasswordError::Busy) | ManagerError::Store(_) => {
            tracing::warn!(error = %e, "pages: a service is unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "error_unavailable")
        }
        other => {
            tracing::error!(error = %other, "pages: an operation failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "error_internal")
        }
    }
}

/// The words of a refused password: the policy's reasons in the visitor's language, the
/// application's own (from its `validate_password`) as they are.
pub(crate) fn refused_password(visit: &Visit<'_>, refused: &InvalidPassword) -> String {
    visit
        .t("error_password_refused")
        .replace("{reason}", &reason_text(visit, &refused.reason))
}

/// A reason as a sentence (it is any JSON value; usually a string).
fn reason_text(visit: &Visit<'_>, reason: &Value) -> String {
    if let Some(refusal) = PasswordRefusal::of(reason) {
        return policy_reason(visit, refusal);
    }
    match reason {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| reason_text(visit, item))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Object(map) => map
            .get("reason")
            .or_else(|| map.get("message"))
            .map(|inner| reason_text(visit, inner))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// One of the policy's refusals, from the locale file.
fn policy_reason(visit: &Visit<'_>, refusal: PasswordRefusal) -> String {
    let (key, n) = match refusal {
        PasswordRefusal::TooShort(n) => ("password_too_short", Some(n)),
        PasswordRefusal::TooLong(n) => ("password_too_long", Some(n)),
        PasswordRefusal::ContainsEmail => ("password_contains_email", None),
        PasswordRefusal::ContainsServiceName => ("password_contains_service", None),
        PasswordRefusal::TooCommon => ("password_too_common", None),
        PasswordRefusal::Breached => ("password_breached", None),
        // A refusal newer than these pages: the API's English words.
        other => return other.to_string(),
    };
    let words = visit.t(key);
    match n {
        Some(n) => words.replace("{n}", &n.to_string()),
        None => words.to_owned(),
    }
}

/// The words of a stable error code an OAuth callback answered with.
pub(crate) fn code_key(code: &str) -> &'static str {
    match code {
        "LOGIN_BAD_CREDENTIALS" => "error_bad_credentials",
        "LOGIN_USER_NOT_VERIFIED" => "error_not_verified",
        "TOO_MANY_REQUESTS" => "error_too_many",
        "OAUTH_ACCOUNT_ALREADY_LINKED" => "error_oauth_linked_elsewhere",
        "OAUTH_USER_ALREADY_EXISTS"
        | "OAUTH_EMAIL_NOT_VERIFIED"
        | "OAUTH_NOT_AVAILABLE_EMAIL"
        | "OAUTH_INVALID_EMAIL" => "error_oauth_email",
        "OAUTH_LAST_SIGN_IN_METHOD" => "error_last_method",
        "SERVICE_UNAVAILABLE" | "OAUTH_PROVIDER_UNAVAILABLE" => "error_unavailable",
        "UNAUTHORIZED" => "error_signed_out",
        _ => "error_oauth",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Locales;

    fn visit(locale: &Locale) -> Visit<'_> {
        Visit {
            locale,
            csrf_cookie: String::new(),
            new_cookie: false,
            signed_in: false,
        }
    }

    #[test]
    fn the_policys_reasons_are_translated_and_the_applications_kept() {
        let locales = Locales::load().unwrap();
        let (en, fr) = (
            visit(locales.choose(None)),
            visit(locales.choose(Some("fr"))),
        );
        let refusals = [
            PasswordRefusal::TooShort(12),
            PasswordRefusal::TooLong(64),
            PasswordRefusal::ContainsEmail,
            PasswordRefusal::ContainsServiceName,
            PasswordRefusal::TooCommon,
            PasswordRefusal::Breached,
        ];
        for refusal in refusals {
            let refused = InvalidPassword::from(refusal);
            let english = refused_password(&en, &refused);
            assert_eq!(
                english,
                format!("This password is refused: {refusal}"),
                "English keeps the API's words"
            );
            let french = refused_password(&fr, &refused);
            assert!(
                french.starts_with("Ce mot de passe est refusé : ")
                    && !french.contains(&refusal.to_string())
                    && !french.contains('{'),
                "{french}"
            );
        }
        let short = refused_password(&fr, &PasswordRefusal::TooShort(12).into());
        assert!(short.contains("au moins 12 caractères"), "{short}");
        let own = InvalidPassword::new("Must rhyme with orange");
        assert_eq!(
            refused_password(&fr, &own),
            "Ce mot de passe est refusé : Must rhyme with orange",
            "the application's own reason as it is"
        );
    }
}

//! Passkeys on the pages: what the one script (`static/passkeys.js`) needs to call the
//! library's JSON routes (their paths and the error words), the list on the account page, and
//! the two acts that need no script: rename and remove (plain forms with the CSRF token).
//! Adding a passkey and signing in with one run in the browser (WebAuthn has no form), over
//! the library's routes; every rule is the manager's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum_users::{ManagerError, RouterStore, UserHooks};
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::PagesState;
use crate::account::{Me, account_post, again, when};
use crate::render::{Visit, error_key};

type Pages<S, H> = State<Arc<PagesState<S, H>>>;

const SCRIPT: &str = include_str!("../static/passkeys.js");

/// `GET {prefix}/static/passkeys.js`: the pages' one script, allowed by `script-src 'self'`.
pub(crate) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The error codes of the passkey routes a visitor may meet, with the words the script shows.
const CODE_WORDS: &[(&str, &str)] = &[
    (
        "UPDATE_USER_CURRENT_PASSWORD_REQUIRED",
        "error_current_password",
    ),
    ("UPDATE_USER_BAD_CURRENT_PASSWORD", "error_current_password"),
    ("MFA_RECENT_SIGN_IN_REQUIRED", "error_mfa_recent"),
    ("MFA_TOKEN_INVALID", "error_mfa_expired"),
    ("PASSKEY_INVALID", "error_passkey_invalid"),
    ("PASSKEY_NOT_FOUND", "error_passkey_invalid"),
    ("PASSKEY_CHALLENGE_INVALID", "error_passkey_challenge"),
    ("PASSKEY_LIMIT_REACHED", "error_passkey_limit"),
    ("PASSKEY_NAME_INVALID", "error_passkey_name"),
    ("LOGIN_BAD_CREDENTIALS", "error_passkey_invalid"),
    ("LOGIN_USER_NOT_VERIFIED", "error_not_verified"),
    ("TOO_MANY_REQUESTS", "error_too_many"),
    ("SERVICE_UNAVAILABLE", "error_unavailable"),
];

/// The words of what the browser says (or the script does), by the script's names.
const SCRIPT_WORDS: &[(&str, &str)] = &[
    ("cancelled", "error_passkey_cancelled"),
    ("failed", "error_passkey_failed"),
    ("exists", "error_passkey_exists"),
    ("working", "passkey_working"),
];

/// What the script needs on a page, `None` when passkeys are off: the library's routes of the
/// pages' cookie backend and the words of every answer it may get (an attribute, no inline
/// script).
pub(crate) fn ui<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
) -> Option<Value> {
    if !state.users.manager().passkeys_on() {
        return None;
    }
    let backend = &state.users.backends()[state.backend].name;
    let mut words = serde_json::Map::new();
    for (code, key) in CODE_WORDS {
        words.insert((*code).to_owned(), json!(visit.t(key)));
    }
    for (name, key) in SCRIPT_WORDS {
        words.insert((*name).to_owned(), json!(visit.t(key)));
    }
    Some(json!({
        "sign_in_start": format!("/auth/{backend}/passkey/start"),
        "sign_in_finish": format!("/auth/{backend}/passkey/finish"),
        "mfa_start": format!("/auth/{backend}/mfa/passkey/start"),
        "mfa_finish": format!("/auth/{backend}/mfa/passkey/finish"),
        "register_start": "/users/me/passkeys/register/start",
        "register_finish": "/users/me/passkeys/register/finish",
        // JSON in an attribute, escaped by the template: the script reads it, no inline script.
        "words": Value::Object(words).to_string(),
    }))
}

/// The user's passkeys for the account page: `None` when passkeys are off.
pub(crate) async fn list<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    me: &Me<S>,
) -> Result<Option<Value>, ManagerError> {
    let manager = state.users.manager();
    if !manager.passkeys_on() {
        return Ok(None);
    }
    let items: Vec<Value> = manager
        .passkeys(&me.user)
        .await?
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "created_at": when(p.created_at),
                "last_used_at": p.last_used_at.map(when),
            })
        })
        .collect();
    Ok(Some(json!({
        "items": items,
        "has_password": me.user.hashed_password.is_usable(),
    })))
}

/// The words of a refused passkey act.
fn refusal(e: &ManagerError) -> (StatusCode, &'static str) {
    match e {
        ManagerError::MfaRecentSignInRequired => (StatusCode::BAD_REQUEST, "error_mfa_recent"),
        ManagerError::PasskeyNameInvalid => (StatusCode::BAD_REQUEST, "error_passkey_name"),
        ManagerError::PasskeyNotFound => (StatusCode::NOT_FOUND, "error_passkey_invalid"),
        other => error_key(other),
    }
}

/// `POST /account/passkeys/rename`: a new name for one of the user's passkeys.
pub(crate) async fn rename<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let id = form.get("passkey");
    let renamed = state
        .users
        .manager()
        .rename_passkey(&me.user, id, form.get("name"))
        .await;
    match renamed {
        Ok(_) => state.redirect(
            &visit,
            &format!("{}?done=passkey_renamed", state.path("account")),
        ),
        Err(e) => {
            again(
                &state,
                &visit,
                &me,
                &format!("passkey_name_{id}"),
                refusal(&e),
            )
            .await
        }
    }
}

/// `POST /account/passkeys/remove`: with the current password (or a recent sign-in for a
/// user without one); the user's other sessions end.
pub(crate) async fn remove<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let id = form.get("passkey");
    let password = form.secret("current_password");
    let removed = state
        .users
        .manager()
        .remove_passkey(
            &me.user,
            id,
            password.as_ref(),
            me.session_id.as_deref(),
            Some(&parts),
        )
        .await;
    match removed {
        Ok(()) => state.redirect(
            &visit,
            &format!("{}?done=passkey_removed", state.path("account")),
        ),
        Err(e) => {
            let field = format!("passkey_remove_{id}");
            again(&state, &visit, &me, &field, refusal(&e)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_the_script_shows_is_in_every_locale() {
        let locales = crate::i18n::Locales::load().unwrap();
        for tag in ["en", "fr"] {
            let locale = locales.choose(Some(tag));
            assert_eq!(locale.tag, tag);
            for (_, key) in CODE_WORDS.iter().chain(SCRIPT_WORDS) {
                assert_ne!(locale.get(key), *key, "{tag} words {key}");
            }
        }
    }
}

//! Two-step sign-in on the account page, over the manager's TOTP API: start (current password,
//! or a recent sign-in for a user without one), the QR code and the secret with a form for the
//! first code, the ten recovery codes shown once, new recovery codes, and turning it off.
//! Every rule (throttle, replay, proofs) is the manager's; the pages word its answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum_users::{ManagerError, MfaProof, RouterStore, Secret, UserHooks};
use http::StatusCode;
use serde_json::{Value, json};

use crate::PagesState;
use crate::account::{Me, account_post, again};
use crate::render::{Visit, error_key};

type Pages<S, H> = State<Arc<PagesState<S, H>>>;

/// What the account page shows of the second factor: `None` when the store keeps none.
pub(crate) async fn status<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    me: &Me<S>,
) -> Result<Option<Value>, ManagerError> {
    match state.users.manager().mfa_status(&me.user).await {
        Ok(status) => Ok(Some(json!({
            "on": status.totp,
            "codes_left": status.recovery_codes_left,
            "has_password": me.user.hashed_password.is_usable(),
        }))),
        Err(ManagerError::MfaUnavailable) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The words of a refused second-factor act, and the field they belong to.
fn refusal(e: &ManagerError) -> (StatusCode, &'static str) {
    match e {
        ManagerError::MfaInvalidCode => (StatusCode::BAD_REQUEST, "error_mfa_code"),
        ManagerError::MfaRecentSignInRequired => (StatusCode::BAD_REQUEST, "error_mfa_recent"),
        ManagerError::MfaAlreadyEnabled => (StatusCode::BAD_REQUEST, "error_mfa_already_on"),
        ManagerError::MfaNotEnabled => (StatusCode::BAD_REQUEST, "error_mfa_not_on"),
        other => error_key(other),
    }
}

/// `POST /account/two-step/start`: a new secret, shown with its QR code and a form for the
/// first code. A restart replaces an unconfirmed secret.
pub(crate) async fn start<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let password = form.secret("current_password");
    let begun = state
        .users
        .manager()
        .begin_totp(
            &me.user,
            password.as_ref(),
            me.session_id.as_deref(),
            Some(&parts),
        )
        .await;
    match begun {
        Ok(enrolment) => setup(
            &state,
            &visit,
            StatusCode::OK,
            Some((&enrolment.qr_svg, enrolment.secret.expose())),
            None,
        ),
        Err(e) => again(&state, &visit, &me, "mfa_current_password", refusal(&e)).await,
    }
}

/// The setup page: the QR code and the secret (only right after the start), and the form for
/// the first code.
fn setup<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    status: StatusCode,
    enrolment: Option<(&str, &str)>,
    error: Option<&str>,
) -> Response {
    let (qr, secret) = match enrolment {
        Some((svg, secret)) => (Some(inline_svg(svg)), Some(grouped(secret))),
        None => (None, None),
    };
    state.page(
        visit,
        status,
        "two_step_setup.html",
        "two_step_setup_title",
        json!({
            "qr_svg": qr,
            "secret": secret,
            "error": error.map(|_| visit.t("error_summary")),
            "errors": {"code": error},
        }),
    )
}

/// The SVG document as markup to place in the page (no XML declaration). It is our own
/// crate's drawing of the URI: paths and rectangles, no script, no style.
fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].to_owned()
}

/// The base32 secret in groups of four, easier to type.
fn grouped(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The page of new recovery codes: shown this once.
fn codes_page<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    codes: &[Secret],
    intro_key: &str,
) -> Response {
    let codes: Vec<&str> = codes.iter().map(Secret::expose).collect();
    state.page(
        visit,
        StatusCode::OK,
        "recovery_codes.html",
        "recovery_codes_title",
        json!({"codes": codes, "intro": visit.t(intro_key)}),
    )
}

/// `POST /account/two-step/confirm`: the first code turns it on; the recovery codes follow.
pub(crate) async fn confirm<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let code = form.get("code").trim();
    if code.is_empty() {
        let error = visit.t("error_required");
        return setup(&state, &visit, StatusCode::BAD_REQUEST, None, Some(error));
    }
    let confirmed = state
        .users
        .manager()
        .confirm_totp(&me.user, code, me.session_id.as_deref(), Some(&parts))
        .await;
    match confirmed {
        Ok(codes) => codes_page(&state, &visit, &codes, "recovery_codes_intro_on"),
        Err(ManagerError::MfaInvalidCode) => {
            let error = visit.t("error_mfa_code");
            setup(&state, &visit, StatusCode::BAD_REQUEST, None, Some(error))
        }
        Err(e) => again(&state, &visit, &me, "mfa_current_password", refusal(&e)).await,
    }
}

/// `POST /account/two-step/recovery-codes`: ten new codes for a current code; the old ones end.
pub(crate) async fn regenerate<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let code = form.get("code").trim();
    if code.is_empty() {
        let refused = (StatusCode::BAD_REQUEST, "error_required");
        return again(&state, &visit, &me, "mfa_regenerate_code", refused).await;
    }
    let regenerated = state
        .users
        .manager()
        .regenerate_recovery_codes(&me.user, code, Some(&parts))
        .await;
    match regenerated {
        Ok(codes) => codes_page(&state, &visit, &codes, "recovery_codes_intro_new"),
        Err(e) => again(&state, &visit, &me, "mfa_regenerate_code", refusal(&e)).await,
    }
}

/// `POST /account/two-step/off`: with a current code, or the current password.
pub(crate) async fn turn_off<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Response {
    let (me, visit, form) = match account_post(&state, &mut parts, &body).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let code = form.get("code").trim();
    let password = form.get("current_password");
    let (proof, field) = match (code.is_empty(), password.is_empty()) {
        (false, _) => (MfaProof::Code(code.to_owned()), "mfa_off_code"),
        (true, false) => (
            MfaProof::CurrentPassword(Secret::new(password)),
            "mfa_off_password",
        ),
        (true, true) => {
            let refused = (StatusCode::BAD_REQUEST, "error_mfa_proof");
            return again(&state, &visit, &me, "mfa_off_code", refused).await;
        }
    };
    match state
        .users
        .manager()
        .disable_totp(&me.user, proof, Some(&parts))
        .await
    {
        Ok(()) => state.redirect(
            &visit,
            &format!("{}?done=two_step_off", state.path("account")),
        ),
        Err(e) => again(&state, &visit, &me, field, refusal(&e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_grouped_and_the_svg_loses_its_declaration() {
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
        let svg =
            "<?xml version=\"1.0\" standalone=\"yes\"?><svg xmlns=\"x\"><path d=\"M0 0\"/></svg>";
        assert_eq!(inline_svg(svg), "<svg xmlns=\"x\"><path d=\"M0 0\"/></svg>");
    }
}

//! The second step of a sign-in, when the manager answers `SecondFactorRequired`: a form for a
//! code of the authenticator app and one for a recovery code, each carrying the mfa token of
//! the first step (a hidden field, never the URL) and `return_to`. The manager checks the
//! answer (`login_with_second_factor`: throttle, five tries, single use); a wrong code shows
//! the form again with the same token, a dead token sends the visitor back to sign in.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum_users::{
    LoginOutcome, ManagerError, MfaRequired, RouterStore, SecondFactorAnswer, Secret, UserHooks,
};
use http::StatusCode;
use http::request::Parts;
use serde_json::json;

use crate::PagesState;
use crate::render::{Visit, error_key};

type Pages<S, H> = State<Arc<PagesState<S, H>>>;

/// The form of the second step, for the pending sign-in `mfa_token`.
pub(crate) fn form<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    status: StatusCode,
    mfa_token: &str,
    methods: &[&str],
    return_to: Option<&str>,
    error: Option<&str>,
) -> Response {
    state.page(
        visit,
        status,
        "second_factor.html",
        "second_factor_title",
        json!({
            "mfa_token": mfa_token,
            "recovery": methods.contains(&"recovery_code"),
            "passkey": methods.contains(&"passkey"),
            "next": state.return_to.target(return_to),
            "return_to": return_to,
            "error": error,
            "errors": {"code": error},
        }),
    )
}

/// What the sign-in page answers when the manager asks for the second factor.
pub(crate) fn required<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    visit: &Visit<'_>,
    mfa: Option<&MfaRequired>,
    return_to: Option<&str>,
) -> Response {
    match mfa {
        Some(mfa) => form(
            state,
            visit,
            StatusCode::OK,
            mfa.mfa_token.expose(),
            &mfa.methods,
            return_to,
            None,
        ),
        // Only the application's `second_factor` hook asked: the pages cannot answer it.
        None => state.message(
            visit,
            StatusCode::OK,
            "second_factor_title",
            Some(visit.t("second_factor_unavailable")),
            None,
        ),
    }
}

/// `POST /second-factor`: finishes the sign-in with a TOTP code or a recovery code.
pub(crate) async fn submit<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): Pages<S, H>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let visit = state.visit(&parts);
    let form_data = match state.checked_form(&visit, &parts, &body) {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let return_to = Some(form_data.get("return_to")).filter(|r| !r.is_empty());
    let mfa_token = form_data.get("mfa_token");
    let recovery = form_data.get("recovery_code").trim();
    let code = form_data.get("code").trim();
    let methods = ["totp", "recovery_code"];
    let answer = match (code.is_empty(), recovery.is_empty()) {
        (false, true) => SecondFactorAnswer::Code(code.to_owned()),
        (true, false) => SecondFactorAnswer::RecoveryCode(Secret::new(recovery.to_owned())),
        _ => {
            let error = visit.t("error_required");
            let status = StatusCode::BAD_REQUEST;
            return form(
                &state,
                &visit,
                status,
                mfa_token,
                &methods,
                return_to,
                Some(error),
            );
        }
    };
    let backend = &state.users.backends()[state.backend];
    let outcome = state
        .users
        .manager()
        .login_with_second_factor(mfa_token, answer, backend, Some(&parts))
        .await;
    match outcome {
        Ok(LoginOutcome::SignedIn { response, .. }) => {
            crate::flows::signed_in(&state, &visit, &response, return_to)
        }
        Ok(_) => state.bad_request(&visit),
        Err(ManagerError::MfaInvalidCode) => {
            let error = visit.t("error_mfa_code");
            let status = StatusCode::BAD_REQUEST;
            form(
                &state,
                &visit,
                status,
                mfa_token,
                &methods,
                return_to,
                Some(error),
            )
        }
        Err(ManagerError::MfaTokenInvalid) => state.message(
            &visit,
            StatusCode::BAD_REQUEST,
            "second_factor_title",
            Some(visit.t("error_mfa_expired")),
            Some((format!("{}/sign-in", state.config.prefix), "nav_sign_in")),
        ),
        Err(e) => {
            let (status, key) = error_key(&e);
            state.message(&visit, status, "error_title", Some(visit.t(key)), None)
        }
    }
}

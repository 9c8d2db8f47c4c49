//! Users with a second factor for the TOTP sign-in scenario: enrolled through the API (the
//! secret read from the enrolment's answer, the codes computed here by RFC 6238 through
//! `totp-rs`, as an authenticator app would), and the replay rule kept on the client side: a
//! user's step is used once, and never a step before the last one used.

use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use totp_rs::{Algorithm, TOTP};

use crate::load::{self, Conn};

/// Seconds per step, digits per code and steps of skew the server accepts (RFC 6238 defaults).
const STEP: i64 = 30;
const DIGITS: usize = 6;
const SKEW: i64 = 1;

/// A user whose sign-in asks for a TOTP code.
pub struct TotpUser {
    /// The login form (`username`, `password`).
    pub form: Bytes,
    totp: TOTP,
    /// The last step whose code the server accepted (or refused: it is spent either way).
    last_step: Mutex<i64>,
}

impl TotpUser {
    /// A user of `secret` (base32, as the enrolment answers it) whose last used step is `last`.
    ///
    /// # Errors
    /// When the secret is not base32.
    pub fn new(form: Bytes, secret_base32: &str, last: i64) -> Result<Self> {
        let bytes = totp_rs::Secret::Encoded(secret_base32.to_owned())
            .to_bytes()
            .map_err(|e| anyhow::anyhow!("the TOTP secret is not base32: {e:?}"))?;
        Ok(Self {
            form,
            totp: TOTP::new_unchecked(
                Algorithm::SHA1,
                DIGITS,
                SKEW as u8,
                STEP as u64,
                bytes,
                None,
                String::new(),
            ),
            last_step: Mutex::new(last),
        })
    }

    /// The earliest step the server accepts now that this user has not used: within one step
    /// of the current one, after the last used. `None` until the next step begins.
    pub fn next_step(&self) -> Option<i64> {
        self.next_step_at(now_step())
    }

    /// [`Self::next_step`] when the current step is `current`.
    pub fn next_step_at(&self, current: i64) -> Option<i64> {
        let last = self.last_step.lock().map(|l| *l).unwrap_or(i64::MAX);
        let step = (last + 1).max(current - SKEW);
        (step <= current + SKEW).then_some(step)
    }

    /// Marks `step` used.
    pub fn spend(&self, step: i64) {
        if let Ok(mut last) = self.last_step.lock() {
            *last = (*last).max(step);
        }
    }

    /// The code of `step`.
    pub fn code(&self, step: i64) -> String {
        self.totp
            .generate(u64::try_from(step * STEP).unwrap_or_default())
    }
}

/// The current 30-second step.
pub fn now_step() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now.div_euclid(STEP)
}

/// Registers `email`, signs in, starts TOTP with the current password and confirms it with the
/// current code: the user's later sign-ins ask for a code.
///
/// # Errors
/// When a step answers otherwise than the API documents.
pub async fn enrol(conn: &mut Conn, email: &str, password: &str) -> Result<TotpUser> {
    let body = serde_json::json!({"email": email, "password": password});
    let reply = conn.send(load::post_json("/auth/register", &body)).await?;
    expect(&reply, StatusCode::CREATED, "register (TOTP user)")?;
    let form = load::login_form(email, password);
    let request = load::post(
        "/auth/jwt/login",
        "application/x-www-form-urlencoded",
        form.clone(),
    );
    let reply = conn.send(request).await?;
    expect(&reply, StatusCode::OK, "login (TOTP user)")?;
    let token = serde_json::from_slice::<serde_json::Value>(&reply.body)?["access_token"]
        .as_str()
        .context("login answered no access_token")?
        .to_owned();
    let auth = (
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let mut start = load::post_json(
        "/users/me/mfa/totp",
        &serde_json::json!({"current_password": password}),
    );
    start.headers_mut().insert(auth.0.clone(), auth.1.clone());
    let reply = conn.send(start).await?;
    expect(&reply, StatusCode::OK, "POST /users/me/mfa/totp")?;
    let secret = serde_json::from_slice::<serde_json::Value>(&reply.body)?["secret"]
        .as_str()
        .context("the enrolment answered no secret")?
        .to_owned();
    let step = now_step();
    let user = TotpUser::new(form, &secret, step)?;
    let mut confirm = load::post_json(
        "/users/me/mfa/totp/confirm",
        &serde_json::json!({"code": user.code(step)}),
    );
    confirm.headers_mut().insert(auth.0, auth.1);
    let reply = conn.send(confirm).await?;
    expect(&reply, StatusCode::OK, "POST /users/me/mfa/totp/confirm")?;
    Ok(user)
}

fn expect(reply: &load::Reply, status: StatusCode, what: &str) -> Result<()> {
    if reply.status != status {
        bail!(
            "{what}: {} (wanted {status}): {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6238_and_each_step_is_used_once() {
        // RFC 6238's SHA-1 secret "12345678901234567890" in base32; its vector at T=59 is
        // 94287082 (8 digits): the 6-digit code is the last six.
        let now = 1_000;
        let user =
            TotpUser::new(Bytes::new(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", now - 10).unwrap();
        assert_eq!(user.code(1), "287082");
        let first = user.next_step_at(now).unwrap();
        assert_eq!(first, now - 1, "the oldest step still accepted");
        user.spend(first);
        assert_eq!(user.next_step_at(now), Some(now));
        user.spend(now + 1);
        assert_eq!(user.next_step_at(now), None, "the window is spent");
        assert_eq!(user.next_step_at(now + 1), Some(now + 2), "a new step");
        user.spend(now - 5);
        assert_eq!(user.next_step_at(now + 1), Some(now + 2), "never backwards");
    }
}

//! TOTP codes (RFC 6238 through `totp-rs`) and recovery codes: generation, normalisation and
//! the step a code belongs to.

use totp_rs::{Algorithm, TOTP};

use super::{MAX_INPUT, TotpEnrolment};
use crate::manager::ManagerError;
use crate::secret::{Secret, constant_time_eq, fill_random};

/// Seconds per step.
const STEP: u64 = 30;
/// Digits per code.
const DIGITS: usize = 6;
/// Steps of clock skew accepted either way.
const SKEW: i64 = 1;
/// Bytes of a shared secret: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Characters of a recovery code: 12 of a 32-letter alphabet, 60 bits.
const RECOVERY_LEN: usize = 12;
/// Crockford's base32, lower case: no `i`, `l`, `o`, `u` to misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new shared secret, base32 without padding.
pub(super) fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    fill_random(&mut bytes);
    match totp_rs::Secret::Raw(bytes.to_vec()).to_encoded() {
        totp_rs::Secret::Encoded(encoded) => encoded,
        totp_rs::Secret::Raw(_) => String::new(),
    }
}

fn totp(secret_base32: &str, issuer: Option<&str>, account: &str) -> Option<TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .ok()
        .filter(|b| !b.is_empty())?;
    Some(TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW as u8,
        STEP,
        bytes,
        issuer.map(str::to_owned),
        account.to_owned(),
    ))
}

/// What the user's app needs: the secret, the `otpauth://` URI and its QR code as SVG.
pub(super) fn enrolment(
    secret_base32: &str,
    issuer: &str,
    account: &str,
) -> Result<TotpEnrolment, ManagerError> {
    let totp =
        totp(secret_base32, Some(issuer), account).ok_or(ManagerError::MfaSecretUnreadable)?;
    let uri = totp.get_url();
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|qr| {
            qr.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .build()
        })
        .map_err(|_| ManagerError::MfaSecretUnreadable)?;
    Ok(TotpEnrolment {
        secret: Secret::new(secret_base32),
        otpauth_uri: Secret::new(uri),
        qr_svg,
    })
}

/// The step (of the current one and one either side, at `now`) whose code `code` is, if any.
/// Every candidate is compared, in constant time.
pub(super) fn matching_step(secret_base32: &str, code: &str, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret_base32, None, "")?;
    let current = now.div_euclid(STEP as i64);
    let mut found = None;
    for step in current - SKEW..=current + SKEW {
        let Ok(time) = u64::try_from(step * STEP as i64) else {
            continue;
        };
        if constant_time_eq(totp.generate(time).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

/// A new recovery code, `xxxx-xxxx-xxxx`.
pub(super) fn new_recovery_code() -> String {
    let mut bytes = [0u8; RECOVERY_LEN];
    fill_random(&mut bytes);
    let mut out = String::with_capacity(RECOVERY_LEN + 2);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        // 256 is a multiple of 32: no bias.
        out.push(char::from(RECOVERY_ALPHABET[usize::from(b % 32)]));
    }
    out
}

/// A recovery code as typed, reduced to its 12 letters: case, spaces and dashes do not
/// matter, nor do the letters Crockford's alphabet reads as digits (`o`, `i`, `l`). `None` when
/// it cannot be one.
pub(super) fn normalize_recovery_code(typed: &str) -> Option<String> {
    if typed.len() > MAX_INPUT {
        return None;
    }
    let mut out = String::with_capacity(RECOVERY_LEN);
    for c in typed.chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        };
        if !c.is_ascii() || !RECOVERY_ALPHABET.contains(&(c as u8)) {
            return None;
        }
        out.push(c);
    }
    (out.len() == RECOVERY_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 test secret, "12345678901234567890".
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn codes_match_the_rfc_vectors_within_one_step() {
        // RFC 6238, appendix B: T = 59 gives 94287082 (8 digits); the 6-digit code is 287082.
        assert_eq!(matching_step(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(matching_step(RFC_SECRET, "287 082", 59), Some(1));
        // T = 1111111109 gives 07081804 → 081804, step 37037036.
        assert_eq!(
            matching_step(RFC_SECRET, "081804", 1_111_111_109),
            Some(37_037_036)
        );
        assert_eq!(
            matching_step(RFC_SECRET, "081804", 1_111_111_109 + 30),
            Some(37_037_036),
            "one step late is accepted"
        );
        assert_eq!(
            matching_step(RFC_SECRET, "081804", 1_111_111_109 + 60),
            None,
            "two steps late is not"
        );
        assert_eq!(
            matching_step(RFC_SECRET, "081804", 1_111_111_109 - 30),
            Some(37_037_036),
            "one step early is accepted"
        );
        assert_eq!(matching_step(RFC_SECRET, "081805", 1_111_111_109), None);
        assert_eq!(matching_step(RFC_SECRET, "08180", 1_111_111_109), None);
        assert_eq!(matching_step(RFC_SECRET, "08180x", 1_111_111_109), None);
        assert_eq!(matching_step("not base32!", "081804", 1_111_111_109), None);
    }

    #[test]
    fn secrets_have_160_bits_and_differ() {
        let a = new_secret();
        assert_eq!(a.len(), 32, "20 bytes are 32 base32 letters");
        assert_ne!(a, new_secret());
    }

    #[test]
    fn the_enrolment_carries_a_uri_and_an_svg() {
        let e = enrolment(RFC_SECRET, "Acme", "ada@example.com").unwrap();
        let uri = e.otpauth_uri.expose();
        assert!(
            uri.starts_with("otpauth://totp/Acme:ada%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={RFC_SECRET}")));
        assert!(uri.contains("issuer=Acme"));
        assert!(e.qr_svg.contains("<svg"));
        assert_eq!(e.secret.expose(), RFC_SECRET);
    }

    #[test]
    fn recovery_codes_have_60_bits_and_normalise() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 14);
        assert_eq!(code.matches('-').count(), 2);
        let normalized = normalize_recovery_code(&code).unwrap();
        assert_eq!(normalized.len(), 12);
        assert_eq!(
            normalize_recovery_code(&code.to_uppercase().replace('-', " ")),
            Some(normalized)
        );
        assert_eq!(
            normalize_recovery_code("OIL0-0000-0000"),
            normalize_recovery_code("0110-0000-0000")
        );
        assert_eq!(normalize_recovery_code("0000-0000-000"), None);
        assert_eq!(normalize_recovery_code("0000-0000-000u"), None);
        assert_eq!(normalize_recovery_code("0000-0000-0000é"), None);
        assert_ne!(new_recovery_code(), new_recovery_code());
    }
}

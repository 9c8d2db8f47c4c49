//! E-mail address validation and normalisation, following what FastAPI Users' `EmailStr` accepts.
//!
//! Two forms of an address:
//! - [`normalize_email`] gives what is stored and shown: the address in Unicode NFKC form, its
//!   domain lower-cased but otherwise as written (Unicode stays Unicode, punycode stays punycode);
//! - [`email_key`] gives what uniqueness uses: NFKC, the local part lower-cased, the domain
//!   IDNA-encoded (UTS 46, punycode). So `Alice@x.org`, `alice@X.org`, `kim@x.org` written in
//!   full-width letters or with a Kelvin sign (U+212A) for the `K` are one account with
//!   `kim@x.org`, and `exämple.com` is one domain with `xn--exmple-cua.com`: look-alike code
//!   points cannot squat or duplicate an address.

use std::borrow::Cow;

use idna::AsciiDenyList;
use unicode_normalization::UnicodeNormalization;

/// Why an address was refused; the text matches the reference's messages where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(pub String);

/// Domains reserved for special use, which cannot receive mail.
const SPECIAL_USE_DOMAINS: &[&str] = &["arpa", "invalid", "local", "localhost", "onion", "test"];

/// The longest address accepted, in characters (pydantic's limit).
const MAX_LEN: usize = 2048;

/// The longest uniqueness key, in bytes: the size of the stores' `email_key` column.
const MAX_KEY_LEN: usize = 320;

/// Validates an e-mail address and returns its normalised form: NFKC, the domain lower-cased.
///
/// # Errors
/// [`InvalidEmail`] with a human-readable reason, also when its [`email_key`] would be longer
/// than the stores' column (320 bytes).
pub fn normalize_email(input: &str) -> Result<String, InvalidEmail> {
    let fail = |reason: &str| Err(InvalidEmail(reason.to_owned()));
    if input.chars().count() > MAX_LEN {
        return fail("The email address is too long.");
    }
    let mut address = input.trim();
    // `Display Name <address>` is accepted, as by the reference.
    if let (Some(open), true) = (address.rfind('<'), address.ends_with('>')) {
        address = address[open + 1..address.len() - 1].trim();
    }
    let address: String = address.nfkc().collect();
    let Some(at) = address.rfind('@') else {
        return fail("An email address must have an @-sign.");
    };
    let (local, domain) = (&address[..at], &address[at + 1..]);
    if local.is_empty() {
        return fail("There must be something before the @-sign.");
    }
    if domain.is_empty() {
        return fail("There must be something after the @-sign.");
    }
    validate_local_part(local)?;
    let domain = domain.to_lowercase();
    validate_domain(&domain)?;
    let Some(ascii) = ascii_domain(&domain) else {
        return fail("The part after the @-sign is not valid IDNA.");
    };
    validate_ascii_domain(&ascii)?;
    if key_of(local, &ascii).len() > MAX_KEY_LEN {
        return fail("The email address is too long.");
    }
    Ok(format!("{local}@{domain}"))
}

/// The key under which an address is unique: NFKC, the local part lower-cased, the domain in
/// IDNA (punycode) form. Total, for any text: what is not an address with a valid domain (a
/// login name, say) is keyed by its NFKC lower-case form.
pub fn email_key(email: &str) -> String {
    let email: String = email.nfkc().collect();
    let ascii = email
        .rfind('@')
        .and_then(|at| Some((at, ascii_domain(&email[at + 1..])?)));
    match ascii {
        Some((at, ascii)) => key_of(&email[..at], &ascii),
        None => fold(&email),
    }
}

/// Lower-case, then NFKC again (lower-casing can leave a form that is not NFKC).
fn fold(text: &str) -> String {
    text.to_lowercase().nfkc().collect()
}

fn key_of(local: &str, ascii_domain: &str) -> String {
    format!("{}@{ascii_domain}", fold(local))
}

/// The UTS 46 ASCII form of a domain (lower-case, punycode labels); `None` if it is not valid.
fn ascii_domain(domain: &str) -> Option<String> {
    idna::domain_to_ascii_cow(domain.as_bytes(), AsciiDenyList::STD3)
        .ok()
        .map(Cow::into_owned)
}

fn validate_local_part(local: &str) -> Result<(), InvalidEmail> {
    if local.chars().count() > 64 {
        return Err(InvalidEmail(format!(
            "The email address is too long before the @-sign ({} characters too many).",
            local.chars().count() - 64
        )));
    }
    if local.starts_with('.') {
        return Err(InvalidEmail(
            "An email address cannot start with a period.".into(),
        ));
    }
    if local.ends_with('.') {
        return Err(InvalidEmail(
            "An email address cannot have a period immediately before the @-sign.".into(),
        ));
    }
    if local.contains("..") {
        return Err(InvalidEmail(
            "An email address cannot have two periods in a row.".into(),
        ));
    }
    let invalid: String = local
        .chars()
        .filter(|c| !is_atext(*c) && *c != '.')
        .collect();
    if !invalid.is_empty() {
        return Err(InvalidEmail(format!(
            "The email address contains invalid characters before the @-sign: {}.",
            quote_chars(&invalid)
        )));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), InvalidEmail> {
    let fail = |reason: String| Err(InvalidEmail(reason));
    if domain.len() > 253 {
        return fail("The email address is too long after the @-sign.".into());
    }
    let invalid: String = domain
        .chars()
        .filter(|c| !(c.is_alphanumeric() || *c == '-' || *c == '.'))
        .collect();
    if !invalid.is_empty() {
        return fail(format!(
            "The part after the @-sign contains invalid characters: {}.",
            quote_chars(&invalid)
        ));
    }
    if domain.starts_with('.') {
        return fail("An email address cannot have a period immediately after the @-sign.".into());
    }
    if domain.ends_with('.') {
        return fail("An email address cannot end with a period.".into());
    }
    if domain.contains("..") {
        return fail("An email address cannot have two periods in a row.".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels
        .iter()
        .any(|l| l.starts_with('-') || l.ends_with('-'))
    {
        return fail(
            "An email address cannot have a hyphen immediately after or before a period.".into(),
        );
    }
    if labels.iter().any(|l| l.chars().count() > 63) {
        return fail(
            "After the @-sign, periods cannot be separated by more than 63 characters.".into(),
        );
    }
    let Some(tld) = labels.last().filter(|_| labels.len() > 1) else {
        return fail("The part after the @-sign is not valid. It should have a period.".into());
    };
    if SPECIAL_USE_DOMAINS.contains(tld) || SPECIAL_USE_DOMAINS.contains(&domain) {
        return fail(
            "The part after the @-sign is a special-use or reserved name that cannot be used with email."
                .into(),
        );
    }
    if tld.chars().all(|c| c.is_ascii_digit()) {
        return fail("The part after the @-sign is not valid IDNA.".into());
    }
    Ok(())
}

/// The lengths DNS allows, on the encoded form (punycode can be longer than the Unicode form).
fn validate_ascii_domain(ascii: &str) -> Result<(), InvalidEmail> {
    if ascii.len() > 253 {
        return Err(InvalidEmail(
            "The email address is too long after the @-sign.".into(),
        ));
    }
    if ascii.split('.').any(|l| l.len() > 63) {
        return Err(InvalidEmail(
            "After the @-sign, periods cannot be separated by more than 63 characters.".into(),
        ));
    }
    Ok(())
}

/// RFC 5322 `atext`, extended to any non-ASCII letter (internationalised addresses).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && c.is_alphanumeric())
}

fn quote_chars(chars: &str) -> String {
    let mut seen: Vec<char> = Vec::new();
    for c in chars.chars() {
        if !seen.contains(&c) {
            seen.push(c);
        }
    }
    seen.iter()
        .map(|c| format!("'{c}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_the_domain_and_keeps_the_local_part() {
        assert_eq!(
            normalize_email("Dave.Smith@EXAMPLE.com").unwrap(),
            "Dave.Smith@example.com"
        );
        assert_eq!(
            normalize_email("  bob@example.com ").unwrap(),
            "bob@example.com"
        );
        assert_eq!(
            normalize_email("Bob <bob@Example.org>").unwrap(),
            "bob@example.org"
        );
    }

    #[test]
    fn refuses_what_the_reference_refuses() {
        assert_eq!(
            normalize_email("bob").unwrap_err().0,
            "An email address must have an @-sign."
        );
        assert!(normalize_email("@example.com").is_err());
        assert!(normalize_email("bob@").is_err());
        assert!(normalize_email("bob@localhost").is_err());
        assert!(normalize_email("bob@example").is_err());
        assert!(normalize_email("bob@x.test").is_err());
        assert!(normalize_email("a..b@example.com").is_err());
        assert!(normalize_email("a b@example.com").is_err());
        assert!(normalize_email("ab@exa_mple.com").is_err());
        assert!(normalize_email("ab@-example.com").is_err());
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn accepts_plus_addressing_and_unicode() {
        assert!(normalize_email("a+tag@example.com").is_ok());
        assert!(normalize_email("josé@exämple.com").is_ok());
    }

    #[test]
    fn key_is_case_insensitive() {
        assert_eq!(
            email_key("Alice@Example.com"),
            email_key("ALICE@example.COM")
        );
    }

    #[test]
    fn look_alike_code_points_give_the_key_of_their_ascii_twin() {
        let ascii = email_key("kim@example.com");
        // Kelvin sign; full-width letters and at-sign; upper case.
        for variant in [
            "\u{212a}im@example.com",
            "\u{ff2b}\u{ff49}\u{ff4d}\u{ff20}\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com",
            "KIM@EXAMPLE.COM",
        ] {
            let stored = normalize_email(variant).unwrap();
            assert_eq!(email_key(&stored), ascii, "{variant}");
            assert_eq!(email_key(variant), ascii, "{variant}");
        }
        // What is stored is the NFKC form, the domain as written, lower-cased.
        assert_eq!(
            normalize_email("\u{212a}im@example.com").unwrap(),
            "Kim@example.com"
        );
        assert_eq!(
            normalize_email("\u{ff2b}im@\u{ff25}xample.com").unwrap(),
            "Kim@example.com"
        );
    }

    #[test]
    fn a_unicode_domain_and_its_punycode_are_one_domain() {
        let punycode = normalize_email("bob@XN--EXMPLE-CUA.com").unwrap();
        assert_eq!(punycode, "bob@xn--exmple-cua.com");
        let key = email_key(&punycode);
        assert_eq!(key, "bob@xn--exmple-cua.com");
        // Composed, decomposed (NFKC composes it), upper case.
        for unicode in [
            "bob@ex\u{e4}mple.com",
            "bob@EXA\u{308}MPLE.com",
            "Bob@Ex\u{c4}mple.com",
        ] {
            let stored = normalize_email(unicode).unwrap();
            assert!(stored.ends_with("@ex\u{e4}mple.com"), "{stored}");
            assert_eq!(email_key(&stored), key, "{unicode}");
        }
        assert_eq!(
            normalize_email("bob@xn--a.com").unwrap_err().0,
            "The part after the @-sign is not valid IDNA."
        );
    }

    #[test]
    fn a_key_over_320_bytes_is_refused() {
        // 64 four-byte letters (256 bytes) and a domain of 63 or 64 characters.
        let local = "\u{20000}".repeat(64);
        let fits = format!("{local}@{}.com", "a".repeat(59));
        assert_eq!(email_key(&normalize_email(&fits).unwrap()).len(), 320);
        let over = format!("{local}@{}.com", "a".repeat(60));
        assert_eq!(
            normalize_email(&over).unwrap_err().0,
            "The email address is too long."
        );
        // A label of 62 characters in Unicode, over 63 in punycode.
        let label = "\u{e4}".repeat(62);
        assert_eq!(
            normalize_email(&format!("a@{label}.com")).unwrap_err().0,
            "After the @-sign, periods cannot be separated by more than 63 characters."
        );
    }

    #[test]
    fn ascii_keys_are_unchanged() {
        // Rows written before NFKC and IDNA keep their keys: plain lower case.
        for email in [
            "Alice@Example.com",
            "a+tag@sub.example.org",
            "not an address",
            "x@ex_ample.com",
        ] {
            assert_eq!(email_key(email), email.to_lowercase());
        }
    }
}

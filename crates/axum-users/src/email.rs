//! E-mail address validation and normalisation, following what FastAPI Users' `EmailStr` accepts.
//!
//! The domain is lower-cased, the local part kept as written; uniqueness uses [`email_key`], the
//! full lower-case form, so `Alice@x.org` and `alice@X.org` are one account.

/// Why an address was refused; the text matches the reference's messages where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(pub String);

/// Domains reserved for special use, which cannot receive mail.
const SPECIAL_USE_DOMAINS: &[&str] = &["arpa", "invalid", "local", "localhost", "onion", "test"];

/// The longest address accepted, in characters (pydantic's limit).
const MAX_LEN: usize = 2048;

/// Validates an e-mail address and returns its normalised form.
///
/// # Errors
/// [`InvalidEmail`] with a human-readable reason.
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
    Ok(format!("{local}@{domain}"))
}

/// The case-insensitive key under which an address is unique.
pub fn email_key(email: &str) -> String {
    email.to_lowercase()
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
}

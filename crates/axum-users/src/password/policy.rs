//! The password policy of NIST SP 800-63B-4 (section 3.1.1.2): a length counted in Unicode code
//! points after NFKC normalisation, no composition rules, and a refusal of passwords that are
//! common or derived from the account's context (its e-mail address, the service's name).
//!
//! It runs in the manager before [`crate::UserHooks::validate_password`], on every way a password
//! is set (register, reset, a PATCH of one's own or a superuser's, programmatic create/update),
//! so the hook only refines it.
//!
//! Why 8 and not 15: NIST asks for at least 15 characters where the password is the only factor,
//! and allows 8 where it is part of multi-factor authentication. The default stays at 8 because
//! FastAPI Users applications and their users expect it and the blocklist removes the guessable
//! short ones; a password-only deployment should set 15 (`AXUM_USERS_PASSWORD_MIN_LENGTH=15`).

use unicode_normalization::UnicodeNormalization;

use crate::hooks::{InvalidPassword, PasswordOwner, UserHooks};
use crate::manager::{ManagerError, UserManager};
use crate::store::UserStore;

/// Context words shorter than this are ignored: "com" or "jo" would refuse half of all passwords.
const SHORTEST_CONTEXT_WORD: usize = 4;

/// Why the policy (or the breached-password check) refused a password: what a translation
/// needs, where the API answers with the English reason, its [`Display`](std::fmt::Display).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordRefusal {
    /// Fewer code points than this minimum.
    TooShort(usize),
    /// More code points than this maximum.
    TooLong(usize),
    /// It contains the e-mail address, its local part or a domain label.
    ContainsEmail,
    /// It contains a context word (the service's name).
    ContainsServiceName,
    /// It is on the list of common passwords.
    TooCommon,
    /// The breached-password check found it.
    Breached,
}

impl PasswordRefusal {
    const FIXED: [PasswordRefusal; 4] = [
        PasswordRefusal::ContainsEmail,
        PasswordRefusal::ContainsServiceName,
        PasswordRefusal::TooCommon,
        PasswordRefusal::Breached,
    ];

    /// The refusal a refused password's reason stands for; `None` for a reason of the
    /// application's own `validate_password`.
    pub fn of(reason: &serde_json::Value) -> Option<Self> {
        let reason = reason.as_str()?;
        let number = |prefix: &str| {
            reason
                .strip_prefix(prefix)?
                .strip_suffix(" characters")?
                .parse::<usize>()
                .ok()
        };
        if let Some(n) = number("Password should be at least ") {
            return Some(PasswordRefusal::TooShort(n));
        }
        if let Some(n) = number("Password should be at most ") {
            return Some(PasswordRefusal::TooLong(n));
        }
        Self::FIXED.into_iter().find(|r| r.to_string() == reason)
    }
}

impl std::fmt::Display for PasswordRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordRefusal::TooShort(n) => write!(f, "Password should be at least {n} characters"),
            PasswordRefusal::TooLong(n) => write!(f, "Password should be at most {n} characters"),
            PasswordRefusal::ContainsEmail => {
                f.write_str("Password must not contain your e-mail address or a part of it")
            }
            PasswordRefusal::ContainsServiceName => {
                f.write_str("Password must not contain the name of this service")
            }
            PasswordRefusal::TooCommon => {
                f.write_str("Password is too common: choose a longer or less predictable one")
            }
            PasswordRefusal::Breached => f.write_str("This password has appeared in a data breach"),
        }
    }
}

impl From<PasswordRefusal> for InvalidPassword {
    fn from(refusal: PasswordRefusal) -> Self {
        InvalidPassword::new(refusal.to_string())
    }
}

/// What a new password must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// Fewest code points after NFKC (default 8; 15 for password-only sign-in, see the module).
    pub min_length: usize,
    /// Most code points after NFKC (default 1024; NIST asks that at least 64 be allowed).
    pub max_length: usize,
    /// Refuse the passwords of the embedded common-password list, case-insensitively.
    pub blocklist: bool,
    /// Refuse passwords containing the owner's e-mail address, its local part or a domain label
    /// (but the TLD), case-insensitively; words shorter than 4 code points are not checked.
    pub email_context: bool,
    /// Words no password may contain, case-insensitively: the service's name, its domain.
    pub context_words: Vec<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            max_length: 1024,
            blocklist: true,
            email_context: true,
            context_words: Vec::new(),
        }
    }
}

impl PasswordPolicy {
    /// No rule at all, as in FastAPI Users (the application's hook decides alone).
    pub fn off() -> Self {
        Self {
            min_length: 0,
            max_length: usize::MAX,
            blocklist: false,
            email_context: false,
            context_words: Vec::new(),
        }
    }

    /// The same policy with another minimum length.
    pub fn with_min_length(mut self, min_length: usize) -> Self {
        self.min_length = min_length;
        self
    }

    /// The same policy with another maximum length.
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        self
    }

    /// The same policy with the blocklist on or off.
    pub fn with_blocklist(mut self, on: bool) -> Self {
        self.blocklist = on;
        self
    }

    /// The same policy with the e-mail context check on or off.
    pub fn with_email_context(mut self, on: bool) -> Self {
        self.email_context = on;
        self
    }

    /// The same policy with these context words (the service's name...).
    pub fn with_context_words<W: Into<String>>(
        mut self,
        words: impl IntoIterator<Item = W>,
    ) -> Self {
        self.context_words = words.into_iter().map(Into::into).collect();
        self
    }

    /// Checks `password` for an account with the e-mail address `email`.
    ///
    /// # Errors
    /// An [`InvalidPassword`] whose reason tells the user what to do.
    pub fn check(&self, password: &str, email: Option<&str>) -> Result<(), InvalidPassword> {
        let too_long = || InvalidPassword::from(PasswordRefusal::TooLong(self.max_length));
        // A code point is at most 4 bytes and NFKC expands it at most 18-fold: past that
        // bound the answer is known without normalising megabytes.
        if password.len() / 4 > self.max_length.saturating_mul(18) {
            return Err(too_long());
        }
        let normalised: String = password.nfkc().collect();
        let length = normalised.chars().count();
        if length < self.min_length {
            return Err(PasswordRefusal::TooShort(self.min_length).into());
        }
        if length > self.max_length {
            return Err(too_long());
        }
        let lower = normalised.to_lowercase();
        if let Some(email) = email.filter(|_| self.email_context)
            && email_words(email).any(|word| lower.contains(&word))
        {
            return Err(PasswordRefusal::ContainsEmail.into());
        }
        let service = self
            .context_words
            .iter()
            .flat_map(|w| with_tokens(w))
            .map(|w| w.nfkc().collect::<String>().to_lowercase())
            .filter(|w| w.chars().count() >= SHORTEST_CONTEXT_WORD);
        if service.into_iter().any(|word| lower.contains(&word)) {
            return Err(PasswordRefusal::ContainsServiceName.into());
        }
        if self.blocklist && is_common(&normalised, &lower) {
            return Err(PasswordRefusal::TooCommon.into());
        }
        Ok(())
    }
}

/// Whether the password is on the embedded lists of common passwords, as given or in lower
/// case, each also trimmed (padding a common password with spaces does not make it less
/// guessable): the 99,838 of the `passwords` crate (MIT; 97,745 once lower-cased and trimmed),
/// and the 10,093 of zxcvbn's 30,000 that list lacks (`ZXCVBN_EXTRA`): 107,838 distinct
/// passwords. See `docs/security.md`.
fn is_common(normalised: &str, lower: &str) -> bool {
    [lower, normalised, lower.trim(), normalised.trim()]
        .into_iter()
        .any(passwords::analyzer::is_common_password)
        || zxcvbn_extra().contains(lower.trim())
}

/// The passwords of zxcvbn's list (MIT, the `zxcvbn` crate on crates.io, copied with its
/// notice in `COMMON-PASSWORDS-LICENSE`) that the `passwords` crate's list lacks, lower-cased,
/// trimmed, one a line, most common first.
const ZXCVBN_EXTRA: &str = include_str!("common-passwords-zxcvbn.txt");

fn zxcvbn_extra() -> &'static std::collections::HashSet<&'static str> {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| ZXCVBN_EXTRA.lines().filter(|l| !l.is_empty()).collect())
}

/// `text` and its alphanumeric runs: "Acme Portal" gives "Acme Portal", "Acme", "Portal".
fn with_tokens(text: &str) -> impl Iterator<Item = &str> {
    std::iter::once(text).chain(
        text.split(|c: char| !c.is_alphanumeric())
            .filter(move |token| !token.is_empty() && *token != text),
    )
}

/// The e-mail address, its local part and its alphanumeric runs ("margaret" of "margaret.h"),
/// its domain labels but the last (the TLD), lower case, the short ones left out.
fn email_words(email: &str) -> impl Iterator<Item = String> + '_ {
    let email = email.trim();
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    let labels: Vec<&str> = domain.split('.').collect();
    let labels = &labels[..labels.len().saturating_sub(1)];
    std::iter::once(email)
        .chain(with_tokens(local))
        .chain(labels.iter().copied())
        .map(|w| w.nfkc().collect::<String>().to_lowercase())
        .filter(|w| w.chars().count() >= SHORTEST_CONTEXT_WORD)
        .collect::<Vec<_>>()
        .into_iter()
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// The policy for a password that a PATCH sets together with a new e-mail address: the
    /// context words are the new address's (the old one is checked by `check_password`).
    pub(crate) fn check_policy_for_new_address(
        &self,
        password: &str,
        new_email: &str,
    ) -> Result<(), ManagerError> {
        self.defences()
            .password_policy
            .check(password, Some(new_email))
            .map_err(ManagerError::InvalidPassword)
    }

    /// The checks every new password meets, in order: the policy, the breach check, then the
    /// application's [`UserHooks::validate_password`].
    pub(crate) async fn check_password(
        &self,
        password: &str,
        owner: PasswordOwner<'_, S::Id, S::Fields>,
    ) -> Result<(), ManagerError> {
        let email = match &owner {
            PasswordOwner::New { email, .. } => *email,
            PasswordOwner::Existing(user) => user.email.as_str(),
        };
        let defences = self.defences();
        defences
            .password_policy
            .check(password, Some(email))
            .map_err(ManagerError::InvalidPassword)?;
        if let Some(breached) = &defences.breached_passwords {
            breached
                .check(password)
                .await
                .map_err(ManagerError::InvalidPassword)?;
        }
        self.hooks()
            .validate_password(password, owner)
            .await
            .map_err(ManagerError::InvalidPassword)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<(), InvalidPassword>) -> String {
        result.unwrap_err().reason.as_str().unwrap().to_owned()
    }

    #[test]
    fn length_counts_code_points_after_nfkc() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            reason(policy.check("Zq7#kd!", None)),
            "Password should be at least 8 characters"
        );
        // Eight code points of three bytes each: long enough, though 24 bytes.
        policy.check("鷹鸚鵡鶴鷺鵜鷲鴎", None).unwrap();
        // U+FB01 (the "fi" ligature) is two code points after NFKC: 7 ligatures make 14.
        policy.check("\u{FB01}".repeat(7).as_str(), None).unwrap();
        // A decomposed "é" (e + combining acute) composes to one code point: 7, too short.
        let decomposed = "e\u{301}".repeat(7);
        assert_eq!(decomposed.chars().count(), 14);
        assert!(policy.check(&decomposed, None).is_err());
    }

    #[test]
    fn long_passphrases_pass_and_the_maximum_holds() {
        let policy = PasswordPolicy::default();
        let phrase = "correct horse battery staple under a violet sky at 4 in the morning";
        assert!(phrase.chars().count() >= 64);
        policy.check(phrase, Some("ann@example.com")).unwrap();
        policy.check(&"x7Qz".repeat(256), None).unwrap();
        assert_eq!(
            reason(policy.check(&"x7Qz".repeat(257), None)),
            "Password should be at most 1024 characters"
        );
        assert!(policy.check(&"x".repeat(10_000_000), None).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        let policy = PasswordPolicy::default();
        for common in [
            "password",
            "PASSWORD",
            "Password1",
            "12345678",
            "iloveyou",
            "qwertyuiop",
            "  password  ",
            "\tIloveyou ",
        ] {
            assert_eq!(
                reason(policy.check(common, None)),
                "Password is too common: choose a longer or less predictable one",
                "{common}"
            );
        }
        policy
            .with_blocklist(false)
            .check("password", None)
            .unwrap();
    }

    #[test]
    fn the_blocklist_holds_at_least_100_000_distinct_common_passwords() {
        // The `passwords` crate's list: 97,745 distinct once lower-cased and trimmed (counted
        // from its data file; the crate exposes only a lookup). The second list is disjoint
        // from it, so the two add up.
        let extra = zxcvbn_extra();
        assert_eq!(extra.len(), ZXCVBN_EXTRA.lines().count(), "no duplicates");
        assert!(97_745 + extra.len() >= 100_000, "{}", extra.len());
        for password in extra {
            assert_eq!(*password, password.trim().to_lowercase());
        }
        // The first list's lookup is a scan: a sample of the second (every 97th) is enough to
        // show the file is what its name says, and not a copy of the first.
        for password in ZXCVBN_EXTRA.lines().step_by(97) {
            assert!(
                !passwords::analyzer::is_common_password(password),
                "{password} is on both lists"
            );
        }
        let policy = PasswordPolicy::default();
        for common in ["lifehack", "LIFEHACK ", "usuckballz1", "Gn56gn56"] {
            assert_eq!(
                reason(policy.check(common, None)),
                "Password is too common: choose a longer or less predictable one",
                "{common}: on the second list only"
            );
        }
    }

    #[test]
    fn the_email_and_its_parts_are_refused() {
        let policy = PasswordPolicy::default().with_context_words(["Acme Portal", "acme"]);
        let email = Some("margaret.h@wonderland-mail.example");
        for bad in [
            "margaret.h",
            "MARGARET.H!!",
            "xx-wonderland-mail-xx",
            "margaret.h@wonderland-mail.example",
        ] {
            assert_eq!(
                reason(policy.check(bad, email)),
                "Password must not contain your e-mail address or a part of it",
                "{bad}"
            );
        }
        assert_eq!(
            reason(policy.check("my-ACME-password-77", email)),
            "Password must not contain the name of this service"
        );
        // Each word of the local part and of the service's name counts alone.
        assert_eq!(
            reason(policy.check("Margaret1985", email)),
            "Password must not contain your e-mail address or a part of it"
        );
        let portal = PasswordPolicy::default().with_context_words(["Acme Portal"]);
        assert_eq!(
            reason(portal.check("my portal 2024", None)),
            "Password must not contain the name of this service"
        );
        // The TLD and short labels are not context words.
        policy.check("example-of-a-fine-one", email).unwrap();
        policy
            .check("jo-is-fine-here", Some("jo@ab.example"))
            .unwrap();
    }

    #[test]
    fn every_refusal_is_recognised_from_its_reason_and_other_reasons_are_not() {
        let policy = PasswordPolicy::default()
            .with_max_length(64)
            .with_context_words(["Acme"]);
        let email = Some("margaret@example.com");
        let cases = [
            ("short", PasswordRefusal::TooShort(8)),
            (&"x7Qz".repeat(17), PasswordRefusal::TooLong(64)),
            ("margaret-is-here", PasswordRefusal::ContainsEmail),
            ("my-acme-password-77", PasswordRefusal::ContainsServiceName),
            ("password123", PasswordRefusal::TooCommon),
        ];
        for (password, expected) in cases {
            let refused = policy.check(password, email).unwrap_err();
            assert_eq!(PasswordRefusal::of(&refused.reason), Some(expected));
        }
        let breached = InvalidPassword::from(PasswordRefusal::Breached);
        assert_eq!(
            PasswordRefusal::of(&breached.reason),
            Some(PasswordRefusal::Breached)
        );
        for other in [
            serde_json::json!("Password should be at least eight characters"),
            serde_json::json!("no bad passwords"),
            serde_json::json!({"reason": "Password is too common: choose a longer or less predictable one"}),
        ] {
            assert_eq!(PasswordRefusal::of(&other), None, "{other}");
        }
    }

    #[test]
    fn off_accepts_anything() {
        PasswordPolicy::off().check("a", Some("a@b.c")).unwrap();
    }
}

//! Newtypes for values that must never reach logs: their `Debug` prints `[redacted]`.

use std::fmt;

macro_rules! secret_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value itself; call this only where the value is sent or stored.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

secret_newtype!(
    /// The OAuth client secret issued by the provider.
    ClientSecret
);
secret_newtype!(
    /// A bearer access token issued by the provider.
    AccessToken
);
secret_newtype!(
    /// A refresh token issued by the provider.
    RefreshToken
);
secret_newtype!(
    /// An OpenID Connect id_token (a signed JWT that carries personal data).
    IdToken
);
secret_newtype!(
    /// The PKCE `code_verifier` (RFC 7636) kept by the client until the code exchange.
    PkceVerifier
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let rendered = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            ClientSecret::new("cs-value"),
            AccessToken::new("at-value"),
            RefreshToken::new("rt-value"),
            IdToken::new("id-value"),
            PkceVerifier::new("pv-value"),
        );
        assert!(!rendered.contains("value"), "{rendered}");
        assert!(rendered.contains("ClientSecret([redacted])"), "{rendered}");
        assert!(rendered.contains("PkceVerifier([redacted])"), "{rendered}");
    }

    #[test]
    fn secret_returns_the_value() {
        assert_eq!(AccessToken::from("abc").secret(), "abc");
    }
}

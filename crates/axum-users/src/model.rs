//! The user model: identifiers, the built-in columns, and the application's own fields.

use std::fmt::{Debug, Display};
use std::hash::Hash;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// A user's primary key. UUIDs by default; `i64` for stores with integer keys.
pub trait UserId:
    Clone + Eq + Hash + Debug + Display + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Parses an id from a path segment or a token claim; `None` when it is not one.
    fn parse(value: &str) -> Option<Self>;

    /// A fresh id for a new user, or `None` when the database assigns it.
    fn generate() -> Option<Self>;
}

impl UserId for Uuid {
    /// Accepts what Python's `uuid.UUID` accepts: hyphenated, simple, braced or `urn:uuid:`.
    fn parse(value: &str) -> Option<Self> {
        Uuid::try_parse(value.trim()).ok()
    }

    fn generate() -> Option<Self> {
        Some(Uuid::new_v4())
    }
}

impl UserId for i64 {
    /// Accepts an optionally signed decimal integer with surrounding spaces, as Python's `int`.
    fn parse(value: &str) -> Option<Self> {
        value.trim().parse().ok()
    }

    fn generate() -> Option<Self> {
        None
    }
}

/// The application's own user fields (a display name, a locale, ...).
///
/// They are read from the register body, returned with every user, changed by PATCH through
/// [`UserFields::Update`], and persisted by the store.
pub trait UserFields:
    Serialize + DeserializeOwned + Clone + Default + Debug + Send + Sync + 'static
{
    /// What a PATCH body may change: usually the same fields, each optional.
    type Update: Serialize + DeserializeOwned + Default + Debug + Send + Sync + 'static;

    /// Applies a PATCH to the fields.
    fn apply(&mut self, update: Self::Update);

    /// Removes from a self-service update (`PATCH /users/me`) what only a superuser may change
    /// (a plan, a quota, a role). The default: every field is the user's to change.
    fn drop_privileged(update: &mut Self::Update) {
        let _ = update;
    }

    /// Resets on a self-registration what only a superuser may set. The default: nothing.
    fn reset_privileged(&mut self) {}

    /// The fields' schemas in the OpenAPI document ([`crate::AxumUsers::openapi`]); for a
    /// type deriving `utoipa::ToSchema`, `Some(FieldSchema::of::<Self>())`. The default,
    /// `None`, documents them as additional properties of any type.
    #[cfg(feature = "openapi")]
    fn openapi_fields() -> Option<Vec<crate::FieldSchema>> {
        None
    }
}

/// No custom fields: the plain FastAPI Users model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoFields {}

impl UserFields for NoFields {
    type Update = NoFields;

    fn apply(&mut self, _update: NoFields) {}

    #[cfg(feature = "openapi")]
    fn openapi_fields() -> Option<Vec<crate::FieldSchema>> {
        Some(Vec::new())
    }
}

/// A stored password hash (PHC string or bcrypt). Redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl PasswordHash {
    /// The hash of a user who has no password (signed up through an OAuth provider): it never
    /// matches, until the user sets one through forgot/reset password.
    pub fn unusable() -> Self {
        Self(format!("!unusable!{}", crate::secret::random_token(16)))
    }

    /// Whether a password can match this hash.
    pub fn is_usable(&self) -> bool {
        !self.0.starts_with('!')
    }
}

impl Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User<Id = Uuid, F = NoFields> {
    /// Primary key.
    pub id: Id,
    /// The e-mail address as normalised at registration (domain lower-cased).
    pub email: String,
    /// The password hash; never serialised to clients.
    pub hashed_password: PasswordHash,
    /// Inactive users cannot log in.
    pub is_active: bool,
    /// Superusers manage other users.
    pub is_superuser: bool,
    /// Whether the user proved they own the e-mail address.
    pub is_verified: bool,
    /// Counts the user's e-mail changes; verification tokens are bound to it.
    pub email_epoch: i64,
    /// The application's own fields.
    pub fields: F,
}

impl<Id: UserId, F: UserFields> User<Id, F> {
    /// The client-facing view: everything but the password hash.
    pub fn public(&self) -> PublicUser<'_, Id, F> {
        PublicUser {
            id: &self.id,
            email: &self.email,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            is_verified: self.is_verified,
            fields: &self.fields,
        }
    }
}

/// What clients see of a user: `{"id","email","is_active","is_superuser","is_verified", ...fields}`.
#[derive(Debug, Serialize)]
pub struct PublicUser<'a, Id, F> {
    /// Primary key.
    pub id: &'a Id,
    /// E-mail address.
    pub email: &'a str,
    /// Active flag.
    pub is_active: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Verified flag.
    pub is_verified: bool,
    /// Custom fields, flattened into the object.
    #[serde(flatten)]
    pub fields: &'a F,
}

/// A user about to be inserted.
#[derive(Debug, Clone)]
pub struct NewUser<Id, F> {
    /// The id, or `None` when the database assigns it.
    pub id: Option<Id>,
    /// Normalised e-mail address.
    pub email: String,
    /// The password hash.
    pub hashed_password: PasswordHash,
    /// Active flag.
    pub is_active: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Verified flag.
    pub is_verified: bool,
    /// Custom fields.
    pub fields: F,
}

/// An external account (Google, GitHub, an OIDC issuer...) linked to a user.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthAccount<Id = Uuid> {
    /// Primary key of the link.
    pub id: Id,
    /// The user it belongs to.
    pub user_id: Id,
    /// The provider's name, e.g. `google`.
    pub oauth_name: String,
    /// The provider's access token.
    pub access_token: crate::Secret,
    /// When the access token expires, in Unix seconds.
    pub expires_at: Option<i64>,
    /// The provider's refresh token.
    pub refresh_token: Option<crate::Secret>,
    /// The account's id at the provider.
    pub account_id: String,
    /// The e-mail the provider reported last.
    pub account_email: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_parse_like_python() {
        let id = Uuid::new_v4();
        let simple = id.simple().to_string();
        assert_eq!(<Uuid as UserId>::parse(&id.to_string()), Some(id));
        assert_eq!(<Uuid as UserId>::parse(&simple), Some(id));
        assert_eq!(<Uuid as UserId>::parse(&format!("{{{id}}}")), Some(id));
        assert_eq!(<Uuid as UserId>::parse(&format!("urn:uuid:{id}")), Some(id));
        assert_eq!(<Uuid as UserId>::parse("me"), None);
    }

    #[test]
    fn integer_ids_parse_like_python() {
        assert_eq!(<i64 as UserId>::parse(" 42 "), Some(42));
        assert_eq!(<i64 as UserId>::parse("+42"), Some(42));
        assert_eq!(<i64 as UserId>::parse("4.2"), None);
        assert_eq!(<i64 as UserId>::parse("me"), None);
        assert_eq!(<i64 as UserId>::generate(), None);
    }

    #[test]
    fn public_view_has_the_reference_shape_and_no_hash() {
        let user: User = User {
            id: Uuid::nil(),
            email: "a@example.com".into(),
            hashed_password: PasswordHash("$argon2id$secret".into()),
            is_active: true,
            is_superuser: false,
            is_verified: false,
            email_epoch: 0,
            fields: NoFields {},
        };
        let json = serde_json::to_string(&user.public()).unwrap();
        assert_eq!(
            json,
            r#"{"id":"00000000-0000-0000-0000-000000000000","email":"a@example.com","is_active":true,"is_superuser":false,"is_verified":false}"#
        );
        assert!(!format!("{user:?}").contains("secret"));
    }
}

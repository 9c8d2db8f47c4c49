//! The users directory, for administration: when each user was created, last changed and last
//! signed in, and a filtered listing served by an index with keyset pagination (a page costs
//! the same at the millionth user as at the first).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use http::request::Parts;

use crate::auth::BoxFuture;
use crate::hooks::UserHooks;
use crate::manager::{ManagerError, Privilege, UserCreate, UserManager, UserOf};
use crate::model::{NewUser, PasswordHash, User, UserFields, UserId};
use crate::store::{StoreError, UserStore};

/// The most a page of the listing holds.
pub const MAX_PAGE: u32 = 100;
/// A page's size when the request names none.
pub const DEFAULT_PAGE: u32 = 50;

/// When a user was created, last changed and last signed in (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserTimes {
    /// When the row was inserted (for users from before the column, when it was added).
    pub created_at: i64,
    /// When a column of the row last changed (flags, e-mail, fields, password).
    pub updated_at: i64,
    /// The last successful sign-in, by any way in; `None` when there was none.
    pub last_login_at: Option<i64>,
}

/// The order of the listing; every order is one index walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserSort {
    /// Oldest first (`created_at`), ties broken by id.
    #[default]
    CreatedAt,
    /// Newest first (`-created_at`).
    CreatedAtDesc,
    /// By e-mail address, case-insensitively (`email`).
    Email,
    /// By e-mail address, backwards (`-email`).
    EmailDesc,
}

impl UserSort {
    /// Reads `created_at`, `-created_at`, `email` or `-email`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "created_at" => Self::CreatedAt,
            "-created_at" => Self::CreatedAtDesc,
            "email" => Self::Email,
            "-email" => Self::EmailDesc,
            _ => return None,
        })
    }

    /// Whether the order is backwards.
    pub fn descending(self) -> bool {
        matches!(self, Self::CreatedAtDesc | Self::EmailDesc)
    }

    fn tag(self) -> &'static str {
        match self {
            Self::CreatedAt => "c",
            Self::CreatedAtDesc => "C",
            Self::Email => "e",
            Self::EmailDesc => "E",
        }
    }
}

/// Where the previous page ended: the sort key of its last user. Opaque to clients (base64url
/// of a small JSON value); it carries nothing a superuser cannot read in the page itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserCursor {
    /// After (or before, backwards) this creation time and id.
    CreatedAt {
        /// `created_at` of the last user of the page.
        at: i64,
        /// The id of the last user of the page, as text.
        id: String,
    },
    /// After (or before) this e-mail key ([`crate::email_key`]), which is unique.
    Email(String),
}

#[derive(Serialize, Deserialize)]
struct CursorWire {
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
    k: String,
}

impl UserCursor {
    /// The cursor of `sort` after `user`.
    pub fn after<Id: UserId, F>(sort: UserSort, user: &User<Id, F>, times: &UserTimes) -> Self {
        match sort {
            UserSort::CreatedAt | UserSort::CreatedAtDesc => Self::CreatedAt {
                at: times.created_at,
                id: user.id.to_string(),
            },
            UserSort::Email | UserSort::EmailDesc => Self::Email(crate::email_key(&user.email)),
        }
    }

    /// The opaque text clients pass back as `cursor`, bound to the sort it was made for.
    pub fn encode(&self, sort: UserSort) -> String {
        let wire = match self {
            Self::CreatedAt { at, id } => CursorWire {
                s: sort.tag().into(),
                t: Some(*at),
                k: id.clone(),
            },
            Self::Email(key) => CursorWire {
                s: sort.tag().into(),
                t: None,
                k: key.clone(),
            },
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wire).unwrap_or_default())
    }

    /// Reads a cursor made by [`UserCursor::encode`] for the same `sort`; `None` for anything
    /// else (garbage, another sort's cursor, a key longer than any stored one).
    pub fn decode(text: &str, sort: UserSort) -> Option<Self> {
        if text.len() > 1024 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let wire: CursorWire = serde_json::from_slice(&bytes).ok()?;
        if wire.s != sort.tag() || wire.k.len() > 320 {
            return None;
        }
        match (sort, wire.t) {
            (UserSort::CreatedAt | UserSort::CreatedAtDesc, Some(at)) => {
                Some(Self::CreatedAt { at, id: wire.k })
            }
            (UserSort::Email | UserSort::EmailDesc, None) => Some(Self::Email(wire.k)),
            _ => None,
        }
    }
}

/// What the listing asks for: filters, an order, a page size and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    /// Only addresses containing this text, case-insensitively (it is lower-cased here).
    pub q: Option<String>,
    /// Only active (or inactive) users.
    pub is_active: Option<bool>,
    /// Only verified (or unverified) users.
    pub is_verified: Option<bool>,
    /// Only superusers (or ordinary users).
    pub is_superuser: Option<bool>,
    /// Only users created at or after this time (Unix seconds).
    pub created_after: Option<i64>,
    /// Only users created before this time (Unix seconds).
    pub created_before: Option<i64>,
    /// The order.
    pub sort: UserSort,
    /// At most this many users, 1 to [`MAX_PAGE`].
    pub limit: u32,
    /// Start after this cursor; `None` for the first page.
    pub after: Option<UserCursor>,
}

impl Default for UserQuery {
    fn default() -> Self {
        Self {
            q: None,
            is_active: None,
            is_verified: None,
            is_superuser: None,
            created_after: None,
            created_before: None,
            sort: UserSort::default(),
            limit: DEFAULT_PAGE,
            after: None,
        }
    }
}

impl UserQuery {
    /// The page size, clamped to 1..=[`MAX_PAGE`] (a store never reads more).
    pub fn page_size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// The `q` filter, lower-cased, or `None` when empty.
    pub fn needle(&self) -> Option<String> {
        self.q
            .as_deref()
            .map(str::to_lowercase)
            .filter(|q| !q.is_empty())
    }

    /// The `q` filter as a `LIKE` pattern with `!` as the escape character (`... LIKE ?
    /// ESCAPE '!'`): `%q%` with `%`, `_` and `!` escaped, so that they match themselves.
    pub fn contains_pattern(&self) -> Option<String> {
        let q = self.needle()?;
        let mut pattern = String::with_capacity(q.len() + 2);
        pattern.push('%');
        for c in q.chars() {
            if matches!(c, '%' | '_' | '!') {
                pattern.push('!');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Some(pattern)
    }

    /// Whether a user with `times` passes every filter: what a store's query says in SQL.
    pub fn matches<Id, F>(&self, user: &User<Id, F>, times: &UserTimes) -> bool {
        let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        self.needle()
            .is_none_or(|q| crate::email_key(&user.email).contains(&q))
            && flag(self.is_active, user.is_active)
            && flag(self.is_verified, user.is_verified)
            && flag(self.is_superuser, user.is_superuser)
            && self.created_after.is_none_or(|t| times.created_at >= t)
            && self.created_before.is_none_or(|t| times.created_at < t)
    }
}

/// One page of the listing.
#[derive(Debug, Clone)]
pub struct UserPage<Id, F> {
    /// The users of the page with their times, in the query's order.
    pub items: Vec<(User<Id, F>, UserTimes)>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<UserCursor>,
}

impl<Id: UserId, F> UserPage<Id, F> {
    /// The page of `query` from the rows a store read in its order, up to
    /// [`UserQuery::page_size`] + 1: the extra row only says that a next page exists.
    pub fn from_rows(mut rows: Vec<(User<Id, F>, UserTimes)>, query: &UserQuery) -> Self {
        let size = query.page_size() as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        let next_cursor = more
            .then(|| rows.last())
            .flatten()
            .map(|(user, times)| UserCursor::after(query.sort, user, times));
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// A shared handle on a [`UserDirectory`].
pub type UserDirectoryRef<Id, F> = std::sync::Arc<dyn UserDirectory<Id, F>>;

/// The administration side of the users table, reached through
/// [`crate::UserStore::directory`]. A store fills `created_at` and `updated_at` itself on
/// insert and on every write of a user's row.
///
/// Boxed futures, as [`crate::SessionStore`], so the manager holds it as a trait object.
pub trait UserDirectory<Id: UserId, F: UserFields>: Send + Sync + 'static {
    /// One page of users passing the query's filters, in its order, after its cursor; reads at
    /// most [`UserQuery::page_size`] + 1 rows through an index.
    fn list_users<'a>(
        &'a self,
        query: &'a UserQuery,
    ) -> BoxFuture<'a, Result<UserPage<Id, F>, StoreError>>;

    /// A user's times; `None` when there is no such user.
    fn user_times<'a>(&'a self, id: &'a Id)
    -> BoxFuture<'a, Result<Option<UserTimes>, StoreError>>;

    /// Records a successful sign-in at `at` (one write of `last_login_at`; `updated_at` stays).
    fn record_login<'a>(&'a self, id: &'a Id, at: i64) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    fn directory(&self) -> Result<UserDirectoryRef<S::Id, S::Fields>, ManagerError> {
        self.store()
            .directory()
            .ok_or(ManagerError::DirectoryUnavailable)
    }

    /// One page of the users listing.
    ///
    /// # Errors
    /// [`ManagerError::DirectoryUnavailable`], or a store failure.
    pub async fn list_users(
        &self,
        query: &UserQuery,
    ) -> Result<UserPage<S::Id, S::Fields>, ManagerError> {
        Ok(self.directory()?.list_users(query).await?)
    }

    /// A user's times; `None` when the store keeps none.
    ///
    /// # Errors
    /// A store failure.
    pub async fn user_times(&self, id: &S::Id) -> Result<Option<UserTimes>, ManagerError> {
        match self.store().directory() {
            Some(directory) => Ok(directory.user_times(id).await?),
            None => Ok(None),
        }
    }

    /// Creates a user on a superuser's word, with the password given or with none (an unusable
    /// hash: the user sets one through the reset flow, see [`UserManager::forgot_password`]).
    ///
    /// # Errors
    /// [`ManagerError::InvalidPassword`], [`ManagerError::UserAlreadyExists`], or a failure.
    pub async fn create_by_admin(
        &self,
        create: UserCreate<S::Fields>,
        with_password: bool,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        if with_password {
            return self.create(create, Privilege::Superuser, request).await;
        }
        if self.store().get_by_email(&create.email).await?.is_some() {
            return Err(ManagerError::UserAlreadyExists);
        }
        let new = NewUser {
            id: S::Id::generate(),
            email: create.email,
            hashed_password: PasswordHash::unusable(),
            is_active: create.is_active.unwrap_or(true),
            is_superuser: create.is_superuser.unwrap_or(false),
            is_verified: create.is_verified.unwrap_or(false),
            fields: create.fields,
        };
        let user = match self.store().create(new).await {
            Ok(user) => user,
            Err(StoreError::DuplicateEmail) => return Err(ManagerError::UserAlreadyExists),
            Err(e) => return Err(e.into()),
        };
        self.hooks().on_after_register(&user, request).await;
        self.audit(crate::AuditEvent::UserCreated, Some(&user.id), request)
            .await;
        Ok(user)
    }
}

/// `2026-12-02T11:51:38Z`: a Unix time as RFC 3339 in UTC, as the admin API answers it.
pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Reads an RFC 3339 time (`2026-12-02T11:51:38Z`, any offset) or Unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_bound_to_their_sort() {
        let at = UserCursor::CreatedAt {
            at: 1_700_000_000,
            id: "42".into(),
        };
        let text = at.encode(UserSort::CreatedAt);
        assert_eq!(UserCursor::decode(&text, UserSort::CreatedAt), Some(at));
        assert_eq!(
            UserCursor::decode(&text, UserSort::CreatedAtDesc),
            None,
            "a cursor of one order is no cursor of another"
        );
        let email = UserCursor::Email("a@example.com".into());
        let text = email.encode(UserSort::Email);
        assert_eq!(UserCursor::decode(&text, UserSort::Email), Some(email));
        assert_eq!(UserCursor::decode(&text, UserSort::CreatedAt), None);
        assert_eq!(UserCursor::decode("not base64!", UserSort::Email), None);
        assert_eq!(
            UserCursor::decode(&URL_SAFE_NO_PAD.encode(b"[1,2]"), UserSort::Email),
            None
        );
        let long = CursorWire {
            s: "e".into(),
            t: None,
            k: "a".repeat(400),
        };
        let long = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&long).unwrap());
        assert_eq!(UserCursor::decode(&long, UserSort::Email), None);
    }

    #[test]
    fn the_contains_pattern_escapes_the_wildcards() {
        let query = |q: &str| UserQuery {
            q: Some(q.into()),
            ..UserQuery::default()
        };
        assert_eq!(
            query("A_b%c!d").contains_pattern().as_deref(),
            Some("%a!_b!%c!!d%")
        );
        assert_eq!(query("ada").contains_pattern().as_deref(), Some("%ada%"));
        assert_eq!(query("").contains_pattern(), None);
    }

    #[test]
    fn a_page_keeps_its_size_and_a_cursor_only_when_a_row_is_left() {
        let user = |n: i64| {
            let user = User {
                id: n,
                email: format!("u{n}@example.com"),
                hashed_password: PasswordHash::unusable(),
                is_active: true,
                is_superuser: false,
                is_verified: false,
                email_epoch: 0,
                fields: crate::NoFields {},
            };
            let times = UserTimes {
                created_at: 100 + n,
                ..UserTimes::default()
            };
            (user, times)
        };
        let query = UserQuery {
            limit: 2,
            ..UserQuery::default()
        };
        let page = UserPage::from_rows((1..=3).map(user).collect(), &query);
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            page.next_cursor,
            Some(UserCursor::CreatedAt {
                at: 102,
                id: "2".into()
            })
        );
        let last = UserPage::from_rows((1..=2).map(user).collect(), &query);
        assert_eq!((last.items.len(), last.next_cursor), (2, None));
    }

    #[test]
    fn sorts_parse_and_pages_are_clamped() {
        assert_eq!(
            UserSort::parse("-created_at"),
            Some(UserSort::CreatedAtDesc)
        );
        assert_eq!(UserSort::parse("email"), Some(UserSort::Email));
        assert_eq!(UserSort::parse("id"), None);
        let mut query = UserQuery {
            limit: 1000,
            ..UserQuery::default()
        };
        assert_eq!(query.page_size(), MAX_PAGE);
        query.limit = 0;
        assert_eq!(query.page_size(), 1);
        assert_eq!(UserQuery::default().page_size(), DEFAULT_PAGE);
    }

    #[test]
    fn times_format_as_rfc3339_and_parse_both_ways() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some(10));
        assert_eq!(parse_time("1970-01-01T01:00:10+01:00"), Some(10));
        assert_eq!(parse_time(" 1700000000 "), Some(1_700_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}

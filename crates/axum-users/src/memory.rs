//! An in-memory store, for tests and prototypes: every trait, no database. Data is lost on exit.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::audit::{AuditCursor, AuditPage, AuditQuery, AuditRecord, AuditStore};
use crate::auth::BoxFuture;
use crate::directory::{UserCursor, UserDirectory, UserPage, UserQuery, UserSort, UserTimes};
use crate::email::email_key;
use crate::mfa::{MfaChallenge, MfaStore, TotpRecord};
use crate::model::{NewUser, OAuthAccount, PasswordHash, User, UserFields, UserId};
use crate::sessions::{Pruned, RefreshState, Session};
mod passkeys;
mod webhooks;

use crate::store::{
    AccessTokenStore, NewOAuthAccount, OAuthAccountStore, SessionStore, StoreError, Unlink,
    UserChanges, UserOf, UserStore,
};

struct Tables<Id, F> {
    users: HashMap<Id, User<Id, F>>,
    accounts: Vec<OAuthAccount<Id>>,
    tokens: HashMap<String, (Id, i64)>,
    next_int: i64,
    sessions: HashMap<String, Session<Id>>,
    /// The session of each access-token hash that belongs to one.
    token_sessions: HashMap<String, String>,
    /// The session of every refresh-token hash rotated out of one (reuse detection).
    rotated: HashMap<String, String>,
    /// Queued mail with the worker that holds each message.
    outbox: Vec<(crate::outbox::OutboxMessage, Option<String>)>,
    /// Each user's times (`created_at`, `updated_at`, `last_login_at`).
    times: HashMap<Id, UserTimes>,
    /// The audit log, oldest first.
    audit: Vec<AuditRecord>,
    /// Second factors: TOTP per user, recovery-code hashes per user, pending sign-ins.
    totp: HashMap<Id, TotpRecord>,
    recovery: HashMap<Id, Vec<String>>,
    challenges: HashMap<String, MfaChallenge<Id>>,
    /// Passkeys, oldest first, and the pending ceremonies (`memory/passkeys.rs`).
    passkeys: Vec<crate::passkeys::PasskeyRecord<Id>>,
    passkey_challenges: HashMap<String, crate::passkeys::PasskeyChallenge<Id>>,
    /// The webhook routes and the queue of their deliveries (`webhooks.rs`).
    webhooks: Option<(crate::WebhookRoutes, MemoryStore<Id, F>)>,
}

/// Users, OAuth accounts and access tokens in a mutex. With `i64` ids it numbers users itself.
pub struct MemoryStore<Id = uuid::Uuid, F = crate::NoFields> {
    tables: Arc<Mutex<Tables<Id, F>>>,
    _fields: PhantomData<fn() -> F>,
}

impl<Id, F> Clone for MemoryStore<Id, F> {
    fn clone(&self) -> Self {
        Self {
            tables: self.tables.clone(),
            _fields: PhantomData,
        }
    }
}

impl<Id: UserId, F: UserFields> Default for MemoryStore<Id, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Id: UserId, F: UserFields> MemoryStore<Id, F> {
    /// An empty store.
    pub fn new() -> Self {
        let tables = Tables {
            users: HashMap::new(),
            accounts: Vec::new(),
            tokens: HashMap::new(),
            next_int: 0,
            sessions: HashMap::new(),
            token_sessions: HashMap::new(),
            rotated: HashMap::new(),
            outbox: Vec::new(),
            times: HashMap::new(),
            audit: Vec::new(),
            totp: HashMap::new(),
            recovery: HashMap::new(),
            challenges: HashMap::new(),
            passkeys: Vec::new(),
            passkey_challenges: HashMap::new(),
            webhooks: None,
        };
        Self {
            tables: Arc::new(Mutex::new(tables)),
            _fields: PhantomData,
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Tables<Id, F>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut tables = self
            .tables
            .lock()
            .map_err(|_| StoreError::Backend("memory store poisoned".into()))?;
        f(&mut tables)
    }

    /// Inserts a user, refusing a taken address.
    fn insert_user(t: &mut Tables<Id, F>, new: NewUser<Id, F>) -> Result<User<Id, F>, StoreError> {
        if email_taken(t, &new.email, None) {
            return Err(StoreError::DuplicateEmail);
        }
        let id = match new.id {
            Some(id) => id,
            None => Self::new_id(t)?,
        };
        let user = User {
            id: id.clone(),
            email: new.email,
            hashed_password: new.hashed_password,
            is_active: new.is_active,
            is_superuser: new.is_superuser,
            is_verified: new.is_verified,
            email_epoch: 0,
            fields: new.fields,
        };
        let now = crate::tokens::now_unix();
        t.times.insert(
            id.clone(),
            UserTimes {
                created_at: now,
                updated_at: now,
                last_login_at: None,
            },
        );
        t.users.insert(id, user.clone());
        Ok(user)
    }

    /// Links an account, refusing one that is linked already.
    fn insert_link(
        t: &mut Tables<Id, F>,
        user_id: &Id,
        account: NewOAuthAccount,
    ) -> Result<OAuthAccount<Id>, StoreError> {
        if t.accounts
            .iter()
            .any(|a| a.oauth_name == account.oauth_name && a.account_id == account.account_id)
        {
            return Err(StoreError::DuplicateOAuthAccount);
        }
        let link = OAuthAccount {
            id: Self::new_id(t)?,
            user_id: user_id.clone(),
            oauth_name: account.oauth_name,
            access_token: account.access_token,
            expires_at: account.expires_at,
            refresh_token: account.refresh_token,
            account_id: account.account_id,
            account_email: account.account_email,
        };
        t.accounts.push(link.clone());
        Ok(link)
    }

    fn new_id(tables: &mut Tables<Id, F>) -> Result<Id, StoreError> {
        if let Some(id) = Id::generate() {
            return Ok(id);
        }
        tables.next_int += 1;
        Id::parse(&tables.next_int.to_string())
            .ok_or_else(|| StoreError::Backend("id type not supported".into()))
    }
}

fn email_taken<Id: UserId, F>(tables: &Tables<Id, F>, email: &str, except: Option<&Id>) -> bool {
    let key = email_key(email);
    tables
        .users
        .values()
        .any(|u| email_key(&u.email) == key && Some(&u.id) != except)
}

impl<Id: UserId, F: UserFields> UserStore for MemoryStore<Id, F> {
    type Id = Id;
    type Fields = F;

    async fn get(&self, id: &Id) -> Result<Option<UserOf<Self>>, StoreError> {
        self.with(|t| Ok(t.users.get(id).cloned()))
    }

    async fn get_by_email(&self, email: &str) -> Result<Option<UserOf<Self>>, StoreError> {
        let key = email_key(email);
        self.with(|t| {
            Ok(t.users
                .values()
                .find(|u| email_key(&u.email) == key)
                .cloned())
        })
    }

    async fn create(&self, new: NewUser<Id, F>) -> Result<UserOf<Self>, StoreError> {
        self.with(|t| Self::insert_user(t, new))
    }

    async fn update(
        &self,
        id: &Id,
        changes: UserChanges<F>,
    ) -> Result<Option<UserOf<Self>>, StoreError> {
        let written = !changes.is_empty();
        self.with(|t| {
            if let Some(email) = &changes.email
                && email_taken(t, email, Some(id))
            {
                return Err(StoreError::DuplicateEmail);
            }
            let Some(stored) = t.users.get_mut(id) else {
                return Ok(None);
            };
            if changes
                .if_email_epoch
                .is_some_and(|epoch| epoch != stored.email_epoch)
            {
                return Ok(None);
            }
            if let Some(email) = changes.email
                && email != stored.email
            {
                stored.email = email;
                stored.email_epoch += 1;
            }
            if let Some(flag) = changes.is_active {
                stored.is_active = flag;
            }
            if let Some(flag) = changes.is_superuser {
                stored.is_superuser = flag;
            }
            if let Some(flag) = changes.is_verified {
                stored.is_verified = flag;
            }
            if let Some(fields) = changes.fields {
                stored.fields = fields;
            }
            let stored = stored.clone();
            if written {
                touch(t, id);
            }
            Ok(Some(stored))
        })
    }

    async fn replace_password(
        &self,
        id: &Id,
        expected: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        self.with(|t| match t.users.get_mut(id) {
            Some(user) if &user.hashed_password == expected => {
                user.hashed_password = new.clone();
                touch(t, id);
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn delete(&self, id: &Id) -> Result<bool, StoreError> {
        self.with(|t| {
            t.accounts.retain(|a| &a.user_id != id);
            t.tokens.retain(|_, (owner, _)| owner != id);
            Self::remove_sessions(t, |s| &s.user_id == id);
            t.times.remove(id);
            t.totp.remove(id);
            t.recovery.remove(id);
            t.challenges.retain(|_, c| &c.user_id != id);
            t.passkeys.retain(|p| &p.user_id != id);
            t.passkey_challenges
                .retain(|_, c| c.user_id.as_ref() != Some(id));
            Ok(t.users.remove(id).is_some())
        })
    }

    fn session_store(&self) -> Option<crate::SessionStoreRef<Id, F>> {
        Some(Arc::new(self.clone()))
    }

    fn directory(&self) -> Option<crate::UserDirectoryRef<Id, F>> {
        Some(Arc::new(self.clone()))
    }

    fn audit_store(&self) -> Option<crate::AuditStoreRef> {
        Some(Arc::new(self.clone()))
    }

    fn mfa_store(&self) -> Option<crate::mfa::MfaStoreRef<Id>> {
        Some(Arc::new(self.clone()))
    }

    fn passkey_store(&self) -> Option<crate::passkeys::PasskeyStoreRef<Id>> {
        Some(Arc::new(self.clone()))
    }
}

/// Sets a user's `updated_at` to now.
fn touch<Id: UserId, F>(tables: &mut Tables<Id, F>, id: &Id) {
    if let Some(times) = tables.times.get_mut(id) {
        times.updated_at = crate::tokens::now_unix();
    }
}

/// The sort key of a user for `sort`: what the SQL stores order by.
fn sort_key<Id: UserId, F>(sort: UserSort, user: &User<Id, F>, times: &UserTimes) -> (i64, String) {
    match sort {
        UserSort::CreatedAt | UserSort::CreatedAtDesc => (times.created_at, user.id.to_string()),
        _ => (0, email_key(&user.email)),
    }
}

fn cursor_key(cursor: &UserCursor) -> (i64, String) {
    match cursor {
        UserCursor::CreatedAt { at, id } => (*at, id.clone()),
        UserCursor::Email(key) => (0, key.clone()),
    }
}

impl<Id: UserId, F: UserFields> UserDirectory<Id, F> for MemoryStore<Id, F> {
    fn list_users<'a>(
        &'a self,
        query: &'a UserQuery,
    ) -> BoxFuture<'a, Result<UserPage<Id, F>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let after = query.after.as_ref().map(cursor_key);
                let descending = query.sort.descending();
                let mut rows: Vec<SortedUser<Id, F>> = t
                    .users
                    .values()
                    .filter_map(|user| {
                        let times = t.times.get(&user.id).copied().unwrap_or_default();
                        let key = sort_key(query.sort, user, &times);
                        let beyond = after.as_ref().is_none_or(|after| {
                            if descending {
                                &key < after
                            } else {
                                &key > after
                            }
                        });
                        (beyond && query.matches(user, &times))
                            .then(|| (key, (user.clone(), times)))
                    })
                    .collect();
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                if descending {
                    rows.reverse();
                }
                let size = query.page_size() as usize;
                let more = rows.len() > size;
                let items: Vec<_> = rows.into_iter().take(size).map(|(_, row)| row).collect();
                let next_cursor = more
                    .then(|| items.last())
                    .flatten()
                    .map(|(user, times)| UserCursor::after(query.sort, user, times));
                Ok(UserPage { items, next_cursor })
            })
        })
    }

    fn user_times<'a>(
        &'a self,
        id: &'a Id,
    ) -> BoxFuture<'a, Result<Option<UserTimes>, StoreError>> {
        Box::pin(async move { self.with(|t| Ok(t.times.get(id).copied())) })
    }

    fn record_login<'a>(&'a self, id: &'a Id, at: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                if let Some(times) = t.times.get_mut(id) {
                    times.last_login_at = Some(at);
                }
                Ok(())
            })
        })
    }
}

impl<Id: UserId, F: UserFields> AuditStore for MemoryStore<Id, F> {
    fn append<'a>(&'a self, record: &'a AuditRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let webhooks = self.with(|t| {
                t.audit.push(record.clone());
                Ok(t.webhooks.clone())
            })?;
            webhooks::queue(webhooks, record).await
        })
    }

    fn list_events<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<AuditPage, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let mut rows: Vec<&AuditRecord> =
                    t.audit.iter().filter(|r| query.matches(r)).collect();
                rows.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
                let size = query.page_size() as usize;
                let more = rows.len() > size;
                let items: Vec<AuditRecord> = rows.into_iter().take(size).cloned().collect();
                let next_cursor = more.then(|| items.last()).flatten().map(|r| AuditCursor {
                    at: r.at,
                    id: r.id.clone(),
                });
                Ok(AuditPage { items, next_cursor })
            })
        })
    }

    fn prune_events<'a>(&'a self, before: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let had = t.audit.len();
                t.audit.retain(|r| r.at >= before);
                Ok((had - t.audit.len()) as u64)
            })
        })
    }
}

impl<Id: UserId, F: UserFields> OAuthAccountStore for MemoryStore<Id, F> {
    async fn get_by_oauth_account(
        &self,
        oauth_name: &str,
        account_id: &str,
    ) -> Result<Option<UserOf<Self>>, StoreError> {
        self.with(|t| {
            let owner = t
                .accounts
                .iter()
                .find(|a| a.oauth_name == oauth_name && a.account_id == account_id);
            Ok(owner.and_then(|a| t.users.get(&a.user_id)).cloned())
        })
    }

    async fn list_oauth_accounts(&self, user_id: &Id) -> Result<Vec<OAuthAccount<Id>>, StoreError> {
        self.with(|t| {
            Ok(t.accounts
                .iter()
                .filter(|a| &a.user_id == user_id)
                .cloned()
                .collect())
        })
    }

    async fn add_oauth_account(
        &self,
        user_id: &Id,
        account: NewOAuthAccount,
    ) -> Result<OAuthAccount<Id>, StoreError> {
        self.with(|t| Self::insert_link(t, user_id, account))
    }

    async fn create_with_oauth_account(
        &self,
        user: NewUser<Id, F>,
        account: NewOAuthAccount,
    ) -> Result<UserOf<Self>, StoreError> {
        self.with(|t| {
            // Checked first so that a refusal leaves no user behind.
            if t.accounts
                .iter()
                .any(|a| a.oauth_name == account.oauth_name && a.account_id == account.account_id)
            {
                return Err(StoreError::DuplicateOAuthAccount);
            }
            let user = Self::insert_user(t, user)?;
            Self::insert_link(t, &user.id, account)?;
            Ok(user)
        })
    }

    async fn update_oauth_account(&self, account: &OAuthAccount<Id>) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(stored) = t.accounts.iter_mut().find(|a| a.id == account.id) {
                *stored = account.clone();
            }
            Ok(())
        })
    }

    async fn unlink_oauth_account(
        &self,
        user_id: &Id,
        account_id: &Id,
    ) -> Result<Unlink, StoreError> {
        // One lock over the check and the removal: that is the atomicity the trait asks for.
        self.with(|t| {
            let Some(user) = t.users.get(user_id) else {
                return Ok(Unlink::NotFound);
            };
            let owned = |a: &OAuthAccount<Id>| &a.user_id == user_id;
            if !t.accounts.iter().any(|a| owned(a) && &a.id == account_id) {
                return Ok(Unlink::NotFound);
            }
            let others = t
                .accounts
                .iter()
                .filter(|a| owned(a) && &a.id != account_id)
                .count();
            if others == 0 && !user.hashed_password.is_usable() {
                return Ok(Unlink::LastSignInMethod);
            }
            t.accounts.retain(|a| !(owned(a) && &a.id == account_id));
            Ok(Unlink::Removed)
        })
    }
}

impl<Id: UserId, F: UserFields> AccessTokenStore for MemoryStore<Id, F> {
    type Id = Id;

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &Id,
        created_at: i64,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            t.tokens
                .insert(token_hash.to_owned(), (user_id.clone(), created_at));
            Ok(())
        })
    }

    async fn find_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> Result<Option<Id>, StoreError> {
        self.with(|t| {
            Ok(t.tokens
                .get(token_hash)
                .filter(|(_, created)| not_before.is_none_or(|nb| *created >= nb))
                .map(|(id, _)| id.clone()))
        })
    }

    async fn delete_token(&self, token_hash: &str) -> Result<(), StoreError> {
        self.with(|t| {
            t.tokens.remove(token_hash);
            t.token_sessions.remove(token_hash);
            Ok(())
        })
    }

    async fn create_session_token(
        &self,
        token_hash: &str,
        user_id: &Id,
        session_id: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            t.tokens
                .insert(token_hash.to_owned(), (user_id.clone(), created_at));
            t.token_sessions
                .insert(token_hash.to_owned(), session_id.to_owned());
            Ok(())
        })
    }

    async fn find_session_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> Result<Option<crate::store::TokenSession<Id>>, StoreError> {
        self.with(|t| {
            Ok(t.tokens
                .get(token_hash)
                .filter(|(_, created)| not_before.is_none_or(|nb| *created >= nb))
                .map(|(id, _)| (id.clone(), t.token_sessions.get(token_hash).cloned())))
        })
    }
}

impl<Id: UserId, F: UserFields> MemoryStore<Id, F> {
    /// Removes sessions (and their access tokens) that `doomed` picks; returns their ids.
    fn remove_sessions(
        t: &mut Tables<Id, F>,
        doomed: impl Fn(&Session<Id>) -> bool,
    ) -> Vec<String> {
        let ids: Vec<String> = t
            .sessions
            .values()
            .filter(|s| doomed(s))
            .map(|s| s.id.clone())
            .collect();
        for id in &ids {
            t.sessions.remove(id);
        }
        let tokens: Vec<String> = t
            .token_sessions
            .iter()
            .filter(|(_, sid)| ids.contains(sid))
            .map(|(hash, _)| hash.clone())
            .collect();
        for hash in tokens {
            t.token_sessions.remove(&hash);
            t.tokens.remove(&hash);
        }
        t.rotated.retain(|_, sid| !ids.contains(sid));
        ids
    }
}

impl<Id: UserId, F: UserFields> SessionStore<Id, F> for MemoryStore<Id, F> {
    fn create_session<'a>(
        &'a self,
        session: &'a Session<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                t.sessions.insert(session.id.clone(), session.clone());
                Ok(())
            })
        })
    }

    fn get_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| Ok(t.sessions.get(id).filter(|s| s.expires_at > now).cloned()))
        })
    }

    fn user_of_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<crate::store::UserSession<Id, F>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let Some(session) = t.sessions.get(id).filter(|s| s.expires_at > now) else {
                    return Ok(None);
                };
                Ok(t.users
                    .get(&session.user_id)
                    .map(|u| (u.clone(), session.clone())))
            })
        })
    }

    fn find_session_by_refresh<'a>(
        &'a self,
        hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let is = |h: &Option<String>| h.as_deref() == Some(hash);
                let rotated = t.rotated.get(hash);
                Ok(t.sessions
                    .values()
                    .find(|s| {
                        s.expires_at > now
                            && (is(&s.refresh.current)
                                || is(&s.refresh.previous)
                                || rotated == Some(&s.id))
                    })
                    .cloned())
            })
        })
    }

    fn swap_refresh<'a>(
        &'a self,
        id: &'a str,
        expected: &'a str,
        next: &'a RefreshState,
        retired: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| match t.sessions.get_mut(id) {
                Some(s) if s.refresh.current.as_deref() == Some(expected) => {
                    s.refresh = next.clone();
                    if let Some(hash) = retired {
                        t.rotated.insert(hash.to_owned(), id.to_owned());
                    }
                    Ok(true)
                }
                _ => Ok(false),
            })
        })
    }

    fn touch_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        stale_before: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                if let Some(s) = t.sessions.get_mut(id)
                    && s.last_seen_at < stale_before
                {
                    s.last_seen_at = now;
                }
                Ok(())
            })
        })
    }

    fn list_sessions<'a>(
        &'a self,
        user_id: &'a Id,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<Session<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let mut list: Vec<Session<Id>> = t
                    .sessions
                    .values()
                    .filter(|s| &s.user_id == user_id && s.expires_at > now)
                    .cloned()
                    .collect();
                list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
                Ok(list)
            })
        })
    }

    fn delete_sessions<'a>(
        &'a self,
        user_id: &'a Id,
        only: Option<&'a str>,
        except: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let gone = Self::remove_sessions(t, |s| {
                    &s.user_id == user_id
                        && only.is_none_or(|o| o == s.id)
                        && except.is_none_or(|e| e != s.id)
                });
                if only.is_none() {
                    let sessions = &t.token_sessions;
                    t.tokens
                        .retain(|hash, (owner, _)| owner != user_id || sessions.contains_key(hash));
                }
                Ok(gone)
            })
        })
    }

    fn delete_session_tokens_before<'a>(
        &'a self,
        id: &'a str,
        before: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let old: Vec<String> = t
                    .token_sessions
                    .iter()
                    .filter(|(hash, sid)| {
                        sid.as_str() == id
                            && t.tokens.get(*hash).is_some_and(|(_, at)| *at < before)
                    })
                    .map(|(hash, _)| hash.clone())
                    .collect();
                for hash in &old {
                    t.token_sessions.remove(hash);
                    t.tokens.remove(hash);
                }
                Ok(old.len() as u64)
            })
        })
    }

    fn prune<'a>(
        &'a self,
        now: i64,
        tokens_before: Option<i64>,
    ) -> BoxFuture<'a, Result<Pruned, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let before = t.tokens.len();
                let sessions = Self::remove_sessions(t, |s| s.expires_at <= now).len() as u64;
                let orphans: Vec<String> = t
                    .token_sessions
                    .iter()
                    .filter(|(_, sid)| !t.sessions.contains_key(*sid))
                    .map(|(hash, _)| hash.clone())
                    .collect();
                for hash in orphans {
                    t.token_sessions.remove(&hash);
                    t.tokens.remove(&hash);
                }
                if let Some(limit) = tokens_before {
                    t.tokens.retain(|_, (_, created)| *created >= limit);
                    let tokens = &t.tokens;
                    t.token_sessions.retain(|hash, _| tokens.contains_key(hash));
                }
                Ok(Pruned {
                    sessions,
                    access_tokens: (before - t.tokens.len()) as u64,
                })
            })
        })
    }
}

/// Second factors in memory: each call holds the lock, so every compare-and-swap is atomic.
impl<Id: UserId, F: UserFields> MfaStore<Id> for MemoryStore<Id, F> {
    fn get_totp<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Option<TotpRecord>, StoreError>> {
        Box::pin(async move { self.with(|t| Ok(t.totp.get(user_id).cloned())) })
    }

    fn begin_totp<'a>(
        &'a self,
        user_id: &'a Id,
        sealed_secret: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                if t.totp.get(user_id).is_some_and(|r| r.confirmed) {
                    return Ok(false);
                }
                let record = TotpRecord {
                    sealed_secret: sealed_secret.to_owned(),
                    confirmed: false,
                    last_step: None,
                    created_at: now,
                };
                t.totp.insert(user_id.clone(), record);
                Ok(true)
            })
        })
    }

    fn confirm_totp<'a>(
        &'a self,
        user_id: &'a Id,
        sealed_secret: &'a str,
        step: i64,
        recovery_hashes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let Some(record) = t
                    .totp
                    .get_mut(user_id)
                    .filter(|r| !r.confirmed && r.sealed_secret == sealed_secret)
                else {
                    return Ok(false);
                };
                record.confirmed = true;
                record.last_step = Some(step);
                t.recovery.insert(user_id.clone(), recovery_hashes.to_vec());
                Ok(true)
            })
        })
    }

    fn use_totp_step<'a>(
        &'a self,
        user_id: &'a Id,
        step: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let Some(record) = t
                    .totp
                    .get_mut(user_id)
                    .filter(|r| r.confirmed && r.last_step.is_none_or(|last| last < step))
                else {
                    return Ok(false);
                };
                record.last_step = Some(step);
                Ok(true)
            })
        })
    }

    fn remove_totp<'a>(&'a self, user_id: &'a Id) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                t.recovery.remove(user_id);
                Ok(t.totp.remove(user_id).is_some())
            })
        })
    }

    fn recovery_codes<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(
            async move { self.with(|t| Ok(t.recovery.get(user_id).cloned().unwrap_or_default())) },
        )
    }

    fn replace_recovery_codes<'a>(
        &'a self,
        user_id: &'a Id,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                t.recovery.insert(user_id.clone(), hashes.to_vec());
                Ok(())
            })
        })
    }

    fn use_recovery_code<'a>(
        &'a self,
        user_id: &'a Id,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let Some(codes) = t.recovery.get_mut(user_id) else {
                    return Ok(false);
                };
                let before = codes.len();
                codes.retain(|c| c != hash);
                Ok(codes.len() < before)
            })
        })
    }

    fn create_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        challenge: &'a MfaChallenge<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                t.challenges
                    .insert(token_hash.to_owned(), challenge.clone());
                Ok(())
            })
        })
    }

    fn get_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<MfaChallenge<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                Ok(t.challenges
                    .get(token_hash)
                    .filter(|c| c.expires_at > now)
                    .cloned())
            })
        })
    }

    fn fail_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                Ok(t.challenges.get_mut(token_hash).map_or(0, |c| {
                    c.failures += 1;
                    c.failures
                }))
            })
        })
    }

    fn take_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
        max_failures: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let alive = t
                    .challenges
                    .get(token_hash)
                    .is_some_and(|c| c.expires_at > now && c.failures < max_failures);
                if alive {
                    t.challenges.remove(token_hash);
                }
                Ok(alive)
            })
        })
    }

    fn prune_mfa_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let before = t.challenges.len();
                t.challenges.retain(|_, c| c.expires_at > now);
                Ok((before - t.challenges.len()) as u64)
            })
        })
    }
}

/// The outbox in memory: the same claim rule as the databases (a lease per message).
impl<Id: UserId, F: UserFields> crate::outbox::OutboxStore for MemoryStore<Id, F> {
    async fn enqueue(&self, message: crate::outbox::NewOutboxMessage) -> Result<(), StoreError> {
        let stored = crate::outbox::OutboxMessage {
            id: message.id,
            recipient: message.recipient,
            kind: message.kind,
            sealed: message.sealed,
            status: crate::outbox::OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: message.created_at,
            locked_until: 0,
            last_error: None,
            created_at: message.created_at,
        };
        self.with(|t| {
            t.outbox.push((stored, None));
            Ok(())
        })
    }

    async fn claim(
        &self,
        now: i64,
        lease_seconds: i64,
        limit: u32,
        worker: &str,
    ) -> Result<Vec<crate::outbox::OutboxMessage>, StoreError> {
        self.with(|t| {
            let due = t.outbox.iter_mut().filter(|(m, _)| {
                m.status == crate::outbox::OutboxStatus::Pending
                    && m.next_attempt_at <= now
                    && m.locked_until <= now
            });
            let mut claimed = Vec::new();
            for (m, holder) in due.take(limit as usize) {
                m.locked_until = now.saturating_add(lease_seconds);
                *holder = Some(worker.to_owned());
                claimed.push(m.clone());
            }
            Ok(claimed)
        })
    }

    async fn delete_sent(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        self.with(|t| {
            let before = t.outbox.len();
            t.outbox
                .retain(|(m, holder)| !(m.id == id && holder.as_deref() == Some(worker)));
            Ok(t.outbox.len() < before)
        })
    }

    async fn record_failure(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            let held = t
                .outbox
                .iter_mut()
                .find(|(m, holder)| m.id == id && holder.as_deref() == Some(worker));
            if let Some((m, holder)) = held {
                *holder = None;
                m.attempts += 1;
                m.last_error = Some(error.chars().take(1000).collect());
                m.locked_until = 0;
                match next_attempt_at {
                    Some(at) => m.next_attempt_at = at,
                    None => m.status = crate::outbox::OutboxStatus::Failed,
                }
            }
            Ok(())
        })
    }

    async fn list_outbox(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::outbox::OutboxMessage>, StoreError> {
        self.with(|t| {
            Ok(t.outbox
                .iter()
                .take(limit as usize)
                .map(|(m, _)| m.clone())
                .collect())
        })
    }

    async fn retry_failed(&self, id: Option<&str>, now: i64) -> Result<u64, StoreError> {
        self.with(|t| {
            let mut n = 0;
            for (m, holder) in t.outbox.iter_mut().filter(|(m, _)| {
                m.status == crate::outbox::OutboxStatus::Failed && id.is_none_or(|id| m.id == id)
            }) {
                m.status = crate::outbox::OutboxStatus::Pending;
                m.attempts = 0;
                m.next_attempt_at = now;
                m.locked_until = 0;
                *holder = None;
                n += 1;
            }
            Ok(n)
        })
    }
}

/// A user with its times, under its sort key, as the memory store's listing sorts them.
type SortedUser<Id, F> = ((i64, String), (User<Id, F>, UserTimes));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn memory_store_conforms() {
        let store: MemoryStore = MemoryStore::new();
        testing::user_store(&store).await;
        testing::oauth_account_store(&store).await;
        testing::access_token_store(&store, &store).await;
        testing::concurrent_creates(&store, 50).await;
        testing::outbox_store(&store).await;
        testing::concurrent_unlinks(&store, 5).await;
        testing::session_store(&store, &store).await;
        testing::user_directory(&store).await;
        testing::audit_store(&store).await;
        testing::mfa_store(&store).await;
        testing::concurrent_mfa_uses(&store, 20).await;
        testing::passkey_store(&store).await;
        testing::concurrent_passkey_uses(&store, 20).await;
        let ints: MemoryStore<i64> = MemoryStore::new();
        testing::user_directory(&ints).await;
        testing::user_store(&ints).await;
        testing::oauth_account_store(&ints).await;
        testing::concurrent_unlinks(&ints, 2).await;
        testing::session_store(&ints, &ints).await;
        testing::mfa_store(&ints).await;
        testing::passkey_store(&ints).await;
    }
}

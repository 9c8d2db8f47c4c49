//! The conformance suite every store must pass, generic over the store (feature `testing`).
//!
//! Each check uses fresh random e-mail addresses and account ids, so it can run again and again
//! against a shared database. Failures panic with a message that says which rule broke.

#![allow(clippy::missing_panics_doc)]

use std::fmt::Debug;

use crate::auth::Strategy;
use crate::model::{NewUser, PasswordHash, User, UserId};
use crate::secret::{Secret, random_token};
use crate::store::{
    AccessTokenStore, NewOAuthAccount, OAuthAccountStore, StoreError, UserOf, UserStore,
};
use crate::tokens::now_unix;

/// A fresh, unique, valid address with upper-case letters in it.
pub fn unique_email() -> String {
    format!(
        "Conformance.{}@Example.com",
        random_token(9).to_lowercase().replace(['-', '_'], "x")
    )
}

/// A new user with that address.
pub fn new_user<S: UserStore>(email: &str) -> NewUser<S::Id, S::Fields> {
    NewUser {
        id: S::Id::generate(),
        email: email.to_owned(),
        hashed_password: PasswordHash(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        ),
        is_active: true,
        is_superuser: false,
        is_verified: false,
        fields: Default::default(),
    }
}

async fn create<S: UserStore>(store: &S) -> UserOf<S>
where
    S::Fields: PartialEq + Debug,
{
    let email = unique_email();
    let user = store
        .create(new_user::<S>(&email))
        .await
        .expect("create a user");
    assert_eq!(user.email, email, "create keeps the address as given");
    user
}

/// Users: create, read by id and by e-mail (case-insensitively), update every column, the
/// unique constraint (also on update), compare-and-swap of the password, delete.
pub async fn user_store<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let user = create(store).await;
    assert!(user.is_active && !user.is_superuser && !user.is_verified);
    assert_eq!(
        store.get(&user.id).await.expect("get").as_ref(),
        Some(&user),
        "get by id"
    );
    assert_eq!(
        store
            .get_by_email(&user.email.to_uppercase())
            .await
            .expect("get_by_email")
            .as_ref(),
        Some(&user)
    );
    assert_eq!(
        store
            .get_by_email(&user.email.to_lowercase())
            .await
            .expect("get_by_email")
            .as_ref(),
        Some(&user)
    );
    assert!(
        store
            .get_by_email(&unique_email())
            .await
            .expect("get_by_email")
            .is_none()
    );

    let duplicate = store
        .create(new_user::<S>(&user.email.to_lowercase()))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::DuplicateEmail)),
        "the e-mail is unique case-insensitively: {duplicate:?}"
    );

    let mut changed = user.clone();
    changed.email = unique_email();
    changed.is_active = false;
    changed.is_superuser = true;
    changed.is_verified = true;
    changed.hashed_password =
        PasswordHash("$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234".into());
    store.update(&changed).await.expect("update");
    let expected = User {
        hashed_password: user.hashed_password.clone(),
        ..changed.clone()
    };
    assert_eq!(
        store.get(&user.id).await.expect("get").as_ref(),
        Some(&expected),
        "update writes every column but the password hash, which only replace_password changes"
    );
    assert!(
        store
            .get_by_email(&user.email)
            .await
            .expect("get")
            .is_none(),
        "the old address is free again"
    );

    let other = create(store).await;
    let mut clash = other.clone();
    clash.email = changed.email.to_uppercase();
    assert!(
        matches!(store.update(&clash).await, Err(StoreError::DuplicateEmail)),
        "update keeps addresses unique"
    );
    assert_eq!(
        store.get(&other.id).await.expect("get").as_ref(),
        Some(&other),
        "a refused update changes nothing"
    );

    let new_hash = PasswordHash("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g".into());
    assert!(
        !store
            .replace_password(&user.id, &changed.hashed_password, &new_hash)
            .await
            .expect("cas"),
        "CAS refuses a hash that is not the stored one"
    );
    assert!(
        store
            .replace_password(&user.id, &user.hashed_password, &new_hash)
            .await
            .expect("cas")
    );
    assert!(
        !store
            .replace_password(&user.id, &user.hashed_password, &new_hash)
            .await
            .expect("cas"),
        "CAS succeeds once"
    );
    assert_eq!(
        store
            .get(&user.id)
            .await
            .expect("get")
            .map(|u| u.hashed_password),
        Some(new_hash)
    );

    assert!(store.delete(&user.id).await.expect("delete"));
    assert!(
        !store.delete(&user.id).await.expect("delete"),
        "deleting twice reports the absence"
    );
    assert!(store.get(&user.id).await.expect("get").is_none());
    assert!(store.delete(&other.id).await.expect("delete"));
}

/// Concurrent creations of one address (in several spellings): exactly one succeeds.
pub async fn concurrent_creates<S: UserStore>(store: &S, attempts: usize) {
    let email = unique_email();
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let store = store.clone();
            let email = if i % 2 == 0 {
                email.clone()
            } else {
                email.to_uppercase()
            };
            tokio::spawn(async move { store.create(new_user::<S>(&email)).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => created += 1,
            Err(StoreError::DuplicateEmail) => {}
            Err(other) => panic!("a concurrent duplicate must be DuplicateEmail, got {other:?}"),
        }
    }
    assert_eq!(
        created, 1,
        "exactly one of {attempts} concurrent creations succeeds"
    );
}

fn account(name: &str, account_id: &str) -> NewOAuthAccount {
    NewOAuthAccount {
        oauth_name: name.to_owned(),
        access_token: Secret::new(format!("at-{}", "x".repeat(2048))),
        expires_at: Some(now_unix() + 3600),
        refresh_token: Some(Secret::new("rt-1")),
        account_id: account_id.to_owned(),
        account_email: "someone@example.com".to_owned(),
    }
}

/// OAuth accounts: many per user, lookup by `(oauth_name, account_id)`, update, unlink, and
/// removal with the user. Tokens longer than 1024 characters fit.
pub async fn oauth_account_store<S: OAuthAccountStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let user = create(store).await;
    let account_id = random_token(12);
    let google = store
        .add_oauth_account(&user.id, account("google", &account_id))
        .await
        .expect("add");
    let github = store
        .add_oauth_account(&user.id, account("github", &account_id))
        .await
        .expect("add");
    assert_eq!(google.user_id, user.id);
    assert_eq!(
        google.access_token.expose().len(),
        2051,
        "long provider tokens are kept whole"
    );
    let found = store
        .get_by_oauth_account("google", &account_id)
        .await
        .expect("lookup");
    assert_eq!(found.map(|u| u.id), Some(user.id.clone()));
    assert!(
        store
            .get_by_oauth_account("gitlab", &account_id)
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        store
            .list_oauth_accounts(&user.id)
            .await
            .expect("list")
            .len(),
        2
    );

    let mut updated = google.clone();
    updated.access_token = Secret::new("at-2");
    updated.refresh_token = None;
    updated.expires_at = None;
    updated.account_email = "new@example.com".into();
    store.update_oauth_account(&updated).await.expect("update");
    let listed = store.list_oauth_accounts(&user.id).await.expect("list");
    assert!(
        listed.contains(&updated),
        "update writes tokens, expiry and e-mail: {listed:?}"
    );

    let stranger = create(store).await;
    assert!(
        !store
            .delete_oauth_account(&stranger.id, &github.id)
            .await
            .expect("unlink"),
        "only the owner unlinks"
    );
    assert!(
        store
            .delete_oauth_account(&user.id, &github.id)
            .await
            .expect("unlink")
    );
    assert_eq!(
        store.list_oauth_accounts(&user.id).await.expect("list"),
        vec![updated]
    );

    assert!(store.delete(&user.id).await.expect("delete"));
    assert!(
        store
            .get_by_oauth_account("google", &account_id)
            .await
            .expect("lookup")
            .is_none(),
        "accounts go with the user"
    );
    assert!(store.delete(&stranger.id).await.expect("delete"));
}

/// Access tokens: stored, found within their lifetime, deleted, and removed with their user.
pub async fn access_token_store<S, T>(users: &S, tokens: &T)
where
    S: UserStore,
    S::Fields: PartialEq + Debug,
    T: AccessTokenStore<Id = S::Id>,
{
    let user = create(users).await;
    let hash = crate::hash_token(&random_token(32));
    let now = now_unix();
    tokens
        .create_token(&hash, &user.id, now - 100)
        .await
        .expect("create token");
    assert_eq!(
        tokens.find_token(&hash, None).await.expect("find"),
        Some(user.id.clone())
    );
    assert_eq!(
        tokens
            .find_token(&hash, Some(now - 200))
            .await
            .expect("find"),
        Some(user.id.clone())
    );
    assert_eq!(
        tokens
            .find_token(&hash, Some(now - 50))
            .await
            .expect("find"),
        None,
        "too old"
    );
    assert_eq!(
        tokens
            .find_token(&crate::hash_token("other"), None)
            .await
            .expect("find"),
        None
    );
    tokens.delete_token(&hash).await.expect("delete");
    tokens
        .delete_token(&hash)
        .await
        .expect("deleting twice is fine");
    assert_eq!(tokens.find_token(&hash, None).await.expect("find"), None);

    let second = crate::hash_token(&random_token(32));
    tokens
        .create_token(&second, &user.id, now)
        .await
        .expect("create token");
    assert!(users.delete(&user.id).await.expect("delete"));
    assert_eq!(
        tokens.find_token(&second, None).await.expect("find"),
        None,
        "tokens go with the user"
    );
}

/// A token strategy: written tokens read back to their user; destroyed ones do not; garbage does not.
pub async fn strategy<Id: UserId>(strategy: &dyn Strategy<Id>, user_id: Id, revocable: bool) {
    let issued = strategy.write_token(&user_id).await.expect("write");
    let token = issued.access_token.expose().to_owned();
    assert!(token.len() >= 43, "tokens carry at least 256 bits");
    assert_eq!(
        strategy.read_token(&token).await.expect("read"),
        Some(user_id.clone())
    );
    assert_eq!(strategy.read_token("garbage").await.expect("read"), None);
    assert_eq!(strategy.read_token("").await.expect("read"), None);
    strategy
        .destroy_token("garbage")
        .await
        .expect("destroying an unknown token is fine");
    if revocable {
        let other = strategy.write_token(&user_id).await.expect("write");
        let other = other.access_token.expose().to_owned();
        assert_ne!(token, other, "every login gets its own token");
        strategy.destroy_token(&token).await.expect("destroy");
        assert_eq!(
            strategy.read_token(&token).await.expect("read"),
            None,
            "a destroyed token is refused"
        );
        assert_eq!(
            strategy.read_token(&other).await.expect("read"),
            Some(user_id),
            "other sessions survive"
        );
    }
}

/// Concurrent compare-and-swaps of one password hash (one reset token used at once from several
/// places): exactly one replaces it.
pub async fn concurrent_password_replace<S: UserStore>(store: &S, attempts: usize)
where
    S::Fields: PartialEq + Debug,
{
    let user = create(store).await;
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let store = store.clone();
            let id = user.id.clone();
            let expected = user.hashed_password.clone();
            tokio::spawn(async move {
                let new = PasswordHash(format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$concurrent{i}"));
                store.replace_password(&id, &expected, &new).await
            })
        })
        .collect();
    let mut replaced = 0;
    for task in tasks {
        if task.await.expect("task").expect("cas") {
            replaced += 1;
        }
    }
    assert_eq!(
        replaced, 1,
        "exactly one of {attempts} concurrent swaps succeeds"
    );
    assert!(store.delete(&user.id).await.expect("delete"));
}

/// The URL of a test service from the environment variable `var`; when it is unset, prints
/// `SKIPPED: <backend> (set <var>)` and returns `None`, so suites against real servers run
/// where the service is provided (CI) and pass elsewhere.
pub fn service_url(var: &str, backend: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("SKIPPED: {backend} (set {var})");
            None
        }
    }
}

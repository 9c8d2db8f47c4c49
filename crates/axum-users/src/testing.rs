//! The store conformance suite every store must pass, generic over the store, and [`TestApp`],
//! an in-process client for route tests (feature `testing`).
//!
//! Each check uses fresh random e-mail addresses and account ids, so it can run again and again
//! against a shared database. Failures panic with a message that says which rule broke.

#![allow(clippy::missing_panics_doc)]

mod mfa;
mod passkeys;
mod test_app;
pub use test_app::{TestApp, TestRequest, TestResponse};

use std::fmt::Debug;

use crate::auth::Strategy;
use crate::model::{NewUser, PasswordHash, User, UserId};
use crate::secret::{Secret, random_token};
use crate::store::{
    AccessTokenStore, NewOAuthAccount, OAuthAccountStore, StoreError, Unlink, UserChanges, UserOf,
    UserStore,
};
use crate::tokens::now_unix;

pub use crate::outbox::conformance::outbox_store;
pub use crate::webhooks::conformance::{conformance_routes, webhook_queueing};
pub use mfa::{concurrent_mfa_uses, mfa_store};
#[cfg(feature = "testing")]
pub use passkeys::SoftPasskey;
pub use passkeys::{concurrent_passkey_uses, passkey_store};

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

/// Users: create, read by id and by e-mail (case-insensitively), update of the named columns,
/// the unique constraint (also on update), compare-and-swap of the password, delete; then
/// [`stale_writes`] and [`email_epochs`].
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

    let changes = UserChanges {
        email: Some(unique_email()),
        is_active: Some(false),
        is_superuser: Some(true),
        is_verified: Some(true),
        fields: Some(user.fields.clone()),
        if_email_epoch: None,
    };
    let changed = store
        .update(&user.id, changes.clone())
        .await
        .expect("update")
        .expect("the user exists");
    let expected = User {
        email: changes.email.clone().expect("set above"),
        is_active: false,
        is_superuser: true,
        is_verified: true,
        email_epoch: 1,
        ..user.clone()
    };
    assert_eq!(changed, expected, "update returns the user as stored");
    assert_eq!(
        store.get(&user.id).await.expect("get").as_ref(),
        Some(&expected),
        "update writes the columns it names, and a new address bumps the epoch"
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
    let clash = UserChanges {
        email: Some(changed.email.to_uppercase()),
        is_active: Some(false),
        ..UserChanges::default()
    };
    let refused = store.update(&other.id, clash).await;
    assert!(
        matches!(refused, Err(StoreError::DuplicateEmail)),
        "update keeps addresses unique: {refused:?}"
    );
    assert_eq!(
        store.get(&other.id).await.expect("get").as_ref(),
        Some(&other),
        "a refused update changes nothing"
    );

    let new_hash = PasswordHash("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g".into());
    let not_stored =
        PasswordHash("$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234".into());
    assert!(
        !store
            .replace_password(&user.id, &not_stored, &new_hash)
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
    assert!(
        store
            .update(&user.id, UserChanges::default())
            .await
            .expect("update")
            .is_none(),
        "an empty update of a missing user reads nothing"
    );
    let revive = UserChanges {
        is_active: Some(true),
        ..UserChanges::default()
    };
    assert!(
        store
            .update(&user.id, revive)
            .await
            .expect("update")
            .is_none(),
        "an update of a missing user is None and creates nobody"
    );
    assert!(store.get(&user.id).await.expect("get").is_none());
    assert!(store.delete(&other.id).await.expect("delete"));

    stale_writes(store).await;
    email_epochs(store).await;
    email_epoch_guard(store).await;
}

/// [`UserChanges::if_email_epoch`]: an update from a stale epoch writes nothing and is
/// `None`; of two concurrent changes from the same epoch, exactly one lands.
pub async fn email_epoch_guard<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let user = create(store).await;
    let guarded = |email: &str, epoch: i64| UserChanges {
        email: Some(email.to_owned()),
        is_verified: Some(true),
        if_email_epoch: Some(epoch),
        ..UserChanges::default()
    };
    let change = |email: String| {
        let (store, id, changes) = (store.clone(), user.id.clone(), guarded(&email, 0));
        tokio::spawn(async move { store.update(&id, changes).await })
    };
    let (first, second) = tokio::join!(change(unique_email()), change(unique_email()));
    let landed: Vec<_> = [first.expect("join"), second.expect("join")]
        .into_iter()
        .filter_map(|r| r.expect("update"))
        .collect();
    assert_eq!(landed.len(), 1, "exactly one change from epoch 0 lands");
    let stored = store.get(&user.id).await.expect("get").expect("exists");
    assert_eq!(
        stored.email, landed[0].email,
        "the stored address is the winner's"
    );
    assert_eq!((stored.email_epoch, stored.is_verified), (1, true));
    assert!(
        store
            .update(&user.id, guarded(&unique_email(), 0))
            .await
            .expect("stale")
            .is_none(),
        "a stale epoch writes nothing"
    );
    assert_eq!(
        store.get(&user.id).await.expect("get").expect("exists"),
        stored,
        "the stale update left the row alone"
    );
    let flags_only = UserChanges {
        is_active: Some(false),
        if_email_epoch: Some(0),
        ..UserChanges::default()
    };
    assert!(
        store
            .update(&user.id, flags_only)
            .await
            .expect("stale flags")
            .is_none(),
        "the guard holds for any column"
    );
    assert!(
        store
            .get(&user.id)
            .await
            .expect("get")
            .expect("exists")
            .is_active
    );
    assert!(store.delete(&user.id).await.expect("delete"));
}

/// The interleaving of the security review: a writer reads a user, a second writer changes the
/// flags (and a reset the password), then the first writer updates only the fields, or only the
/// address. What the second writer set survives.
pub async fn stale_writes<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let user = create(store).await;
    let stale = store.get(&user.id).await.expect("get").expect("exists");
    let admin = UserChanges {
        is_active: Some(false),
        is_superuser: Some(true),
        is_verified: Some(true),
        ..UserChanges::default()
    };
    store
        .update(&user.id, admin)
        .await
        .expect("update")
        .expect("exists");
    let reset = PasswordHash("$argon2id$v=19$m=8,t=1,p=1$cmVzZXQ$cmVzZXRyZXNldHJlc2V0".into());
    assert!(
        store
            .replace_password(&user.id, &stale.hashed_password, &reset)
            .await
            .expect("cas")
    );
    let only_fields = UserChanges {
        fields: Some(stale.fields.clone()),
        ..UserChanges::default()
    };
    let after = store
        .update(&user.id, only_fields)
        .await
        .expect("update")
        .expect("exists");
    let kept = |u: &UserOf<S>| {
        (
            u.is_active,
            u.is_superuser,
            u.is_verified,
            u.hashed_password.clone(),
        )
    };
    assert_eq!(
        kept(&after),
        (false, true, true, reset.clone()),
        "an update of the fields keeps the flags and the hash another writer set"
    );
    let new_email = unique_email();
    let only_email = UserChanges {
        email: Some(new_email.clone()),
        ..UserChanges::default()
    };
    let after = store
        .update(&user.id, only_email)
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(after.email, new_email);
    assert_eq!(
        kept(&after),
        (false, true, true, reset.clone()),
        "an update of the address keeps the flags and the hash another writer set"
    );
    assert_eq!(
        store.get(&user.id).await.expect("get").as_ref(),
        Some(&after),
        "what update returns is what is stored"
    );
    assert!(store.delete(&user.id).await.expect("delete"));
}

/// `email_epoch`: 0 for a new user, +1 for every change of the address (also back to an
/// earlier one, and a change of case only), unchanged by other updates and by naming the
/// stored address again.
pub async fn email_epochs<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let user = create(store).await;
    assert_eq!(user.email_epoch, 0, "a new user starts at epoch 0");
    let set_email = |email: &str| UserChanges {
        email: Some(email.to_owned()),
        ..UserChanges::default()
    };
    let epoch = |u: Option<UserOf<S>>| u.expect("exists").email_epoch;
    let a = user.email.clone();
    let b = unique_email();
    assert_eq!(
        epoch(store.update(&user.id, set_email(&b)).await.expect("A->B")),
        1
    );
    assert_eq!(
        epoch(store.update(&user.id, set_email(&a)).await.expect("B->A")),
        2,
        "A -> B -> A is two changes"
    );
    assert_eq!(
        epoch(store.get(&user.id).await.expect("get")),
        2,
        "the epoch is stored"
    );
    assert_eq!(
        epoch(store.update(&user.id, set_email(&a)).await.expect("A->A")),
        2,
        "the stored address again is no change"
    );
    let flags = UserChanges {
        is_verified: Some(true),
        ..UserChanges::default()
    };
    assert_eq!(
        epoch(store.update(&user.id, flags).await.expect("flags")),
        2,
        "other columns leave the epoch alone"
    );
    let lower = a.to_lowercase();
    assert_ne!(lower, a, "the suite's addresses have upper-case letters");
    assert_eq!(
        epoch(
            store
                .update(&user.id, set_email(&lower))
                .await
                .expect("case")
        ),
        3,
        "a change of case is a change of the address"
    );
    assert!(store.delete(&user.id).await.expect("delete"));
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

/// The longest provider token the stores must keep: the manager stores tokens encrypted, as
/// base64 text longer than the provider's own.
const TOKEN_CAPACITY: usize = 4096;

fn account(name: &str, account_id: &str) -> NewOAuthAccount {
    NewOAuthAccount {
        oauth_name: name.to_owned(),
        access_token: Secret::new(format!("at-{}", "x".repeat(TOKEN_CAPACITY - 3))),
        expires_at: Some(now_unix() + 3600),
        refresh_token: Some(Secret::new(format!(
            "rt-{}",
            "y".repeat(TOKEN_CAPACITY - 3)
        ))),
        account_id: account_id.to_owned(),
        account_email: "someone@example.com".to_owned(),
    }
}

/// OAuth accounts: many per user, lookup by `(oauth_name, account_id)`, update, unlink, and
/// removal with the user. Tokens of 4 KiB fit. Then [`oauth_links`].
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
        (
            google.access_token.expose().len(),
            google.refresh_token.as_ref().map(|t| t.expose().len())
        ),
        (TOKEN_CAPACITY, Some(TOKEN_CAPACITY)),
        "provider tokens of 4 KiB are kept whole"
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
    assert_eq!(
        store
            .unlink_oauth_account(&stranger.id, &github.id)
            .await
            .expect("unlink"),
        Unlink::NotFound,
        "only the owner unlinks"
    );
    assert_eq!(
        store
            .unlink_oauth_account(&user.id, &github.id)
            .await
            .expect("unlink"),
        Unlink::Removed
    );
    assert_eq!(
        store
            .unlink_oauth_account(&user.id, &github.id)
            .await
            .expect("unlink"),
        Unlink::NotFound,
        "unlinking twice reports the absence"
    );
    assert_eq!(
        store.list_oauth_accounts(&user.id).await.expect("list"),
        vec![updated.clone()]
    );
    assert_eq!(
        store
            .unlink_oauth_account(&user.id, &updated.id)
            .await
            .expect("unlink"),
        Unlink::Removed,
        "a user with a usable password may unlink their last account"
    );
    let again = store
        .add_oauth_account(&user.id, account("google", &account_id))
        .await
        .expect("link again");

    assert!(store.delete(&user.id).await.expect("delete"));
    assert!(
        store
            .get_by_oauth_account("google", &account_id)
            .await
            .expect("lookup")
            .is_none(),
        "accounts go with the user"
    );
    assert_eq!(
        store
            .unlink_oauth_account(&user.id, &again.id)
            .await
            .expect("unlink"),
        Unlink::NotFound,
        "a deleted user has no links"
    );
    assert!(store.delete(&stranger.id).await.expect("delete"));

    oauth_links(store).await;
}

/// A user without a usable password (an OAuth sign-up).
fn password_less<S: UserStore>() -> NewUser<S::Id, S::Fields> {
    NewUser {
        hashed_password: PasswordHash::unusable(),
        ..new_user::<S>(&unique_email())
    }
}

/// The provider-account constraint on `add_oauth_account`, `create_with_oauth_account` as one
/// transaction (all or nothing), and the last-sign-in-method guard of `unlink_oauth_account`.
pub async fn oauth_links<S: OAuthAccountStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let owner = create(store).await;
    let account_id = random_token(12);
    store
        .add_oauth_account(&owner.id, account("google", &account_id))
        .await
        .expect("add");
    let twice = store
        .add_oauth_account(&owner.id, account("google", &account_id))
        .await;
    assert!(
        matches!(twice, Err(StoreError::DuplicateOAuthAccount)),
        "a provider account links once: {twice:?}"
    );
    let other = create(store).await;
    let taken = store
        .add_oauth_account(&other.id, account("google", &account_id))
        .await;
    assert!(
        matches!(taken, Err(StoreError::DuplicateOAuthAccount)),
        "a provider account links to one user: {taken:?}"
    );
    assert!(
        store
            .list_oauth_accounts(&other.id)
            .await
            .expect("list")
            .is_empty()
    );

    // Both.
    let new = password_less::<S>();
    let email = new.email.clone();
    let fresh_id = random_token(12);
    let created = store
        .create_with_oauth_account(new, account("github", &fresh_id))
        .await
        .expect("create with account");
    assert_eq!(
        (created.email.as_str(), created.email_epoch),
        (email.as_str(), 0)
    );
    assert_eq!(
        store
            .get_by_oauth_account("github", &fresh_id)
            .await
            .expect("lookup")
            .as_ref(),
        Some(&created),
        "the user and the link are made together"
    );
    // Neither: the provider account is taken, so no user is left behind.
    let orphan = password_less::<S>();
    let orphan_email = orphan.email.clone();
    let refused = store
        .create_with_oauth_account(orphan, account("google", &account_id))
        .await;
    assert!(
        matches!(refused, Err(StoreError::DuplicateOAuthAccount)),
        "{refused:?}"
    );
    assert!(
        store
            .get_by_email(&orphan_email)
            .await
            .expect("get")
            .is_none(),
        "a refused link leaves no user behind"
    );
    // Neither: the address is taken, so no link is left behind.
    let unlinked_id = random_token(12);
    let refused = store
        .create_with_oauth_account(
            new_user::<S>(&owner.email.to_lowercase()),
            account("gitlab", &unlinked_id),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::DuplicateEmail)),
        "{refused:?}"
    );
    assert!(
        store
            .get_by_oauth_account("gitlab", &unlinked_id)
            .await
            .expect("lookup")
            .is_none(),
        "a refused user leaves no link behind"
    );

    // The guard: the last link of a password-less user stays.
    let links = store.list_oauth_accounts(&created.id).await.expect("list");
    assert_eq!(links.len(), 1);
    assert_eq!(
        store
            .unlink_oauth_account(&owner.id, &links[0].id)
            .await
            .expect("unlink"),
        Unlink::NotFound,
        "someone else's account is not found"
    );
    assert_eq!(
        store
            .unlink_oauth_account(&created.id, &links[0].id)
            .await
            .expect("unlink"),
        Unlink::LastSignInMethod
    );
    assert_eq!(
        store.list_oauth_accounts(&created.id).await.expect("list"),
        links
    );
    for id in [&owner.id, &other.id, &created.id] {
        assert!(store.delete(id).await.expect("delete"));
    }
}

/// Concurrent unlinks of both accounts of a password-less user, `rounds` times: each time
/// exactly one is removed and the other refused as the last sign-in method. Give the store a
/// pool of several connections, so that the two really run at once.
pub async fn concurrent_unlinks<S: OAuthAccountStore>(store: &S, rounds: usize)
where
    S::Fields: PartialEq + Debug,
{
    for _ in 0..rounds {
        let user = store
            .create_with_oauth_account(password_less::<S>(), account("google", &random_token(12)))
            .await
            .expect("create");
        store
            .add_oauth_account(&user.id, account("github", &random_token(12)))
            .await
            .expect("add");
        let links = store.list_oauth_accounts(&user.id).await.expect("list");
        assert_eq!(links.len(), 2);
        let unlink = |link: usize| {
            let store = store.clone();
            let user_id = user.id.clone();
            let account_id = links[link].id.clone();
            tokio::spawn(async move { store.unlink_oauth_account(&user_id, &account_id).await })
        };
        let (first, second) = tokio::join!(unlink(0), unlink(1));
        let mut outcomes = [
            first.expect("task").expect("unlink"),
            second.expect("task").expect("unlink"),
        ];
        outcomes.sort_by_key(|o| *o == Unlink::LastSignInMethod);
        assert_eq!(
            outcomes,
            [Unlink::Removed, Unlink::LastSignInMethod],
            "of two concurrent unlinks, one removes and one is refused"
        );
        assert_eq!(
            store
                .list_oauth_accounts(&user.id)
                .await
                .expect("list")
                .len(),
            1,
            "one way to sign in is left"
        );
        assert!(store.delete(&user.id).await.expect("delete"));
    }
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

/// A session of `user_id` that expires `ttl` seconds from now, with a current refresh hash.
pub fn new_session<Id: Clone>(user_id: &Id, ttl: i64) -> crate::Session<Id> {
    let now = now_unix();
    crate::Session {
        id: random_token(16),
        user_id: user_id.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + ttl,
        ip: Some("2001:db8::1".into()),
        user_agent: Some("Conformance/1.0 (é)".into()),
        method: "oauth:github".into(),
        backend: "jwt".into(),
        refresh: crate::RefreshState {
            current: Some(crate::hash_token(&random_token(32))),
            previous: None,
            rotated_at: None,
        },
    }
}

/// Sessions: created and read back whole, the join with the user, lookup by current and
/// previous refresh hash, compare-and-swap of the refresh state, `last_seen_at` written at most
/// once per interval, the list (live ones, newest first), scoped deletes that take the
/// session's access tokens along, pruning, and removal with the user. Then
/// [`concurrent_refresh_swaps`].
pub async fn session_store<S, T>(users: &S, tokens: &T)
where
    S: UserStore,
    S::Fields: PartialEq + Debug,
    T: AccessTokenStore<Id = S::Id>,
{
    let sessions = users
        .session_store()
        .expect("the store keeps sessions (UserStore::session_store)");
    let user = create(users).await;
    let other = create(users).await;
    let now = now_unix();
    let mut first = new_session(&user.id, 3600);
    first.created_at = now - 10;
    first.last_seen_at = now - 10;
    let second = new_session(&user.id, 3600);
    let mut expired = new_session(&user.id, 3600);
    expired.expires_at = now - 1;
    let theirs = new_session(&other.id, 3600);
    for s in [&first, &second, &expired, &theirs] {
        sessions.create_session(s).await.expect("create session");
    }
    assert_eq!(
        sessions.get_session(&first.id, now).await.expect("get"),
        Some(first.clone()),
        "a session reads back whole"
    );
    assert_eq!(
        sessions.get_session(&expired.id, now).await.expect("get"),
        None,
        "an expired session is not live"
    );
    let (owner, found) = sessions
        .user_of_session(&second.id, now)
        .await
        .expect("join")
        .expect("a live session has its user");
    assert_eq!((owner.id, found), (user.id.clone(), second.clone()));
    assert!(
        sessions
            .user_of_session(&expired.id, now)
            .await
            .expect("join")
            .is_none()
    );
    assert!(
        sessions
            .user_of_session("no-such-session", now)
            .await
            .expect("join")
            .is_none()
    );

    // Refresh state: found by its current hash, swapped only from the expected hash, then
    // found by the previous hash too.
    let current = first.refresh.current.clone().expect("hash");
    assert_eq!(
        sessions
            .find_session_by_refresh(&current, now)
            .await
            .expect("find")
            .map(|s| s.id),
        Some(first.id.clone())
    );
    let next = crate::RefreshState {
        current: Some(crate::hash_token(&random_token(32))),
        previous: Some(current.clone()),
        rotated_at: Some(now),
    };
    assert!(
        !sessions
            .swap_refresh(
                &first.id,
                "not-the-current-hash",
                &next,
                Some("never-written")
            )
            .await
            .expect("swap"),
        "a swap from another hash writes nothing"
    );
    let retired = crate::hash_token(&random_token(32));
    assert!(
        sessions
            .swap_refresh(&first.id, &current, &next, Some(&retired))
            .await
            .expect("swap")
    );
    assert_eq!(
        sessions
            .find_session_by_refresh(&retired, now)
            .await
            .expect("find")
            .map(|s| s.id),
        Some(first.id.clone()),
        "a retired hash still names its session (reuse detection)"
    );
    assert!(
        sessions
            .find_session_by_refresh(&crate::hash_token("never-written"), now)
            .await
            .expect("find")
            .is_none()
            && sessions
                .find_session_by_refresh("never-written", now)
                .await
                .expect("find")
                .is_none(),
        "a failed swap retires nothing"
    );
    assert!(
        !sessions
            .swap_refresh(&first.id, &current, &next, None)
            .await
            .expect("swap"),
        "the same swap succeeds once"
    );
    let by_previous = sessions
        .find_session_by_refresh(&current, now)
        .await
        .expect("find")
        .expect("found by the previous hash");
    assert_eq!(by_previous.refresh, next);
    let expired_hash = expired.refresh.current.clone().expect("hash");
    assert!(
        sessions
            .find_session_by_refresh(&expired_hash, now)
            .await
            .expect("find")
            .is_none(),
        "an expired session's refresh token is dead"
    );

    // last_seen_at: written when stale, left alone otherwise.
    sessions
        .touch_session(&first.id, now + 30, now - 60)
        .await
        .expect("touch");
    let seen = |s: Option<crate::Session<S::Id>>| s.expect("session").last_seen_at;
    assert_eq!(
        seen(sessions.get_session(&first.id, now).await.expect("get")),
        now - 10,
        "fresh enough: no write"
    );
    sessions
        .touch_session(&first.id, now + 90, now + 30)
        .await
        .expect("touch");
    assert_eq!(
        seen(sessions.get_session(&first.id, now).await.expect("get")),
        now + 90
    );

    let listed: Vec<String> = sessions
        .list_sessions(&user.id, now)
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed,
        vec![second.id.clone(), first.id.clone()],
        "live sessions of the user only, newest first"
    );

    // Deletes are scoped to the user and take the session's access tokens along.
    let token = crate::hash_token(&random_token(32));
    tokens
        .create_session_token(&token, &user.id, &second.id, now)
        .await
        .expect("token");
    assert_eq!(
        tokens.find_session_token(&token, None).await.expect("find"),
        Some((user.id.clone(), Some(second.id.clone())))
    );
    assert_eq!(
        sessions
            .delete_sessions(&other.id, Some(&second.id), None)
            .await
            .expect("delete"),
        Vec::<String>::new(),
        "another user's session is not theirs to delete"
    );
    let sessionless = crate::hash_token(&random_token(32));
    tokens
        .create_token(&sessionless, &user.id, now)
        .await
        .expect("token");
    sessions
        .delete_sessions(&user.id, Some("no-such-session"), None)
        .await
        .expect("delete");
    assert_eq!(
        tokens.find_token(&sessionless, None).await.expect("find"),
        Some(user.id.clone()),
        "revoking one session leaves tokens of no session alone"
    );
    let mut gone = sessions
        .delete_sessions(&user.id, None, Some(&first.id))
        .await
        .expect("delete");
    assert_eq!(
        tokens.find_token(&sessionless, None).await.expect("find"),
        None,
        "revoking the other sessions deletes the user's tokens of no session too"
    );
    gone.sort();
    let mut expected = vec![second.id.clone(), expired.id.clone()];
    expected.sort();
    assert_eq!(gone, expected, "every session but the one kept");
    assert_eq!(
        tokens.find_session_token(&token, None).await.expect("find"),
        None,
        "a revoked session's access tokens are gone"
    );
    assert_eq!(
        sessions
            .delete_sessions(&user.id, Some(&first.id), None)
            .await
            .expect("delete"),
        vec![first.id.clone()]
    );

    // Pruning: expired sessions, and tokens past the lifetime.
    let mut old = new_session(&other.id, 3600);
    old.expires_at = now - 5;
    sessions.create_session(&old).await.expect("create");
    let stale = crate::hash_token(&random_token(32));
    tokens
        .create_token(&stale, &other.id, now - 7200)
        .await
        .expect("token");
    let orphan = crate::hash_token(&random_token(32));
    tokens
        .create_session_token(&orphan, &other.id, "a-session-that-is-gone", now)
        .await
        .expect("token");
    let pruned = sessions.prune(now, Some(now - 3600)).await.expect("prune");
    assert!(
        pruned.sessions >= 1 && pruned.access_tokens >= 2,
        "{pruned:?}"
    );
    assert_eq!(
        tokens.find_token(&orphan, None).await.expect("find"),
        None,
        "a token whose session is gone is pruned"
    );
    assert!(
        sessions
            .get_session(&old.id, now - 10)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        sessions
            .get_session(&theirs.id, now)
            .await
            .expect("get")
            .is_some(),
        "live sessions stay"
    );
    assert_eq!(tokens.find_token(&stale, None).await.expect("find"), None);

    // A refresh deletes the tokens it superseded: those created before a time.
    let (older, newer) = (
        crate::hash_token(&random_token(32)),
        crate::hash_token(&random_token(32)),
    );
    for (hash, at) in [(&older, now - 100), (&newer, now)] {
        tokens
            .create_session_token(hash, &other.id, &theirs.id, at)
            .await
            .expect("token");
    }
    assert_eq!(
        sessions
            .delete_session_tokens_before(&theirs.id, now - 50)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(tokens.find_token(&older, None).await.expect("find"), None);
    assert!(
        tokens
            .find_token(&newer, None)
            .await
            .expect("find")
            .is_some()
    );

    assert!(users.delete(&other.id).await.expect("delete"));
    assert!(
        sessions
            .get_session(&theirs.id, now)
            .await
            .expect("get")
            .is_none(),
        "sessions go with their user"
    );
    assert!(users.delete(&user.id).await.expect("delete"));
    concurrent_refresh_swaps(users, 20).await;
}

/// `attempts` concurrent swaps from one refresh hash: exactly one wins.
pub async fn concurrent_refresh_swaps<S>(users: &S, attempts: usize)
where
    S: UserStore,
    S::Fields: PartialEq + Debug,
{
    let sessions = users.session_store().expect("sessions");
    let user = create(users).await;
    let session = new_session(&user.id, 3600);
    sessions.create_session(&session).await.expect("create");
    let current = session.refresh.current.clone().expect("hash");
    let tasks: Vec<_> = (0..attempts)
        .map(|_| {
            let sessions = sessions.clone();
            let (id, current) = (session.id.clone(), current.clone());
            tokio::spawn(async move {
                let next = crate::RefreshState {
                    current: Some(crate::hash_token(&random_token(32))),
                    previous: Some(current.clone()),
                    rotated_at: Some(now_unix()),
                };
                sessions.swap_refresh(&id, &current, &next, None).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task").expect("swap") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one of {attempts} concurrent swaps wins");
    assert!(users.delete(&user.id).await.expect("delete"));
}

/// Every page of `query`, followed through its cursors: the e-mails in order.
async fn walk<Id: UserId, F: crate::UserFields>(
    directory: &dyn crate::directory::UserDirectory<Id, F>,
    mut query: crate::directory::UserQuery,
) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let page = directory.list_users(&query).await.expect("list");
        assert!(page.items.len() <= query.page_size() as usize);
        seen.extend(page.items.iter().map(|(u, _)| u.email.clone()));
        match page.next_cursor {
            Some(cursor) => query.after = Some(cursor),
            None => return seen,
        }
    }
    panic!("the pages never ended");
}

/// How many users the first page of `query` holds.
async fn count<Id: UserId, F: crate::UserFields>(
    directory: &dyn crate::directory::UserDirectory<Id, F>,
    query: crate::directory::UserQuery,
) -> usize {
    directory
        .list_users(&query)
        .await
        .expect("list")
        .items
        .len()
}

/// [`crate::UserDirectory`]: the times a store keeps (created, updated on a write, the last
/// sign-in), and the listing: each filter, both orders both ways, and keyset pages that
/// together hold every matching user exactly once, in order, with no cursor after the last.
pub async fn user_directory<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    use crate::directory::{UserCursor, UserQuery, UserSort};
    let directory = store
        .directory()
        .expect("the store keeps a users directory");
    let tag = random_token(9).to_lowercase().replace(['-', '_'], "x");
    let before = now_unix();
    let mut made = Vec::new();
    for n in 0..7 {
        let mut new = new_user::<S>(&format!("Dir.{tag}.{n}@Example.com"));
        new.is_verified = n % 2 == 0;
        made.push(store.create(new).await.expect("create"));
    }
    let times = directory
        .user_times(&made[0].id)
        .await
        .expect("times")
        .expect("a user has times");
    assert!(
        times.created_at >= before && times.created_at <= now_unix(),
        "created_at is the insert's time"
    );
    assert_eq!(times.last_login_at, None, "no sign-in yet");
    directory
        .record_login(&made[0].id, times.created_at + 5)
        .await
        .expect("record a sign-in");
    let changes = UserChanges {
        is_active: Some(false),
        ..UserChanges::default()
    };
    store.update(&made[1].id, changes).await.expect("update");
    let after = directory
        .user_times(&made[0].id)
        .await
        .expect("times read")
        .expect("times of a user");
    assert_eq!(after.last_login_at, Some(times.created_at + 5));
    assert_eq!(after.updated_at, times.updated_at, "a sign-in is no update");
    let updated = directory
        .user_times(&made[1].id)
        .await
        .expect("times read")
        .expect("times of a user");
    assert!(updated.updated_at >= updated.created_at);

    let all = |sort: UserSort, limit: u32| UserQuery {
        q: Some(format!("DIR.{}", tag.to_uppercase())),
        sort,
        limit,
        ..UserQuery::default()
    };
    let mut emails: Vec<String> = made.iter().map(|u| u.email.clone()).collect();
    emails.sort_by_key(|e| crate::email_key(e));
    assert_eq!(
        walk(&*directory, all(UserSort::Email, 3)).await,
        emails,
        "pages of 3 by e-mail hold the 7 users once each, in order"
    );
    let mut backwards = emails.clone();
    backwards.reverse();
    assert_eq!(
        walk(&*directory, all(UserSort::EmailDesc, 2)).await,
        backwards
    );
    let by_time = walk(&*directory, all(UserSort::CreatedAt, 3)).await;
    let mut sorted = by_time.clone();
    sorted.sort();
    assert_eq!(sorted, emails, "pages in creation order hold everyone once");
    let mut newest_first = walk(&*directory, all(UserSort::CreatedAtDesc, 4)).await;
    newest_first.reverse();
    assert_eq!(
        newest_first, by_time,
        "backwards is the same order reversed"
    );
    let one_page = directory
        .list_users(&all(UserSort::Email, 100))
        .await
        .expect("listing");
    assert_eq!(one_page.items.len(), 7);
    assert!(one_page.next_cursor.is_none(), "no cursor after the last");

    let verified = UserQuery {
        is_verified: Some(true),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(
        count(&*directory, verified).await,
        4,
        "n = 0, 2, 4, 6 are verified"
    );
    let inactive = UserQuery {
        is_active: Some(false),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(count(&*directory, inactive).await, 1);
    let superusers = UserQuery {
        is_superuser: Some(true),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(count(&*directory, superusers).await, 0);
    let future = UserQuery {
        created_after: Some(now_unix() + 60),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(count(&*directory, future).await, 0);
    let past = UserQuery {
        created_before: Some(now_unix() + 60),
        created_after: Some(before - 60),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(count(&*directory, past).await, 7);
    let wildcard = UserQuery {
        q: Some(format!("dir.{tag}._@")),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(
        count(&*directory, wildcard).await,
        0,
        "`_` in q is a character, not a wildcard"
    );
    let one = UserQuery {
        q: Some(format!("dir.{tag}.3@")),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(count(&*directory, one).await, 1);
    let beyond = UserQuery {
        after: Some(UserCursor::Email(crate::email_key(&emails[6]))),
        ..all(UserSort::Email, 100)
    };
    assert_eq!(
        count(&*directory, beyond).await,
        0,
        "nothing after the last address"
    );
    for user in &made {
        assert!(store.delete(&user.id).await.expect("delete"));
    }
    assert_eq!(
        directory.user_times(&made[0].id).await.expect("times"),
        None,
        "a deleted user has no times"
    );
}

/// [`crate::AuditStore`]: records come back as written, newest first, filtered by user and
/// type, in keyset pages; pruning removes only what is older than its bound.
pub async fn audit_store<S: UserStore>(store: &S) {
    use crate::audit::{AuditEvent, AuditQuery, AuditRecord, LoginFailure};
    let log = store.audit_store().expect("the store keeps an audit log");
    let user = format!("audit-{}", random_token(6));
    let base = now_unix() - 1000;
    let mut written = Vec::new();
    for n in 0..5 {
        let event = if n == 2 {
            AuditEvent::LoginFailed {
                method: "password".into(),
                reason: LoginFailure::BadPassword,
            }
        } else {
            AuditEvent::LoginSucceeded {
                method: "oauth:github".into(),
            }
        };
        let mut record = AuditRecord::new(event);
        record.at = base + n;
        record.user_id = Some(user.clone());
        record.actor_id = (n == 4).then(|| "admin".to_owned());
        record.ip = Some("203.0.113.9".into());
        record.user_agent = Some("conformance/1".into());
        log.append(&record).await.expect("append");
        written.push(record);
    }
    let mut query = AuditQuery {
        user_id: Some(user.clone()),
        limit: 2,
        ..AuditQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = log.list_events(&query).await.expect("list");
        seen.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    written.reverse();
    assert_eq!(seen, written, "every record once, as written, newest first");
    let failed = AuditQuery {
        user_id: Some(user.clone()),
        kind: Some("login.failed".into()),
        ..AuditQuery::default()
    };
    let page = log.list_events(&failed).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].event.reason(), Some("bad_password"));
    let since = AuditQuery {
        user_id: Some(user.clone()),
        since: Some(base + 3),
        ..AuditQuery::default()
    };
    assert_eq!(
        log.list_events(&since).await.expect("events").items.len(),
        2
    );
    assert_eq!(
        log.prune_events(base - 10).await.expect("prune"),
        0,
        "nothing of this user is older than the bound"
    );
    assert!(log.prune_events(base + 2).await.expect("prune") >= 2);
    let left = AuditQuery {
        user_id: Some(user),
        ..AuditQuery::default()
    };
    assert_eq!(
        log.list_events(&left).await.expect("events").items.len(),
        3,
        "the records at or after the bound stay"
    );
}

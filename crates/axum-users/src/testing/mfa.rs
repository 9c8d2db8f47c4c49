//! The conformance suite of [`MfaStore`]: what every store of second factors must do.

use std::fmt::Debug;

use crate::mfa::MfaChallenge;
use crate::secret::random_token;
use crate::store::UserStore;
use crate::tokens::now_unix;

fn hashes(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| crate::hash_token(&random_token(16)))
        .collect()
}

/// TOTP enrolment and confirmation (a compare-and-swap on the sealed secret), the replay
/// guard of [`MfaStore::use_totp_step`], recovery codes spent once and replaced, challenges
/// (expiry, failures, single use), pruning, and removal with the user.
///
/// [`MfaStore`]: crate::mfa::MfaStore
/// [`MfaStore::use_totp_step`]: crate::mfa::MfaStore::use_totp_step
pub async fn mfa_store<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let mfa = store.mfa_store().expect("the store keeps second factors");
    let user = super::create(store).await;
    let id = &user.id;
    let now = now_unix();
    assert_eq!(mfa.get_totp(id).await.expect("get"), None);
    assert!(
        !mfa.use_totp_step(id, 1).await.expect("use"),
        "no factor, no step"
    );

    // Enrolment: unconfirmed, may restart with another secret, confirms only its own secret.
    assert!(mfa.begin_totp(id, "v1.first", now).await.expect("begin"));
    assert!(mfa.begin_totp(id, "v1.second", now).await.expect("restart"));
    let record = mfa.get_totp(id).await.expect("get").expect("record");
    assert_eq!(
        (
            record.sealed_secret.as_str(),
            record.confirmed,
            record.last_step
        ),
        ("v1.second", false, None)
    );
    assert!(
        !mfa.use_totp_step(id, 100).await.expect("use"),
        "an unconfirmed factor accepts no code"
    );
    let codes = hashes(10);
    assert!(
        !mfa.confirm_totp(id, "v1.first", 100, &codes)
            .await
            .expect("confirm"),
        "a replaced enrolment cannot be confirmed"
    );
    assert!(
        mfa.confirm_totp(id, "v1.second", 100, &codes)
            .await
            .expect("confirm")
    );
    assert!(
        !mfa.confirm_totp(id, "v1.second", 101, &codes)
            .await
            .expect("again"),
        "confirmed once"
    );
    let record = mfa.get_totp(id).await.expect("get").expect("record");
    assert_eq!((record.confirmed, record.last_step), (true, Some(100)));
    assert!(
        !mfa.begin_totp(id, "v1.third", now).await.expect("begin"),
        "a confirmed factor is not replaced by a new enrolment"
    );
    assert_eq!(
        mfa.get_totp(id)
            .await
            .expect("get")
            .expect("record")
            .sealed_secret,
        "v1.second"
    );

    // The replay guard: the confirmation's step and earlier ones are spent.
    assert!(!mfa.use_totp_step(id, 100).await.expect("use"));
    assert!(!mfa.use_totp_step(id, 99).await.expect("use"));
    assert!(mfa.use_totp_step(id, 101).await.expect("use"));
    assert!(
        !mfa.use_totp_step(id, 101).await.expect("use"),
        "a step is used once"
    );
    assert!(mfa.use_totp_step(id, 103).await.expect("use"));
    assert!(
        !mfa.use_totp_step(id, 102).await.expect("use"),
        "never backwards"
    );

    // Recovery codes: listed, each spent once, replaced as a whole.
    let mut stored = mfa.recovery_codes(id).await.expect("codes");
    stored.sort();
    let mut expected = codes.clone();
    expected.sort();
    assert_eq!(stored, expected);
    assert!(mfa.use_recovery_code(id, &codes[0]).await.expect("use"));
    assert!(
        !mfa.use_recovery_code(id, &codes[0]).await.expect("use"),
        "once"
    );
    assert_eq!(mfa.recovery_codes(id).await.expect("codes").len(), 9);
    let other = super::create(store).await;
    assert!(
        !mfa.use_recovery_code(&other.id, &codes[1])
            .await
            .expect("use"),
        "another user's code is not theirs"
    );
    let fresh = hashes(10);
    mfa.replace_recovery_codes(id, &fresh)
        .await
        .expect("replace");
    assert!(
        !mfa.use_recovery_code(id, &codes[1]).await.expect("use"),
        "old codes void"
    );
    assert!(mfa.use_recovery_code(id, &fresh[1]).await.expect("use"));

    // Challenges: alive until they expire, failures counted, taken once.
    let token = crate::hash_token(&random_token(32));
    let challenge = MfaChallenge::new(id.clone(), "jwt", "password", now + 300);
    mfa.create_mfa_challenge(&token, &challenge)
        .await
        .expect("create");
    assert_eq!(
        mfa.get_mfa_challenge(&token, now).await.expect("get"),
        Some(challenge.clone())
    );
    assert_eq!(
        mfa.get_mfa_challenge(&token, now + 300).await.expect("get"),
        None
    );
    assert_eq!(mfa.fail_mfa_challenge(&token).await.expect("fail"), 1);
    assert_eq!(mfa.fail_mfa_challenge(&token).await.expect("fail"), 2);
    assert_eq!(mfa.fail_mfa_challenge("no-such").await.expect("fail"), 0);
    assert_eq!(
        mfa.get_mfa_challenge(&token, now)
            .await
            .expect("get")
            .map(|c| c.failures),
        Some(2)
    );
    assert!(
        !mfa.take_mfa_challenge(&token, now, 2).await.expect("take"),
        "too many failures"
    );
    assert!(
        !mfa.take_mfa_challenge(&token, now + 300, 5)
            .await
            .expect("take"),
        "expired"
    );
    assert!(mfa.take_mfa_challenge(&token, now, 5).await.expect("take"));
    assert!(
        !mfa.take_mfa_challenge(&token, now, 5).await.expect("take"),
        "once"
    );
    assert_eq!(mfa.get_mfa_challenge(&token, now).await.expect("get"), None);

    let stale = crate::hash_token(&random_token(32));
    let old = MfaChallenge::new(id.clone(), "jwt", "password", now - 1);
    mfa.create_mfa_challenge(&stale, &old)
        .await
        .expect("create");
    assert!(mfa.prune_mfa_challenges(now).await.expect("prune") >= 1);
    assert!(
        !mfa.take_mfa_challenge(&stale, now - 10, 5)
            .await
            .expect("take"),
        "pruned"
    );

    // Removal: the factor and its codes go; the user's deletion takes everything.
    assert!(mfa.remove_totp(id).await.expect("remove"));
    assert!(!mfa.remove_totp(id).await.expect("remove"));
    assert_eq!(mfa.get_totp(id).await.expect("get"), None);
    assert!(mfa.recovery_codes(id).await.expect("codes").is_empty());
    assert!(mfa.begin_totp(id, "v1.again", now).await.expect("begin"));
    mfa.replace_recovery_codes(id, &hashes(2))
        .await
        .expect("replace");
    let pending = crate::hash_token(&random_token(32));
    mfa.create_mfa_challenge(&pending, &challenge)
        .await
        .expect("create");
    assert!(store.delete(id).await.expect("delete"));
    assert_eq!(mfa.get_totp(id).await.expect("get"), None);
    assert!(mfa.recovery_codes(id).await.expect("codes").is_empty());
    assert_eq!(
        mfa.get_mfa_challenge(&pending, now).await.expect("get"),
        None
    );
    assert!(store.delete(&other.id).await.expect("delete"));
}

/// Of `attempts` concurrent uses of one TOTP step, one recovery code, and one challenge, exactly
/// one of each wins.
pub async fn concurrent_mfa_uses<S: UserStore>(store: &S, attempts: usize)
where
    S::Fields: PartialEq + Debug,
{
    let mfa = store.mfa_store().expect("the store keeps second factors");
    let user = super::create(store).await;
    let now = now_unix();
    let codes = hashes(1);
    assert!(mfa.begin_totp(&user.id, "v1.s", now).await.expect("begin"));
    assert!(
        mfa.confirm_totp(&user.id, "v1.s", 1, &codes)
            .await
            .expect("confirm")
    );
    let token = crate::hash_token(&random_token(32));
    let challenge = MfaChallenge::new(user.id.clone(), "jwt", "password", now + 300);
    mfa.create_mfa_challenge(&token, &challenge)
        .await
        .expect("create");
    let tasks: Vec<_> = (0..attempts)
        .map(|_| {
            let (mfa, id, code, token) = (
                mfa.clone(),
                user.id.clone(),
                codes[0].clone(),
                token.clone(),
            );
            tokio::spawn(async move {
                let step = mfa.use_totp_step(&id, 2).await.expect("step");
                let code = mfa.use_recovery_code(&id, &code).await.expect("code");
                let taken = mfa.take_mfa_challenge(&token, now, 5).await.expect("take");
                (step, code, taken)
            })
        })
        .collect();
    let (mut steps, mut codes_used, mut taken) = (0, 0, 0);
    for task in tasks {
        let (s, c, t) = task.await.expect("task");
        steps += usize::from(s);
        codes_used += usize::from(c);
        taken += usize::from(t);
    }
    assert_eq!(
        (steps, codes_used, taken),
        (1, 1, 1),
        "one of {attempts} concurrent uses of a step, a code and a token wins"
    );
    assert!(store.delete(&user.id).await.expect("delete"));
}

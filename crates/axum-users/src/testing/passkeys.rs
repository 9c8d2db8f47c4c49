//! The conformance suite of [`PasskeyStore`], and [`SoftPasskey`], a software authenticator
//! that answers the routes' options as a browser with a platform authenticator would.
//!
//! [`PasskeyStore`]: crate::passkeys::PasskeyStore

use std::fmt::Debug;

use crate::passkeys::{PasskeyChallenge, PasskeyRecord, PasskeyRemoval};
use crate::secret::random_token;
use crate::store::UserStore;
use crate::tokens::now_unix;

fn record<Id: Clone>(user_id: &Id, created_at: i64) -> PasskeyRecord<Id> {
    PasskeyRecord::new(
        random_token(16),
        user_id.clone(),
        crate::hash_token(&random_token(16)),
        "00000000-0000-4000-8000-000000000000",
        "Laptop",
        "{\"cred\":{}}",
        0,
        created_at,
        None,
    )
}

/// Passkeys: a credential registered once (across users), listing oldest first, renaming and
/// removal of one's own only, the last one kept on request, the counter's compare-and-swap,
/// ceremonies spent once and not after their expiry, pruning, and removal with the user.
pub async fn passkey_store<S: UserStore>(store: &S)
where
    S::Fields: PartialEq + Debug,
{
    let passkeys = store.passkey_store().expect("the store keeps passkeys");
    let ada = super::create(store).await;
    let bob = super::create(store).await;
    let now = now_unix();
    assert!(
        passkeys
            .list_passkeys(&ada.id)
            .await
            .expect("list")
            .is_empty()
    );

    let first = record(&ada.id, now - 10);
    assert!(passkeys.create_passkey(&first).await.expect("create"));
    let mut stolen = record(&bob.id, now);
    stolen.credential_key = first.credential_key.clone();
    assert!(
        !passkeys.create_passkey(&stolen).await.expect("create"),
        "a credential is registered once, whoever asks"
    );
    let second = record(&ada.id, now);
    assert!(passkeys.create_passkey(&second).await.expect("create"));
    let listed = passkeys.list_passkeys(&ada.id).await.expect("list");
    assert_eq!(listed, vec![first.clone(), second.clone()], "oldest first");
    assert!(
        passkeys
            .list_passkeys(&bob.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        passkeys
            .passkey_by_credential(&first.credential_key)
            .await
            .expect("find"),
        Some(first.clone())
    );
    assert_eq!(
        passkeys.passkey_by_credential("nope").await.expect("find"),
        None
    );

    assert!(
        !passkeys
            .rename_passkey(&bob.id, &first.id, "Mine now")
            .await
            .expect("rename"),
        "only the owner renames"
    );
    assert!(
        passkeys
            .rename_passkey(&ada.id, &first.id, "Phone")
            .await
            .expect("rename")
    );
    let found = passkeys
        .passkey_by_credential(&first.credential_key)
        .await
        .expect("find")
        .expect("there");
    assert_eq!(found.name, "Phone");

    // The counter: advanced only from the value seen.
    assert!(
        passkeys
            .use_passkey(&first.id, "{\"v\":2}", 0, 5, now)
            .await
            .expect("use")
    );
    assert!(
        !passkeys
            .use_passkey(&first.id, "{\"v\":3}", 0, 6, now)
            .await
            .expect("use"),
        "a stale counter loses"
    );
    let used = passkeys
        .passkey_by_credential(&first.credential_key)
        .await
        .expect("find")
        .expect("there");
    assert_eq!(
        (used.sign_count, used.last_used_at, used.passkey.as_str()),
        (5, Some(now), "{\"v\":2}")
    );

    // Removal: one's own only; the last one stays when asked.
    assert_eq!(
        passkeys
            .delete_passkey(&bob.id, &first.id, false)
            .await
            .expect("delete"),
        PasskeyRemoval::NotFound
    );
    assert_eq!(
        passkeys
            .delete_passkey(&ada.id, &first.id, true)
            .await
            .expect("delete"),
        PasskeyRemoval::Removed,
        "another one is left"
    );
    assert_eq!(
        passkeys
            .delete_passkey(&ada.id, &second.id, true)
            .await
            .expect("delete"),
        PasskeyRemoval::LastOne
    );
    assert_eq!(
        passkeys
            .delete_passkey(&ada.id, "nope", true)
            .await
            .expect("delete"),
        PasskeyRemoval::NotFound
    );
    assert_eq!(
        passkeys.list_passkeys(&ada.id).await.expect("list").len(),
        1
    );

    // Ceremonies: spent once, dead after expiry, pruned.
    let handle = crate::hash_token(&random_token(16));
    let challenge = PasskeyChallenge::new("mfa", Some(ada.id.clone()), "jwt", "{}", now + 300);
    passkeys
        .create_passkey_challenge(&handle, &challenge)
        .await
        .expect("create");
    assert_eq!(
        passkeys
            .take_passkey_challenge(&handle, now)
            .await
            .expect("take"),
        Some(challenge)
    );
    assert_eq!(
        passkeys
            .take_passkey_challenge(&handle, now)
            .await
            .expect("take"),
        None,
        "spent once"
    );
    let anonymous = PasskeyChallenge::<S::Id>::new("sign_in", None, "jwt", "{}", now + 300);
    let expired = crate::hash_token(&random_token(16));
    passkeys
        .create_passkey_challenge(&expired, &anonymous)
        .await
        .expect("create");
    assert_eq!(
        passkeys
            .take_passkey_challenge(&expired, now + 300)
            .await
            .expect("take"),
        None,
        "dead at its expiry"
    );
    let old = crate::hash_token(&random_token(16));
    passkeys
        .create_passkey_challenge(&old, &anonymous)
        .await
        .expect("create");
    assert!(
        passkeys
            .prune_passkey_challenges(now + 301)
            .await
            .expect("prune")
            >= 1
    );
    assert_eq!(
        passkeys
            .take_passkey_challenge(&old, now)
            .await
            .expect("take"),
        None,
        "pruned"
    );

    // The user's passkeys go with the user.
    store.delete(&ada.id).await.expect("delete");
    assert!(
        passkeys
            .list_passkeys(&ada.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        passkeys
            .passkey_by_credential(&second.credential_key)
            .await
            .expect("find"),
        None
    );
}

/// Concurrent uses: of `attempts` finishes of one ceremony one gets it, of as many uses of one
/// counter value one advances it, and of removals of a user's last two passkeys (keeping one)
/// one passes.
pub async fn concurrent_passkey_uses<S: UserStore>(store: &S, attempts: usize)
where
    S::Fields: PartialEq + Debug,
{
    let passkeys = store.passkey_store().expect("the store keeps passkeys");
    let user = super::create(store).await;
    let now = now_unix();
    let (a, b) = (record(&user.id, now), record(&user.id, now + 1));
    assert!(passkeys.create_passkey(&a).await.expect("create"));
    assert!(passkeys.create_passkey(&b).await.expect("create"));
    let handle = crate::hash_token(&random_token(16));
    let challenge = PasskeyChallenge::new("register", Some(user.id.clone()), "", "{}", now + 300);
    passkeys
        .create_passkey_challenge(&handle, &challenge)
        .await
        .expect("create");
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let (passkeys, handle, a, b, user_id) = (
                passkeys.clone(),
                handle.clone(),
                a.id.clone(),
                b.id.clone(),
                user.id.clone(),
            );
            tokio::spawn(async move {
                let taken = passkeys
                    .take_passkey_challenge(&handle, now)
                    .await
                    .expect("take")
                    .is_some();
                let used = passkeys
                    .use_passkey(&a, "{}", 0, 1, now)
                    .await
                    .expect("use");
                let which = if i % 2 == 0 { &a } else { &b };
                let removed = passkeys
                    .delete_passkey(&user_id, which, true)
                    .await
                    .expect("delete")
                    == PasskeyRemoval::Removed;
                (taken, used, removed)
            })
        })
        .collect();
    let (mut taken, mut used, mut removed) = (0, 0, 0);
    for task in tasks {
        let (t, u, r) = task.await.expect("task");
        taken += usize::from(t);
        used += usize::from(u);
        removed += usize::from(r);
    }
    assert_eq!(taken, 1, "a ceremony is finished once");
    assert_eq!(used, 1, "a counter value is used once");
    assert_eq!(removed, 1, "the last passkey stays");
    assert_eq!(
        passkeys.list_passkeys(&user.id).await.expect("list").len(),
        1
    );
}

#[cfg(feature = "testing")]
pub use soft::SoftPasskey;

#[cfg(feature = "testing")]
mod soft {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    struct Credential {
        id: Vec<u8>,
        key: SigningKey,
        user_handle: Vec<u8>,
    }

    /// A software passkey authenticator (P-256, `none` attestation, resident credentials), as a
    /// browser would drive it: [`SoftPasskey::register`] answers the options of
    /// `register/start`, [`SoftPasskey::assert`] those of a sign-in start, with the JSON a
    /// browser's `PublicKeyCredential.toJSON()` gives. Its knobs make the bad cases: another
    /// origin, no user verification, a counter set back.
    pub struct SoftPasskey {
        /// The origin the "browser" puts in the client data.
        pub origin: String,
        /// Whether the user is verified (the UV flag).
        pub user_verified: bool,
        /// The signature counter: each assertion adds one first.
        pub counter: u32,
        credentials: Vec<Credential>,
    }

    fn b64(bytes: &[u8]) -> String {
        B64.encode(bytes)
    }

    fn unb64(value: &Value) -> Vec<u8> {
        value
            .as_str()
            .and_then(|s| B64.decode(s.trim_end_matches('=')).ok())
            .expect("base64url in the options")
    }

    /// A CBOR head: major type and length.
    fn head(major: u8, len: usize, out: &mut Vec<u8>) {
        let major = major << 5;
        if len < 24 {
            out.push(major | len as u8);
        } else if len < 256 {
            out.extend([major | 24, len as u8]);
        } else {
            out.push(major | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }

    fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
        head(2, bytes.len(), out);
        out.extend(bytes);
    }

    fn cbor_text(text: &str, out: &mut Vec<u8>) {
        head(3, text.len(), out);
        out.extend(text.as_bytes());
    }

    /// A small integer (-24..24).
    fn cbor_int(n: i8, out: &mut Vec<u8>) {
        if n >= 0 {
            head(0, n as usize, out);
        } else {
            head(1, (-1 - i16::from(n)) as usize, out);
        }
    }

    fn random_bytes(n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        crate::secret::fill_random(&mut bytes);
        bytes
    }

    fn new_key() -> SigningKey {
        loop {
            if let Ok(key) = SigningKey::from_slice(&random_bytes(32)) {
                return key;
            }
        }
    }

    impl SoftPasskey {
        /// An authenticator for pages served at `origin` (`http://localhost:PORT`).
        pub fn new(origin: impl Into<String>) -> Self {
            Self {
                origin: origin.into(),
                user_verified: true,
                counter: 0,
                credentials: Vec::new(),
            }
        }

        fn client_data(&self, kind: &str, challenge: &Value) -> Vec<u8> {
            json!({
                "type": kind,
                "challenge": challenge,
                "origin": self.origin,
                "crossOrigin": false,
            })
            .to_string()
            .into_bytes()
        }

        fn flags(&self) -> u8 {
            // UP, and UV when verified.
            if self.user_verified { 0x05 } else { 0x01 }
        }

        /// Answers `{"publicKey": {...}}` of a registration start: a new resident credential.
        pub fn register(&mut self, options: &Value) -> Value {
            let public_key = &options["publicKey"];
            let rp_id = public_key["rp"]["id"].as_str().expect("rp.id");
            let user_handle = unb64(&public_key["user"]["id"]);
            let client_data = self.client_data("webauthn.create", &public_key["challenge"]);
            let key = new_key();
            let id = random_bytes(32);
            let point = key.verifying_key().to_sec1_point(false);
            let (x, y) = (
                point.x().expect("x").to_vec(),
                point.y().expect("y").to_vec(),
            );
            let mut cose = Vec::new();
            head(5, 5, &mut cose);
            cbor_int(1, &mut cose);
            cbor_int(2, &mut cose); // kty: EC2
            cbor_int(3, &mut cose);
            cbor_int(-7, &mut cose); // alg: ES256
            cbor_int(-1, &mut cose);
            cbor_int(1, &mut cose); // crv: P-256
            cbor_int(-2, &mut cose);
            cbor_bytes(&x, &mut cose);
            cbor_int(-3, &mut cose);
            cbor_bytes(&y, &mut cose);
            let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
            auth_data.push(self.flags() | 0x40); // AT: attested credential data follows
            auth_data.extend(self.counter.to_be_bytes());
            auth_data.extend([0u8; 16]); // AAGUID
            auth_data.extend((id.len() as u16).to_be_bytes());
            auth_data.extend(&id);
            auth_data.extend(cose);
            let mut attestation = Vec::new();
            head(5, 3, &mut attestation);
            cbor_text("fmt", &mut attestation);
            cbor_text("none", &mut attestation);
            cbor_text("attStmt", &mut attestation);
            head(5, 0, &mut attestation);
            cbor_text("authData", &mut attestation);
            cbor_bytes(&auth_data, &mut attestation);
            self.credentials.push(Credential {
                id: id.clone(),
                key,
                user_handle,
            });
            json!({
                "id": b64(&id),
                "rawId": b64(&id),
                "type": "public-key",
                "response": {
                    "attestationObject": b64(&attestation),
                    "clientDataJSON": b64(&client_data),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
            })
        }

        /// Answers `{"publicKey": {...}}` of a sign-in start: with the credential the options
        /// allow, or (a discoverable sign-in, no list) the newest one, naming its user.
        pub fn assert(&mut self, options: &Value) -> Value {
            let public_key = &options["publicKey"];
            let rp_id = public_key["rpId"].as_str().expect("rpId");
            let allowed: Vec<Vec<u8>> = public_key["allowCredentials"]
                .as_array()
                .map(|list| list.iter().map(|c| unb64(&c["id"])).collect())
                .unwrap_or_default();
            let credential = self
                .credentials
                .iter()
                .rev()
                .find(|c| allowed.is_empty() || allowed.contains(&c.id))
                .expect("a credential the options allow");
            self.counter += 1;
            let client_data = self.client_data("webauthn.get", &public_key["challenge"]);
            let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
            auth_data.push(self.flags());
            auth_data.extend(self.counter.to_be_bytes());
            let mut signed = auth_data.clone();
            signed.extend(Sha256::digest(&client_data));
            let signature: Signature = credential.key.sign(&signed);
            json!({
                "id": b64(&credential.id),
                "rawId": b64(&credential.id),
                "type": "public-key",
                "response": {
                    "authenticatorData": b64(&auth_data),
                    "clientDataJSON": b64(&client_data),
                    "signature": b64(signature.to_der().as_bytes()),
                    "userHandle": b64(&credential.user_handle),
                },
                "clientExtensionResults": {},
            })
        }
    }
}

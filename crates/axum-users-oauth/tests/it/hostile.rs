//! A hostile OpenID provider of our own on loopback: discovery, JWKS and a token endpoint that
//! hands out whatever id_token the test scripts (broken on purpose), signed with fixed ES256 and
//! RS256 test keys. Each test proves one id_token check (see docs/oauth.md, "The checks an
//! id_token must pass").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_users_oauth::{
    HttpConfig, IdTokenErrorReason, OAuthError, OAuthProvider, OpenIdConnect, OpenIdConnectConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const CLIENT_ID: &str = "hostile-client";
const CLIENT_SECRET: &str = "hostile-client-secret";
const NONCE: &str = "nonce-of-this-sign-in";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// Throwaway keys made once with `openssl genpkey` for these tests only.
const ES256_A: &str = include_str!("keys/es256-a.pem");
const ES256_B: &str = include_str!("keys/es256-b.pem");
const RSA_A: &str = include_str!("keys/rsa-a.pem");

/// A signing key of the test provider.
#[derive(Clone, Copy)]
enum Key {
    /// P-256, published as `ec-a`.
    EcA,
    /// P-256, published only after a rotation, as `ec-b`.
    EcB,
    /// RSA 2048, published as `rsa-a`.
    RsaA,
}

impl Key {
    fn encoding(self) -> EncodingKey {
        match self {
            Self::EcA => EncodingKey::from_ec_pem(ES256_A.as_bytes()).expect("test key"),
            Self::EcB => EncodingKey::from_ec_pem(ES256_B.as_bytes()).expect("test key"),
            Self::RsaA => EncodingKey::from_rsa_pem(RSA_A.as_bytes()).expect("test key"),
        }
    }

    fn kid(self) -> &'static str {
        match self {
            Self::EcA => "ec-a",
            Self::EcB => "ec-b",
            Self::RsaA => "rsa-a",
        }
    }

    fn jwk(self, alg: Algorithm) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding(), alg).expect("jwk");
        jwk.common.key_id = Some(self.kid().to_owned());
        serde_json::to_value(jwk).expect("jwk json")
    }
}

/// What the provider serves; the tests change it between calls.
struct Script {
    /// The `issuer` written in the discovery document.
    discovery_issuer: Option<String>,
    /// The JWKS `keys`.
    keys: Vec<Value>,
    /// The id_token the next token response carries.
    id_token: String,
    /// The token endpoint waits this long before answering.
    token_delay: Duration,
    /// The `sub` the userinfo endpoint answers.
    userinfo_sub: String,
}

#[derive(Clone)]
struct Hostile {
    issuer: String,
    script: Arc<Mutex<Script>>,
    jwks_fetches: Arc<AtomicUsize>,
}

fn now() -> i64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(seconds).expect("time")
}

impl Hostile {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let hostile = Self {
            issuer,
            script: Arc::new(Mutex::new(Script {
                discovery_issuer: None,
                keys: vec![
                    Key::EcA.jwk(Algorithm::ES256),
                    Key::RsaA.jwk(Algorithm::RS256),
                ],
                id_token: String::new(),
                token_delay: Duration::ZERO,
                userinfo_sub: "user-1".to_owned(),
            })),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route(
                "/moved/.well-known/openid-configuration",
                get(|| async { axum::response::Redirect::temporary("/jwks") }),
            )
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(hostile.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        hostile
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("script lock")
    }

    /// Claims that pass every check; tests break one at a time.
    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer, "aud": CLIENT_ID, "sub": "user-1",
            "exp": now() + 300, "iat": now(), "nonce": NONCE,
            "email": "user-1@example.com", "email_verified": true,
        })
    }

    fn sign(claims: &Value, alg: Algorithm, key: Key, kid: Option<&str>) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key.encoding()).expect("sign")
    }

    fn es256(claims: &Value) -> String {
        Self::sign(claims, Algorithm::ES256, Key::EcA, Some(Key::EcA.kid()))
    }

    async fn client(&self) -> OpenIdConnect {
        self.client_with(HttpConfig::default())
            .await
            .expect("discovery")
    }

    async fn client_with(&self, http: HttpConfig) -> Result<OpenIdConnect, OAuthError> {
        OpenIdConnectConfig::new(&self.issuer, CLIENT_ID, CLIENT_SECRET)
            .with_http(http)
            .trust_email_verified(true)
            .discover()
            .await
    }

    /// Exchanges a code (the provider answers `id_token`) and asks for the identity.
    async fn sign_in(
        &self,
        provider: &OpenIdConnect,
        id_token: String,
        nonce: Option<&str>,
    ) -> Result<axum_users_oauth::ProviderIdentity, OAuthError> {
        self.script().id_token = id_token;
        let token = provider.exchange_code("code", REDIRECT_URI, None).await?;
        provider.identity(&token, nonce).await
    }
}

async fn discovery(State(hostile): State<Hostile>) -> Json<Value> {
    let issuer = hostile
        .script()
        .discovery_issuer
        .clone()
        .unwrap_or_else(|| hostile.issuer.clone());
    let base = &hostile.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        // Hostile: advertises algorithms the client must never accept.
        "id_token_signing_alg_values_supported": ["none", "HS256", "RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    }))
}

async fn userinfo(State(hostile): State<Hostile>) -> Json<Value> {
    let sub = hostile.script().userinfo_sub.clone();
    Json(json!({ "sub": sub, "email": "from-userinfo@example.com", "email_verified": "true" }))
}

async fn jwks(State(hostile): State<Hostile>) -> Json<Value> {
    hostile.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = hostile.script().keys.clone();
    Json(json!({ "keys": keys }))
}

async fn token(State(hostile): State<Hostile>) -> Json<Value> {
    let (id_token, delay) = {
        let script = hostile.script();
        (script.id_token.clone(), script.token_delay)
    };
    tokio::time::sleep(delay).await;
    Json(json!({
        "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "id_token": id_token,
    }))
}

fn refused_for(
    result: &Result<axum_users_oauth::ProviderIdentity, OAuthError>,
) -> IdTokenErrorReason {
    match result {
        Err(OAuthError::IdTokenInvalid(reason)) => *reason,
        other => panic!("expected IdTokenInvalid, got {other:?}"),
    }
}

#[tokio::test]
async fn well_formed_es256_and_rs256_tokens_pass() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let identity = idp
        .sign_in(&provider, Hostile::es256(&idp.claims()), Some(NONCE))
        .await
        .expect("ES256 token");
    assert_eq!(identity.account_id, "user-1");
    assert_eq!(identity.email.as_deref(), Some("user-1@example.com"));
    assert!(identity.email_verified);
    let token = Hostile::sign(
        &idp.claims(),
        Algorithm::RS256,
        Key::RsaA,
        Some(Key::RsaA.kid()),
    );
    let identity = idp.sign_in(&provider, token, Some(NONCE)).await;
    assert_eq!(identity.expect("RS256 token").account_id, "user-1");
    // The key is published with `alg: RS256`: the same key under PS256 is refused.
    let token = Hostile::sign(
        &idp.claims(),
        Algorithm::PS256,
        Key::RsaA,
        Some(Key::RsaA.kid()),
    );
    let result = idp.sign_in(&provider, token, Some(NONCE)).await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Signature);
}

#[tokio::test]
async fn wrong_audience_and_issuer_are_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let mut claims = idp.claims();
    claims["aud"] = json!("another-client");
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Audience);

    let mut claims = idp.claims();
    claims["iss"] = json!("https://evil.example");
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Issuer);
}

#[tokio::test]
async fn expired_or_missing_exp_is_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let mut claims = idp.claims();
    claims["exp"] = json!(now() - 3600);
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Expired);

    let mut claims = idp.claims();
    claims.as_object_mut().expect("object").remove("exp");
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert!(
        matches!(result, Err(OAuthError::IdTokenInvalid(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn missing_or_wrong_nonce_is_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let mut claims = idp.claims();
    claims.as_object_mut().expect("object").remove("nonce");
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Nonce);

    let mut claims = idp.claims();
    claims["nonce"] = json!("the-nonce-of-another-sign-in");
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Nonce);
}

#[tokio::test]
async fn unsigned_and_client_secret_hmac_tokens_are_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(idp.claims().to_string());
    let result = idp
        .sign_in(&provider, format!("{header}.{payload}."), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Signature);

    // HS256 keyed with our own client secret: what a confidential-client verifier would accept.
    let secret = EncodingKey::from_secret(CLIENT_SECRET.as_bytes()).expect("hmac key");
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &idp.claims(), &secret).expect("sign");
    let result = idp.sign_in(&provider, token, Some(NONCE)).await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Signature);
}

#[tokio::test]
async fn another_key_under_a_known_kid_is_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let token = Hostile::sign(
        &idp.claims(),
        Algorithm::ES256,
        Key::EcB,
        Some(Key::EcA.kid()),
    );
    let result = idp.sign_in(&provider, token, Some(NONCE)).await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Signature);
    // An ES256 header naming the RSA key is no better.
    let token = Hostile::sign(
        &idp.claims(),
        Algorithm::ES256,
        Key::EcA,
        Some(Key::RsaA.kid()),
    );
    let result = idp.sign_in(&provider, token, Some(NONCE)).await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Signature);
}

#[tokio::test]
async fn unknown_kid_refetches_the_jwks_once_then_is_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let at_start = idp.jwks_fetches.load(Ordering::SeqCst);
    let token = Hostile::sign(
        &idp.claims(),
        Algorithm::ES256,
        Key::EcB,
        Some(Key::EcB.kid()),
    );
    let result = idp.sign_in(&provider, token.clone(), Some(NONCE)).await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Signature);
    assert_eq!(idp.jwks_fetches.load(Ordering::SeqCst), at_start + 1);

    // The provider rotates: the refetch finds the new key and the same token passes.
    idp.script().keys.push(Key::EcB.jwk(Algorithm::ES256));
    let identity = idp.sign_in(&provider, token.clone(), Some(NONCE)).await;
    assert_eq!(identity.expect("rotated key").account_id, "user-1");
    assert_eq!(idp.jwks_fetches.load(Ordering::SeqCst), at_start + 2);
    // Known now: no further fetch.
    idp.sign_in(&provider, token, Some(NONCE))
        .await
        .expect("cached key");
    assert_eq!(idp.jwks_fetches.load(Ordering::SeqCst), at_start + 2);
}

#[tokio::test]
async fn several_audiences_need_azp_naming_us() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let mut claims = idp.claims();
    claims["aud"] = json!([CLIENT_ID, "another-client"]);
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Audience);

    claims["azp"] = json!("another-client");
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::Audience);

    claims["azp"] = json!(CLIENT_ID);
    let identity = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(identity.expect("azp is us").account_id, "user-1");
}

#[tokio::test]
async fn issued_at_far_in_the_future_is_refused_but_skew_passes() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let mut claims = idp.claims();
    claims["iat"] = json!(now() + 30);
    let identity = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(identity.expect("30 s of skew").account_id, "user-1");

    claims["iat"] = json!(now() + 6 * 60);
    claims["exp"] = json!(now() + 20 * 60);
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert_eq!(refused_for(&result), IdTokenErrorReason::IssuedAt);
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let idp = Hostile::start().await;
    idp.script().discovery_issuer = Some("https://accounts.example".to_owned());
    let result = idp.client_with(HttpConfig::default()).await;
    assert!(
        matches!(result, Err(OAuthError::Discovery(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_hanging_token_endpoint_times_out_as_configured() {
    let idp = Hostile::start().await;
    let provider = idp
        .client_with(HttpConfig::default().with_timeout(Duration::from_millis(500)))
        .await
        .expect("discovery");
    idp.script().token_delay = Duration::from_secs(30);
    let started = Instant::now();
    let result = provider.exchange_code("code", REDIRECT_URI, None).await;
    assert!(matches!(result, Err(OAuthError::Timeout)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn discovery_does_not_follow_redirects() {
    let idp = Hostile::start().await;
    let result =
        OpenIdConnectConfig::new(format!("{}/moved", idp.issuer), CLIENT_ID, CLIENT_SECRET)
            .discover()
            .await;
    assert!(
        matches!(result, Err(OAuthError::Discovery(_))),
        "{result:?}"
    );
    assert_eq!(
        idp.jwks_fetches.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn userinfo_of_another_subject_is_refused() {
    let idp = Hostile::start().await;
    let provider = idp.client().await;
    let mut claims = idp.claims();
    let object = claims.as_object_mut().expect("object");
    object.remove("email");
    object.remove("email_verified");
    let identity = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await
        .expect("userinfo of the same subject");
    assert_eq!(identity.email.as_deref(), Some("from-userinfo@example.com"));
    assert!(identity.email_verified);

    idp.script().userinfo_sub = "user-2".to_owned();
    let result = idp
        .sign_in(&provider, Hostile::es256(&claims), Some(NONCE))
        .await;
    assert!(
        matches!(result, Err(OAuthError::ProfileFetch(_))),
        "{result:?}"
    );
}

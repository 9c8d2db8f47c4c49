//! The generic OpenID Connect client against a real provider (oidc-provider 9) on loopback.

use axum_users_oauth::{
    AuthorizationRequest, ClientAuthMethod, IdTokenErrorReason, OAuthError, OAuthProvider,
    OAuthToken, OpenIdConnect, OpenIdConnectConfig, PkcePair, generate_nonce, random_urlsafe,
};

use crate::oidc_provider::{ClientRegistration, OidcTestProvider, TestAccount, login};

const CLIENT_ID: &str = "rp-client";
const CLIENT_SECRET: &str = "rp-client-secret";
const OTHER_CLIENT_ID: &str = "other-client";
const OTHER_CLIENT_SECRET: &str = "other-client-secret";
/// Never called: the scripted login stops at the redirect to it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/auth/oidc/callback";

fn start_provider() -> Option<OidcTestProvider> {
    OidcTestProvider::start(&[
        ClientRegistration::new(
            CLIENT_ID,
            CLIENT_SECRET,
            [REDIRECT_URI, "http://127.0.0.1:9/other"],
        ),
        ClientRegistration::new(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, [REDIRECT_URI]),
    ])
}

async fn client(idp: &OidcTestProvider, client_id: &str, secret: &str) -> OpenIdConnect {
    OpenIdConnectConfig::new(idp.issuer(), client_id, secret)
        .with_name("oidc")
        .trust_email_verified(true)
        .discover()
        .await
        .expect("discovery")
}

/// A sign-in up to the callback: what the router would keep (PKCE, nonce) and the code.
struct SignIn {
    pkce: PkcePair,
    nonce: String,
    code: String,
}

async fn sign_in(provider: &OpenIdConnect, account: &TestAccount) -> SignIn {
    let pkce = PkcePair::generate();
    let nonce = generate_nonce();
    let state = random_urlsafe();
    let request = AuthorizationRequest::new(REDIRECT_URI, state.clone())
        .with_pkce(&pkce)
        .with_nonce(nonce.clone());
    let url = provider
        .authorization_url(&request)
        .expect("authorization url");
    let callback = login(url.as_str(), account).await;
    assert_eq!(callback.state, state);
    assert_eq!(callback.iss.as_deref(), Some(provider.issuer()));
    assert!(callback.redirect_url.starts_with(REDIRECT_URI));
    SignIn {
        pkce,
        nonce,
        code: callback.code,
    }
}

async fn exchange(provider: &OpenIdConnect, sign_in: &SignIn) -> OAuthToken {
    provider
        .exchange_code(&sign_in.code, REDIRECT_URI, Some(&sign_in.pkce.verifier))
        .await
        .expect("code exchange")
}

#[tokio::test]
async fn discovery_login_exchange_and_identity() {
    let Some(idp) = start_provider() else { return };
    let provider = client(&idp, CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(provider.name(), "oidc");
    assert_eq!(
        provider.oauth2().auth_method(),
        ClientAuthMethod::ClientSecretPost
    );

    let alice = TestAccount::new("alice", Some("alice@example.com"), true);
    let signed = sign_in(&provider, &alice).await;
    let token = exchange(&provider, &signed).await;
    assert!(token.id_token.is_some());
    assert!(token.expires_at.is_some());
    let identity = provider
        .identity(&token, Some(&signed.nonce))
        .await
        .expect("identity");
    assert_eq!(identity.account_id, "alice");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(identity.email_verified);

    let bob = TestAccount::new("bob", Some("bob@example.com"), false);
    let signed = sign_in(&provider, &bob).await;
    let token = exchange(&provider, &signed).await;
    let identity = provider
        .identity(&token, Some(&signed.nonce))
        .await
        .expect("identity");
    assert_eq!(identity.account_id, "bob");
    assert_eq!(identity.email.as_deref(), Some("bob@example.com"));
    assert!(!identity.email_verified);

    // Without trust_email_verified(true) the issuer's claim is not believed.
    let untrusted = OpenIdConnectConfig::new(idp.issuer(), CLIENT_ID, CLIENT_SECRET)
        .discover()
        .await
        .expect("discovery");
    assert!(!untrusted.trusts_email_verified());
    assert!(provider.trusts_email_verified());
    let signed = sign_in(&untrusted, &alice).await;
    let token = exchange(&untrusted, &signed).await;
    let identity = untrusted
        .identity(&token, Some(&signed.nonce))
        .await
        .expect("identity");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(!identity.email_verified);
}

#[tokio::test]
async fn wrong_verifier_replayed_code_and_wrong_nonce_fail() {
    let Some(idp) = start_provider() else { return };
    let provider = client(&idp, CLIENT_ID, CLIENT_SECRET).await;
    let carol = TestAccount::new("carol", Some("carol@example.com"), true);

    let first = sign_in(&provider, &carol).await;
    let wrong = PkcePair::generate();
    let result = provider
        .exchange_code(&first.code, REDIRECT_URI, Some(&wrong.verifier))
        .await;
    assert!(
        matches!(&result, Err(OAuthError::TokenRejected { error, .. }) if error == "invalid_grant"),
        "{result:?}"
    );

    let second = sign_in(&provider, &carol).await;
    let token = exchange(&provider, &second).await;
    let replay = provider
        .exchange_code(&second.code, REDIRECT_URI, Some(&second.pkce.verifier))
        .await;
    assert!(
        matches!(&replay, Err(OAuthError::TokenRejected { error, .. }) if error == "invalid_grant"),
        "{replay:?}"
    );

    let result = provider.identity(&token, Some("another-nonce")).await;
    assert!(
        matches!(
            result,
            Err(OAuthError::IdTokenInvalid(IdTokenErrorReason::Nonce))
        ),
        "{result:?}"
    );
    // No id_token at all.
    let mut stripped = token.clone();
    stripped.id_token = None;
    let result = provider.identity(&stripped, None).await;
    assert!(matches!(
        result,
        Err(OAuthError::IdTokenInvalid(IdTokenErrorReason::Missing))
    ));
}

#[tokio::test]
async fn id_token_for_another_client_is_refused() {
    let Some(idp) = start_provider() else { return };
    let ours = client(&idp, CLIENT_ID, CLIENT_SECRET).await;
    let theirs = client(&idp, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET).await;
    let dave = TestAccount::new("dave", Some("dave@example.com"), true);
    let signed = sign_in(&theirs, &dave).await;
    let token = exchange(&theirs, &signed).await;
    assert!(theirs.identity(&token, Some(&signed.nonce)).await.is_ok());
    let result = ours.identity(&token, Some(&signed.nonce)).await;
    assert!(
        matches!(
            result,
            Err(OAuthError::IdTokenInvalid(IdTokenErrorReason::Audience))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn refresh_then_revoke() {
    let Some(idp) = start_provider() else { return };
    let provider = client(&idp, CLIENT_ID, CLIENT_SECRET).await;
    let erin = TestAccount::new("erin", Some("erin@example.com"), true);
    let signed = sign_in(&provider, &erin).await;
    let token = exchange(&provider, &signed).await;
    let refresh_token = token.refresh_token.clone().expect("refresh token issued");

    let refreshed = provider.refresh(&refresh_token).await.expect("refresh");
    assert_ne!(refreshed.access_token, token.access_token);
    assert!(refreshed.refresh_token.is_some());
    let identity = provider
        .identity(&refreshed, None)
        .await
        .expect("identity after refresh");
    assert_eq!(identity.account_id, "erin");

    let new_refresh = refreshed.refresh_token.clone().expect("refresh token");
    provider.revoke(new_refresh.secret()).await.expect("revoke");
    let after = provider.refresh(&new_refresh).await;
    assert!(
        matches!(&after, Err(OAuthError::TokenRejected { error, .. }) if error == "invalid_grant"),
        "{after:?}"
    );
}

#[tokio::test]
async fn discovery_checks_the_issuer_and_basic_auth_is_chosen_when_listed_first() {
    let Some(idp) = OidcTestProvider::start_with_env(
        &[ClientRegistration::new(
            CLIENT_ID,
            CLIENT_SECRET,
            [REDIRECT_URI],
        )],
        &[("OIDC_TOKEN_AUTH_METHOD", "client_secret_basic")],
    ) else {
        return;
    };
    let mismatched =
        OpenIdConnectConfig::new(format!("{}/", idp.issuer()), CLIENT_ID, CLIENT_SECRET)
            .discover()
            .await;
    assert!(
        matches!(mismatched, Err(OAuthError::Discovery(_))),
        "{mismatched:?}"
    );

    let provider = client(&idp, CLIENT_ID, CLIENT_SECRET).await;
    assert_eq!(
        provider.oauth2().auth_method(),
        ClientAuthMethod::ClientSecretBasic
    );
    let frank = TestAccount::new("frank", None, false);
    let signed = sign_in(&provider, &frank).await;
    let token = exchange(&provider, &signed).await;
    let identity = provider
        .identity(&token, Some(&signed.nonce))
        .await
        .expect("identity");
    assert_eq!(identity.account_id, "frank");
    assert_eq!(identity.email, None);
    assert!(!identity.email_verified);
}

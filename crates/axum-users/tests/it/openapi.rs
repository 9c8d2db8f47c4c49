//! The OpenAPI document against the router it describes: every mounted route is documented
//! and nothing else is, and the codes the routes answer with are the documented ones.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum_users::utoipa::openapi::schema::{ObjectBuilder, Type};
use axum_users::{
    AxumUsers, ErrorCode, FieldSchema, MemoryStore, OAuthClient, Privilege, UserCreate, UserFields,
    oauth::GitHub,
};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::library::{FAST, SECRET, call, login, serve};

/// Custom fields with their own schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Profile {
    #[serde(default)]
    display_name: Option<String>,
}

impl UserFields for Profile {
    type Update = Profile;

    fn apply(&mut self, update: Profile) {
        if update.display_name.is_some() {
            self.display_name = update.display_name;
        }
    }

    fn openapi_fields() -> Option<Vec<FieldSchema>> {
        let name = ObjectBuilder::new().schema_type(Type::String);
        Some(vec![FieldSchema::new("display_name", name, false)])
    }
}

/// Custom fields without a schema: documented as additional properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Opaque {}

impl UserFields for Opaque {
    type Update = Opaque;

    fn apply(&mut self, _: Opaque) {}
}

type Users = AxumUsers<MemoryStore<uuid::Uuid, Profile>>;

/// Two backends (the default `jwt` and `cookie`), one OAuth provider, custom fields.
fn users() -> Users {
    let github = GitHub::new("client-id", "client-secret").unwrap();
    AxumUsers::builder(MemoryStore::new(), SECRET)
        .argon2(FAST)
        .public_url("http://127.0.0.1:1")
        .oauth(OAuthClient::new(Arc::new(github)))
        .build()
        .unwrap()
}

fn document(users: &Users) -> Value {
    serde_json::to_value(users.openapi()).unwrap()
}

/// The paths a router matches, read from its `Debug` output (axum lists them there, the
/// routes' before the fallback's).
fn router_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let (routes, _fallback) = debug
        .split_once("fallback_router")
        .unwrap_or_else(|| panic!("axum's Debug output changed: {debug}"));
    let paths: BTreeSet<String> = routes
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/'))
        .map(str::to_owned)
        .collect();
    assert!(
        paths.len() > 5,
        "axum's Debug output lists no paths: {debug}"
    );
    paths
}

/// The methods a path answers: anything but 405 (a path with no such method).
async fn mounted_methods(router: &Router, path: &str) -> Vec<&'static str> {
    let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
    let mut methods = Vec::new();
    for (name, method) in [
        ("get", Method::GET),
        ("post", Method::POST),
        ("put", Method::PUT),
        ("patch", Method::PATCH),
        ("delete", Method::DELETE),
    ] {
        let request = http::Request::builder()
            .method(method)
            .uri(&concrete)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        if response.status() != http::StatusCode::METHOD_NOT_ALLOWED {
            methods.push(name);
        }
    }
    methods
}

#[tokio::test]
async fn the_document_lists_exactly_the_mounted_routes() {
    let users = users();
    let router = users.router();
    let doc = document(&users);
    let mut mounted = BTreeSet::new();
    for path in router_paths(&router) {
        for method in mounted_methods(&router, &path).await {
            mounted.insert((path.clone(), method.to_owned()));
        }
    }
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((path.clone(), method.clone()));
        }
    }
    let missing: Vec<_> = mounted.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&mounted).collect();
    assert!(missing.is_empty(), "mounted, not documented: {missing:?}");
    assert!(extra.is_empty(), "documented, not mounted: {extra:?}");
    for path in [
        "/auth/jwt/login",
        "/auth/cookie/logout",
        "/auth/github/callback",
        "/auth/associate/github/authorize",
        "/users/me/oauth-accounts",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

#[test]
fn backends_have_security_schemes_and_fields_have_schemas() {
    let doc = document(&users());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"],
        "auth/jwt/login"
    );
    assert_eq!(schemes["APIKeyCookie"]["in"], "cookie");
    assert_eq!(schemes["APIKeyCookie"]["name"], "fastapiusersauth");
    let me = &doc["paths"]["/users/me"]["get"];
    assert_eq!(
        me["security"],
        json!([{"OAuth2PasswordBearer": []}, {"APIKeyCookie": []}])
    );
    assert_eq!(
        doc["paths"]["/auth/jwt/login"]["post"]["operationId"],
        "auth_jwt_login_auth_jwt_login_post"
    );
    let schemas = &doc["components"]["schemas"];
    for name in [
        "BearerResponse",
        "UserRead",
        "UserCreate",
        "UserUpdate",
        "ErrorModel",
        "HTTPValidationError",
        "ValidationError",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
    assert_eq!(
        schemas["UserRead"]["properties"]["display_name"]["type"],
        "string"
    );
    assert_eq!(schemas["UserRead"]["properties"]["id"]["format"], "uuid");

    let opaque = AxumUsers::builder(MemoryStore::<i64, Opaque>::new(), SECRET)
        .build()
        .unwrap();
    let doc = serde_json::to_value(opaque.openapi()).unwrap();
    let read = &doc["components"]["schemas"]["UserRead"];
    assert_eq!(read["additionalProperties"], true);
    assert_eq!(read["properties"]["id"]["type"], "integer");
    assert!(doc["paths"]["/auth/github/authorize"].is_null());
}

/// The code of an error answer, looked up in [`ErrorCode`]; `None` for a 422 list.
fn code_of(body: &Value) -> Option<ErrorCode> {
    let detail = &body["detail"];
    let code = detail.as_str().or_else(|| detail["code"].as_str())?;
    ErrorCode::ALL.iter().copied().find(|c| c.as_str() == code)
}

/// Calls a route and checks it answered `expected` (`None`: a 422 validation list) and that
/// the document lists that answer for the route.
struct Checker {
    doc: Value,
    base: String,
}

impl Checker {
    async fn expect(
        &self,
        method: Method,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expected: Option<ErrorCode>,
    ) {
        let name = method.as_str().to_lowercase();
        let (status, answer) = call(method, format!("{}{path}", self.base), token, body).await;
        let responses = &self.doc["paths"][template][&name]["responses"];
        assert!(responses.is_object(), "{name} {template} is not documented");
        let Some(code) = expected else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
            assert!(answer["detail"].is_array(), "{path}: {answer}");
            assert!(
                responses["422"].is_object(),
                "422 of {name} {template} is not documented"
            );
            return;
        };
        assert_eq!(
            (status.as_u16(), code_of(&answer)),
            (code.status().as_u16(), Some(code)),
            "{name} {path}: {answer}"
        );
        let example =
            &responses[status.as_str()]["content"]["application/json"]["examples"][code.as_str()];
        assert_eq!(
            example["value"]["detail"], answer["detail"],
            "{code} of {name} {template} is not documented as answered"
        );
    }
}

#[tokio::test]
async fn the_codes_routes_answer_with_are_documented() {
    let users = users();
    let mut root = UserCreate::new("root@example.com", "superuser-phrase-1");
    root.is_superuser = Some(true);
    users
        .manager()
        .create(root, Privilege::Superuser, None)
        .await
        .unwrap();
    let c = Checker {
        doc: document(&users),
        base: serve(users.router()).await,
    };
    let id = uuid::Uuid::new_v4().to_string();
    let user_path = format!("/users/{id}");
    let ann = json!({"email": "ann@example.com", "password": "annpass-long-1"});
    let (status, _) = call(
        Method::POST,
        format!("{}/auth/register", c.base),
        None,
        Some(ann.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = login(&c.base, "ann@example.com", "annpass-long-1").await;
    let root = login(&c.base, "root@example.com", "superuser-phrase-1").await;
    let t = Some(token.as_str());
    let r = Some(root.as_str());
    use ErrorCode as E;
    use Method as M;

    // (method, route, path when not the route, token, body or null, the code or None for a 422)
    let unlink = format!("/users/me/oauth-accounts/{id}");
    let sessions_path = format!("/users/{id}/sessions");
    let cases = [
        (M::POST, "/auth/register", "", None, json!({}), None),
        (
            M::POST,
            "/auth/register",
            "",
            None,
            ann,
            Some(E::RegisterUserAlreadyExists),
        ),
        (
            M::POST,
            "/auth/forgot-password",
            "",
            None,
            json!({"email": 1}),
            None,
        ),
        (
            M::POST,
            "/auth/reset-password",
            "",
            None,
            json!({"token": "x", "password": "newpass-long-1"}),
            Some(E::ResetPasswordBadToken),
        ),
        (
            M::POST,
            "/auth/verify",
            "",
            None,
            json!({"token": "x"}),
            Some(E::VerifyUserBadToken),
        ),
        (
            M::GET,
            "/users/me",
            "",
            None,
            Value::Null,
            Some(E::Unauthorized),
        ),
        (
            M::POST,
            "/auth/jwt/logout",
            "",
            None,
            Value::Null,
            Some(E::Unauthorized),
        ),
        (
            M::PATCH,
            "/users/me",
            "",
            t,
            json!({"password": "newpass-long-1"}),
            Some(E::UpdateUserCurrentPasswordRequired),
        ),
        (
            M::PATCH,
            "/users/me",
            "",
            t,
            json!({"password": "newpass-long-1", "current_password": "wrong"}),
            Some(E::UpdateUserBadCurrentPassword),
        ),
        (M::PATCH, "/users/me", "", t, json!({"email": null}), None),
        (
            M::GET,
            "/users/{id}",
            &user_path,
            t,
            Value::Null,
            Some(E::Forbidden),
        ),
        (
            M::GET,
            "/users/{id}",
            &user_path,
            r,
            Value::Null,
            Some(E::NotFound),
        ),
        (
            M::DELETE,
            "/users/{id}",
            &user_path,
            r,
            Value::Null,
            Some(E::NotFound),
        ),
        (
            M::DELETE,
            "/users/me",
            "",
            r,
            Value::Null,
            Some(E::NotFound),
        ),
        (
            M::PATCH,
            "/users/{id}",
            &user_path,
            r,
            json!({}),
            Some(E::NotFound),
        ),
        (
            M::GET,
            "/auth/github/callback",
            "",
            None,
            Value::Null,
            Some(E::BadRequest),
        ),
        (
            M::GET,
            "/auth/github/callback",
            "/auth/github/callback?code=c&state=s",
            None,
            Value::Null,
            Some(E::AccessTokenDecodeError),
        ),
        (
            M::POST,
            "/auth/github/token",
            "",
            None,
            json!({"code": "x"}),
            Some(E::OAuthInvalidLoginCode),
        ),
        (
            M::GET,
            "/auth/associate/github/authorize",
            "",
            None,
            Value::Null,
            Some(E::Unauthorized),
        ),
        (
            M::DELETE,
            "/users/me/oauth-accounts/{id}",
            &unlink,
            t,
            Value::Null,
            Some(E::NotFound),
        ),
        (
            M::POST,
            "/auth/jwt/refresh",
            "",
            None,
            json!({"refresh_token": "x"}),
            Some(E::RefreshTokenInvalid),
        ),
        (
            M::DELETE,
            "/users/me/sessions/{id}",
            "/users/me/sessions/nope",
            t,
            Value::Null,
            Some(E::SessionNotFound),
        ),
        (
            M::GET,
            "/users/{id}/sessions",
            &sessions_path,
            r,
            Value::Null,
            Some(E::NotFound),
        ),
    ];
    for (method, route, path, token, body, expected) in cases {
        let path = if path.is_empty() { route } else { path };
        let body = (!body.is_null()).then_some(body);
        c.expect(method, route, path, token, body, expected).await;
    }

    // The login routes read forms.
    for backend in ["jwt", "cookie"] {
        let url = format!("{}/auth/{backend}/login", c.base);
        let template = format!("/auth/{backend}/login");
        let responses = &c.doc["paths"][&template]["post"]["responses"];
        let r = reqwest::Client::new()
            .post(&url)
            .form(&[("username", "ann@example.com"), ("password", "wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let answer: Value = r.json().await.unwrap();
        assert_eq!(code_of(&answer), Some(E::LoginBadCredentials));
        assert!(
            responses["400"]["content"]["application/json"]["examples"]
                [E::LoginBadCredentials.as_str()]
            .is_object(),
            "{template}"
        );
        let r = reqwest::Client::new().post(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(responses["422"].is_object(), "{template}");
    }

    // A cookie-authenticated change from another site.
    let r = reqwest::Client::new()
        .post(format!("{}/auth/cookie/login", c.base))
        .form(&[
            ("username", "ann@example.com"),
            ("password", "annpass-long-1"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()[http::header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let r = reqwest::Client::new()
        .patch(format!("{}/users/me", c.base))
        .header(http::header::COOKIE, cookie)
        .header(http::header::ORIGIN, "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(code_of(&answer), Some(E::CsrfOriginMismatch));
    assert!(
        c.doc["paths"]["/users/me"]["patch"]["responses"]["403"]["content"]["application/json"]
            ["examples"][E::CsrfOriginMismatch.as_str()]
        .is_object()
    );
}

#[test]
fn every_error_code_is_in_the_compatibility_table() {
    let doc = include_str!("../../../../docs/compatibility.md");
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(
            doc.lines().any(|l| l.starts_with(&row)),
            "docs/compatibility.md has no row `{row} ...`"
        );
    }
}

//! An in-process HTTP client for a [`Router`]: route contracts are tested without a port, a
//! server binary or a network client.
//!
//! ```
//! # async fn run() {
//! use axum_users::{AxumUsers, MemoryStore, testing::TestApp};
//! use serde_json::json;
//!
//! let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), "0123456789abcdef0123456789abcdef")
//!     .build()
//!     .unwrap();
//! let app = TestApp::new(users.router());
//! let created = app
//!     .post("/auth/register")
//!     .json(&json!({"email": "ada@example.com", "password": "correct horse"}))
//!     .send()
//!     .await;
//! assert_eq!(created.status(), 201);
//! let token = app.login("ada@example.com", "correct horse").await;
//! let me = app.get("/users/me").bearer(&token).send().await;
//! assert_eq!(me.json()["email"], "ada@example.com");
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::header::{CONTENT_TYPE, COOKIE, HeaderName, HeaderValue, SET_COOKIE};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// The largest response body a test reads.
const BODY_LIMIT: usize = 1 << 20;

/// A router under test, with a cookie jar shared by its requests (as a browser keeps one).
///
/// Every request carries a peer address (`ConnectInfo<SocketAddr>`, `127.0.0.1:40000` unless
/// [`TestRequest::from_peer`] sets another), as the server's accept loop gives one.
pub struct TestApp {
    router: Router,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").finish_non_exhaustive()
    }
}

impl TestApp {
    /// Wraps a router (with the layers it is served with).
    pub fn new(router: Router) -> Self {
        Self {
            router,
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    /// A request with any method.
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            app: self,
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
        }
    }

    /// A `GET` request.
    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    /// A `POST` request.
    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    /// A `PATCH` request.
    pub fn patch(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PATCH, path)
    }

    /// A `DELETE` request.
    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, path)
    }

    /// Registers a user through `POST /auth/register` and returns its JSON.
    ///
    /// # Panics
    /// If the answer is not 201.
    pub async fn register(&self, email: &str, password: &str) -> Value {
        let response = self
            .post("/auth/register")
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            response.text()
        );
        response.json()
    }

    /// Logs in through the bearer backend `jwt` and returns the access token.
    ///
    /// # Panics
    /// If the answer is not 200 with an `access_token`.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self
            .post("/auth/jwt/login")
            .form(&[("username", email), ("password", password)])
            .send()
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text());
        response.json()["access_token"]
            .as_str()
            .expect("a login answer has an access_token")
            .to_owned()
    }

    /// The value of a cookie the app has set, if it is in the jar.
    ///
    /// # Panics
    /// If the jar's lock was poisoned by a panicking test.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().expect("cookie jar").get(name).cloned()
    }

    fn cookie_header(&self) -> Option<HeaderValue> {
        let jar = self.cookies.lock().expect("cookie jar");
        if jar.is_empty() {
            return None;
        }
        let line = jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&line).ok()
    }

    /// Keeps the `Set-Cookie`s of a response; a `Max-Age=0` one deletes its cookie.
    fn keep_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.cookies.lock().expect("cookie jar");
        for line in headers.get_all(SET_COOKIE) {
            let Ok(line) = line.to_str() else { continue };
            let mut parts = line.split(';');
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|attribute| {
                attribute
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("max-age=0")
            });
            if expired || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

/// A request being built; [`TestRequest::send`] runs it through the router.
#[must_use = "a request does nothing until it is sent"]
pub struct TestRequest<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    peer: SocketAddr,
}

impl std::fmt::Debug for TestRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TestRequest<'_> {
    /// Adds a header.
    ///
    /// # Panics
    /// If the name or value is not a valid header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::try_from(name).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body, with its content type.
    ///
    /// # Panics
    /// If the value does not serialise.
    pub fn json(mut self, body: &impl serde::Serialize) -> Self {
        self.body = serde_json::to_vec(body).expect("JSON body");
        self.header("content-type", "application/json")
    }

    /// A URL-encoded form body, with its content type.
    ///
    /// # Panics
    /// If the pairs do not encode.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.body = serde_urlencoded::to_string(pairs)
            .expect("form body")
            .into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// A raw body (set the content type with [`TestRequest::header`]).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The peer address the request comes from (the default is `127.0.0.1:40000`).
    pub fn from_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// Runs the request through the router, keeps the cookies it sets, and reads the answer.
    ///
    /// # Panics
    /// If the request cannot be built or the body is over 1 MiB.
    pub async fn send(self) -> TestResponse {
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.path)
            .body(Body::from(self.body))
            .expect("a valid request");
        *request.headers_mut() = self.headers;
        if !request.headers().contains_key(COOKIE)
            && let Some(cookies) = self.app.cookie_header()
        {
            request.headers_mut().insert(COOKIE, cookies);
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let response = match self.app.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        self.app.keep_cookies(&parts.headers);
        let body = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .expect("a response body under 1 MiB");
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl TestResponse {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; `Value::Null` for an empty body.
    ///
    /// # Panics
    /// If the body is not JSON, with the body in the message.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `(status, JSON body)`, the pair most assertions compare.
    pub fn pair(&self) -> (StatusCode, Value) {
        (self.status, self.json())
    }

    /// Whether the response declares a JSON body.
    pub fn is_json(&self) -> bool {
        self.header(CONTENT_TYPE.as_str())
            .is_some_and(|value| value.starts_with("application/json"))
    }
}

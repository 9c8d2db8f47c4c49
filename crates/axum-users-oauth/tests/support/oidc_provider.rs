//! Test support: a real OpenID provider (`tests/oidc/provider.mjs`, oidc-provider 9) on loopback,
//! and a scripted browser-free login.
//!
//! Include it from any crate of the workspace (it needs `reqwest` with the `cookies` feature and
//! `url` as dev-dependencies, and a tokio test runtime):
//!
//! ```ignore
//! #[path = "../../axum-users-oauth/tests/support/oidc_provider.rs"]
//! mod oidc_provider;
//!
//! let Some(idp) = oidc_provider::OidcTestProvider::start(&[oidc_provider::ClientRegistration::new(
//!     "client", "secret", ["http://127.0.0.1:8000/auth/oidc/callback"],
//! )]) else { return }; // prints SKIPPED when node or node_modules is missing
//! let callback = oidc_provider::login(authorization_url.as_str(), &oidc_provider::TestAccount::new(
//!     "alice", Some("alice@example.com"), true,
//! )).await;
//! ```
//!
//! Set `OIDC_HARNESS_REQUIRED=1` to fail instead of skipping when the harness is not installed.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the provider may take to print `READY`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub struct ClientRegistration {
    /// The OAuth client_id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Every redirect URI the client may use (exact match).
    pub redirect_uris: Vec<String>,
}

impl ClientRegistration {
    /// A confidential client with these redirect URIs.
    pub fn new<S: Into<String>>(
        client_id: &str,
        client_secret: &str,
        redirect_uris: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: redirect_uris.into_iter().map(Into::into).collect(),
        }
    }

    fn to_json(&self) -> String {
        let uris: Vec<String> = self
            .redirect_uris
            .iter()
            .map(|uri| json_string(uri))
            .collect();
        format!(
            r#"{{"client_id":{},"client_secret":{},"redirect_uris":[{}]}}"#,
            json_string(&self.client_id),
            json_string(&self.client_secret),
            uris.join(",")
        )
    }
}

/// The user who signs in: becomes the `sub`, `email` and `email_verified` claims.
#[derive(Debug, Clone)]
pub struct TestAccount {
    /// The account id (`sub`).
    pub account_id: String,
    /// The e-mail address, if the account has one.
    pub email: Option<String>,
    /// The `email_verified` claim.
    pub email_verified: bool,
    /// Refuse at the login step: the provider answers `error=access_denied`.
    pub deny: bool,
    /// The `name` claim (scope `profile`), if any.
    pub name: Option<String>,
}

impl TestAccount {
    /// An account with these claims.
    pub fn new(account_id: &str, email: Option<&str>, email_verified: bool) -> Self {
        Self {
            account_id: account_id.to_owned(),
            email: email.map(str::to_owned),
            email_verified,
            deny: false,
            name: None,
        }
    }

    /// The same account, with a `name` claim.
    #[allow(dead_code)]
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The same account, refusing to sign in.
    #[allow(dead_code)]
    pub fn deny(mut self) -> Self {
        self.deny = true;
        self
    }
}

/// The query of the final redirect to the client's redirect_uri (not called).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: String,
    /// The state sent in the authorization URL.
    pub state: String,
    /// The RFC 9207 `iss` parameter.
    pub iss: Option<String>,
    /// The whole redirect URL.
    pub redirect_url: String,
}

/// A running `provider.mjs`; stopped (stdin closed, then killed) when dropped.
pub struct OidcTestProvider {
    issuer: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl OidcTestProvider {
    /// Starts the provider on a free loopback port with these clients (token auth
    /// `client_secret_post`). Returns `None` after printing `SKIPPED: ...` when `node` or
    /// `tests/oidc/node_modules` is missing (unless `OIDC_HARNESS_REQUIRED` is set: then panics).
    pub fn start(clients: &[ClientRegistration]) -> Option<Self> {
        Self::start_with_env(clients, &[])
    }

    /// As [`Self::start`], with extra environment variables for `provider.mjs`
    /// (e.g. `("OIDC_TOKEN_AUTH_METHOD", "client_secret_basic")`).
    pub fn start_with_env(clients: &[ClientRegistration], env: &[(&str, &str)]) -> Option<Self> {
        let dir = harness_dir();
        let node_ok = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !node_ok || !dir.join("node_modules/oidc-provider").is_dir() {
            assert!(
                std::env::var_os("OIDC_HARNESS_REQUIRED").is_none(),
                "OIDC_HARNESS_REQUIRED is set but node/oidc-provider is not installed in {}",
                dir.display()
            );
            println!("SKIPPED: node/oidc-provider not installed (run npm ci in tests/oidc)");
            return None;
        }
        let registrations: Vec<String> = clients.iter().map(ClientRegistration::to_json).collect();
        let mut command = Command::new("node");
        command
            .arg(dir.join("provider.mjs"))
            .arg("0")
            .current_dir(&dir)
            .env("OIDC_CLIENTS", format!("[{}]", registrations.join(",")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn node provider.mjs");
        let stdin = child.stdin.take();
        let stderr_log = Arc::new(Mutex::new(String::new()));
        if let Some(mut stderr) = child.stderr.take() {
            let log = Arc::clone(&stderr_log);
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                if let Ok(mut slot) = log.lock() {
                    slot.push_str(&text);
                }
            });
        }
        let stdout = child.stdout.take().expect("provider stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let (false, Some(issuer)) = (sent, line.strip_prefix("READY ")) {
                    let _ = ready_tx.send(issuer.trim().to_owned());
                    sent = true;
                }
            }
        });
        let issuer = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(issuer) => issuer,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let log = stderr_log.lock().map(|log| log.clone()).unwrap_or_default();
                panic!("provider.mjs did not print READY: {log}");
            }
        };
        Some(Self {
            issuer,
            child,
            stdin,
        })
    }

    /// The issuer URL (`http://127.0.0.1:<port>`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

impl Drop for OidcTestProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/oidc` at the workspace root (or `OIDC_HARNESS_DIR`).
pub fn harness_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OIDC_HARNESS_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// Signs in at the provider as `account` and consents, without a browser: follows the
/// authorization URL, posts the login and consent forms, and returns the parameters of the
/// final redirect to the redirect_uri (which is not called). Panics on any other outcome.
pub async fn login(authorization_url: &str, account: &TestAccount) -> CallbackParams {
    match try_login(authorization_url, account).await {
        Ok(params) => params,
        Err(error) => panic!("scripted OIDC login failed: {error}"),
    }
}

/// As [`login`], but returns the failure (e.g. an `error=` redirect) instead of panicking.
pub async fn try_login(
    authorization_url: &str,
    account: &TestAccount,
) -> Result<CallbackParams, String> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let start = url::Url::parse(authorization_url).map_err(|e| e.to_string())?;
    let provider_origin = start.origin();
    let mut request = client.get(start.clone());
    let mut current = start;
    for _ in 0..20 {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .ok_or("redirect without Location")?;
            let next = current.join(location).map_err(|e| e.to_string())?;
            if next.origin() != provider_origin {
                return callback_params(&next);
            }
            request = client.get(next.clone());
            current = next;
            continue;
        }
        let body = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status} at {current}: {body}"));
        }
        let action = form_action(&body).ok_or_else(|| format!("no form at {current}: {body}"))?;
        let target = current.join(&action).map_err(|e| e.to_string())?;
        request = if action.ends_with("/login") {
            let verified = if account.email_verified {
                "true"
            } else {
                "false"
            };
            let form = [
                ("account_id", account.account_id.as_str()),
                ("email", account.email.as_deref().unwrap_or("")),
                ("email_verified", verified),
                ("deny", if account.deny { "true" } else { "false" }),
                ("name", account.name.as_deref().unwrap_or("")),
            ];
            client.post(target.clone()).form(&form)
        } else {
            client.post(target.clone()).form(&[("confirm", "yes")])
        };
        current = target;
    }
    Err("too many steps in the login flow".to_owned())
}

fn callback_params(url: &url::Url) -> Result<CallbackParams, String> {
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if let Some(error) = param("error") {
        let description = param("error_description").unwrap_or_default();
        return Err(format!(
            "provider redirected with error={error} ({description})"
        ));
    }
    Ok(CallbackParams {
        code: param("code").ok_or_else(|| format!("no code in {url}"))?,
        state: param("state").unwrap_or_default(),
        iss: param("iss"),
        redirect_url: url.to_string(),
    })
}

fn form_action(html: &str) -> Option<String> {
    let start = html.find("action=\"")? + "action=\"".len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

fn json_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

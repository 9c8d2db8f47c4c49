//! Starts the real server binary on a free port with a temporary database and the file mailer.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_axum-users-server");

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Environment that keeps tests fast and observable: cheap Argon2, mail in files, plain HTTP cookies.
pub fn test_env(dir: &Path) -> Vec<(String, String)> {
    [
        ("AXUM_USERS_BIND", "127.0.0.1:0".to_owned()),
        (
            "AXUM_USERS_DATABASE_URL",
            format!("sqlite://{}", dir.join("users.db").display()),
        ),
        (
            "AXUM_USERS_MAILER",
            format!("file:{}", dir.join("mail").display()),
        ),
        (
            "AXUM_USERS_FRONTEND_URL",
            "https://app.example.com".to_owned(),
        ),
        ("AXUM_USERS_COOKIE_SECURE", "false".to_owned()),
        ("AXUM_USERS_ARGON2_MEMORY_KIB", "256".to_owned()),
        ("AXUM_USERS_ARGON2_ITERATIONS", "1".to_owned()),
        ("AXUM_USERS_PASSWORD_MIN_LENGTH", "3".to_owned()),
        // The reference's suite sends many requests from one address, short passwords and the
        // same address twice: the abuse defences are off here; `abuse.rs` tests them on.
        ("AXUM_USERS_RATE_LIMITS", "false".to_owned()),
        ("AXUM_USERS_MAIL_COOLDOWN_SECONDS", "0".to_owned()),
        ("AXUM_USERS_PASSWORD_BLOCKLIST", "false".to_owned()),
        ("AXUM_USERS_PASSWORD_EMAIL_CHECK", "false".to_owned()),
        // The tests that count messages count links; tests/it/mail.rs turns notices on.
        (
            "AXUM_USERS_MAIL_NOTIFY_PASSWORD_CHANGED",
            "false".to_owned(),
        ),
        ("AXUM_USERS_MAIL_NOTIFY_NEW_DEVICE", "false".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts with the test environment plus `extra` (which wins).
    pub fn start_with(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BIN);
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in test_env(dir.path()) {
            command.env(k, v);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(
                        // In a JSON log line the message ends at its closing quote.
                        addr.split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                lines.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            base,
            dir,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("users.db").display())
    }

    /// Messages sent to `to` so far, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter(|m| m.contains(&format!("\r\nTo: {to}\r\n")))
            .collect()
    }

    /// Waits for the `n`-th message (1-based) to `to` and returns the `token=` of its link.
    pub async fn wait_token(&self, to: &str, n: usize) -> String {
        for _ in 0..100 {
            if let Some(mail) = self.mails_to(to).get(n - 1) {
                let token = mail.split("token=").nth(1).expect("a link with token=");
                return token.split_whitespace().next().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail #{n} to {to}");
    }

    /// Kills the server and hands back its folder (database, secret, mail) for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> Client {
    Client::builder().cookie_store(true).build().unwrap()
}

/// Status and JSON body (Null when empty).
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

pub async fn post_json(c: &Client, url: String, body: Value) -> (StatusCode, Value) {
    read(c.post(url).json(&body).send().await.unwrap()).await
}

pub async fn register(s: &Server, email: &str, password: &str) -> Value {
    let (status, body) = post_json(
        &client(),
        s.url("/auth/register"),
        json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub async fn login(s: &Server, email: &str, password: &str) -> String {
    let r = client()
        .post(s.url("/auth/jwt/login"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

pub async fn try_login(s: &Server, email: &str, password: &str) -> (StatusCode, Value) {
    read(
        client()
            .post(s.url("/auth/jwt/login"))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub async fn get_me(s: &Server, token: &str) -> (StatusCode, Value) {
    read(
        client()
            .get(s.url("/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub async fn patch(s: &Server, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    read(
        client()
            .patch(s.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A superuser made with the CLI, logged in.
pub async fn superuser(s: &Server, email: &str) -> String {
    let mut command = Command::new(BIN);
    command.current_dir(s.dir.path()).env_clear();
    for (k, v) in test_env(s.dir.path()) {
        command.env(k, v);
    }
    let out = command
        .args([
            "create-superuser",
            "--email",
            email,
            "--password",
            "rootpass",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    login(s, email, "rootpass").await
}

pub fn detail(body: &Value) -> &Value {
    &body["detail"]
}

/// The secret of servers on a shared database (no secret file there); nodes share it.
pub const SECRET: &str = "e2e-tests-shared-secret-0123456789abcdef0123";

/// A database the end-to-end tests run the server on: SQLite always; PostgreSQL and MariaDB
/// (each test gets a fresh database) when TEST_POSTGRES_URL / TEST_MYSQL_URL are set.
pub struct TestDb {
    pub name: &'static str,
    temp: Option<axum_users_sqlx::testing::TempDatabase>,
}

impl TestDb {
    /// The server environment for this database (nothing for SQLite: the test folder's file).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match &self.temp {
            Some(temp) => vec![
                ("AXUM_USERS_DATABASE_URL", temp.url.clone()),
                ("AXUM_USERS_SECRET", SECRET.to_owned()),
            ],
            None => Vec::new(),
        }
    }

    /// Drops the database; call after the servers on it are stopped.
    pub async fn finish(self) {
        if let Some(temp) = self.temp {
            temp.drop_database().await.expect("drop the test database");
        }
    }
}

/// SQLite, then every server database whose URL is set.
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb {
        name: "SQLite",
        temp: None,
    }];
    for (var, name) in [
        ("TEST_POSTGRES_URL", "PostgreSQL"),
        ("TEST_MYSQL_URL", "MariaDB/MySQL"),
    ] {
        if let Some(server) = axum_users::testing::service_url(var, name) {
            let temp = axum_users_sqlx::testing::TempDatabase::create(&server)
                .await
                .expect("create a test database");
            dbs.push(TestDb {
                name,
                temp: Some(temp),
            });
        }
    }
    dbs
}

/// Starts a server with `env` (owned values) added to the test environment.
pub fn start_env(env: &[(&str, String)]) -> Server {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(&pairs)
}

/// Logs in through the backend `backend` and returns the Bearer token.
pub async fn login_via(s: &Server, backend: &str, email: &str, password: &str) -> String {
    let r = client()
        .post(s.url(&format!("/auth/{backend}/login")))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, StatusCode::OK, "login via {backend}: {body}");
    assert_eq!(body["token_type"], "bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

/// Logs out through the backend `backend`; returns the status.
pub async fn logout_via(s: &Server, backend: &str, token: &str) -> StatusCode {
    client()
        .post(s.url(&format!("/auth/{backend}/logout")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// A port nothing listens on right now, for a service the test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

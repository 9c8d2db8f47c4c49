//! The binary itself: start-up without configuration, health, OpenAPI, CLI, shutdown.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn health_openapi_and_docs() {
    let s = Server::start();
    let c = client();
    assert_eq!(
        read(c.get(s.url("/health")).send().await.unwrap()).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (status, ready) = read(c.get(s.url("/ready")).send().await.unwrap()).await;
    assert_eq!(
        (status, ready["database"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let (status, doc) = read(c.get(s.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let expected = [
        ("/auth/jwt/login", "post"),
        ("/auth/jwt/logout", "post"),
        ("/auth/cookie/login", "post"),
        ("/auth/cookie/logout", "post"),
        ("/auth/register", "post"),
        ("/auth/forgot-password", "post"),
        ("/auth/reset-password", "post"),
        ("/auth/request-verify-token", "post"),
        ("/auth/verify", "post"),
        ("/users/me", "get"),
        ("/users/me", "patch"),
        ("/users/{id}", "get"),
        ("/users/{id}", "patch"),
        ("/users/{id}", "delete"),
    ];
    for (path, method) in expected {
        let op = &doc["paths"][path][method];
        assert!(
            op["responses"].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert!(doc["paths"]["/auth/register"]["post"]["responses"]["400"]["content"]["application/json"]["examples"]["REGISTER_USER_ALREADY_EXISTS"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"],
        "/auth/jwt/login",
        "absolute: Swagger UI resolves it against /docs/"
    );
    assert!(doc["paths"]["/health"]["get"].is_object());
    // Swagger UI, with its assets served by the binary itself.
    let page = c.get(s.url("/docs")).send().await.unwrap();
    assert_eq!(page.url().path(), "/docs/");
    let page = page.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    for asset in [
        "./swagger-ui-bundle.js",
        "./swagger-ui.css",
        "./swagger-initializer.js",
    ] {
        assert!(
            page.contains(asset),
            "the page loads {asset} from the server: {page}"
        );
        let r = c
            .get(s.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
    }
    assert!(
        !page.contains("https://"),
        "the docs page loads nothing from elsewhere"
    );
    let init = c
        .get(s.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    let init = init.text().await.unwrap();
    assert!(
        init.contains("/openapi.json") && init.contains("\"validatorUrl\": \"none\""),
        "{init}"
    );
    assert_eq!(
        read(c.get(s.url("/nowhere")).send().await.unwrap()).await,
        (StatusCode::NOT_FOUND, json!({"detail": "Not Found"}))
    );
    assert_eq!(
        read(c.put(s.url("/users/me")).send().await.unwrap())
            .await
            .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn without_a_secret_one_is_generated_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir, &[]);
    register(&s, "ivy@example.com", "ivypass").await;
    let token = login(&s, "ivy@example.com", "ivypass").await;
    let secret_file = s.dir.path().join("users.secret");
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    assert!(secret.len() >= 32);
    assert!(
        s.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("no AXUM_USERS_SECRET set"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // Restart on the same database: same secret, so the token is still good.
    let dir = s.stop();
    let s = Server::start_in(dir, &[]);
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("users.secret")).unwrap(),
        secret
    );
    assert_eq!(get_me(&s, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let s = Server::start();
    assert_eq!(
        read(client().get(s.url("/health")).send().await.unwrap())
            .await
            .0,
        StatusCode::OK
    );
    assert!(s.terminate().success());
}

#[test]
fn help_everywhere() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["create-superuser", "--help"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("AXUM_USERS_DATABASE_URL"));
}

#[test]
fn an_invalid_setting_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("AXUM_USERS_ARGON2_MEMORY_KIB", "lots"),
        ("AXUM_USERS_BIND", "here"),
        ("AXUM_USERS_MAILER", "pigeon"),
    ] {
        let out = Command::new(BIN)
            .current_dir(dir.path())
            .env_clear()
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn migrate_and_create_superuser_commands() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path()).env_clear();
        for (k, v) in test_env(dir.path()) {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&["migrate"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("users.db").exists());
    // Prompted for what is missing.
    let out = run(&["create-superuser"], "root@example.com\nrootpass\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created superuser root@example.com"));
    let out = run(
        &[
            "create-superuser",
            "--email",
            "ROOT@example.com",
            "--password",
            "x1234",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run(
        &["create-superuser", "--email", "nope", "--password", "x1234"],
        "",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid e-mail"));
}

/// Runs the binary against a running server's database and returns (success, stdout, stderr).
fn cli(s: &Server, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command.current_dir(s.dir.path()).env_clear();
    for (k, v) in test_env(s.dir.path()) {
        command.env(k, v);
    }
    let out = command.args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn users_commands_manage_accounts() {
    let s = Server::start();
    let alice = register(&s, "alice@example.com", "alicepass").await;
    register(&s, "bob@example.com", "bobpass1").await;

    let (ok, out, _) = cli(&s, &["users", "list"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    let first = format!(
        "{}  alice@example.com  active  created ",
        alice["id"].as_str().unwrap()
    );
    assert!(lines[0].starts_with(&first), "{}", lines[0]);
    assert!(lines[0].ends_with("  last login never"), "{}", lines[0]);
    assert!(lines[1].contains("bob@example.com"));
    let (ok, page, next) = cli(&s, &["users", "list", "--limit", "1"]);
    assert!(
        ok && page.lines().count() == 1 && page.contains("alice@"),
        "{page}"
    );
    let cursor = next
        .lines()
        .find_map(|l| l.trim().strip_prefix("next page: --cursor "))
        .unwrap_or_else(|| panic!("a cursor after a full page: {next}"));
    let (ok, page, next) = cli(&s, &["users", "list", "--limit", "1", "--cursor", cursor]);
    assert!(
        ok && page.lines().count() == 1 && page.contains("bob@"),
        "{page}"
    );
    assert!(
        !next.contains("next page"),
        "no cursor after the last page: {next}"
    );
    let (ok, page, _) = cli(&s, &["users", "list", "--q", "BOB", "--active", "true"]);
    assert!(
        ok && page.lines().count() == 1 && page.contains("bob@"),
        "{page}"
    );
    let (ok, _, err) = cli(&s, &["users", "list", "--cursor", "garbage"]);
    assert!(!ok && err.contains("cursor"), "{err}");

    let (ok, out, _) = cli(&s, &["users", "set-active", "ALICE@example.com", "false"]);
    assert!(ok && out.contains("alice@example.com  -"), "{out}");
    assert_eq!(
        try_login(&s, "alice@example.com", "alicepass").await.0,
        StatusCode::BAD_REQUEST
    );
    cli(&s, &["users", "set-active", "alice@example.com", "true"]);
    let (ok, out, _) = cli(&s, &["users", "set-superuser", "alice@example.com", "true"]);
    assert!(ok && out.contains("active,superuser"), "{out}");
    let (_, out, _) = cli(&s, &["users", "set-verified", "alice@example.com", "true"]);
    assert!(out.contains("active,superuser,verified"), "{out}");
    let token = login(&s, "alice@example.com", "alicepass").await;
    assert_eq!(get_me(&s, &token).await.1["is_superuser"], true);

    let (ok, out, _) = cli(&s, &["users", "delete", "bob@example.com"]);
    assert!(ok && out.contains("deleted bob@example.com"));
    let (ok, _, err) = cli(&s, &["users", "show", "bob@example.com"]);
    assert!(
        !ok && err.contains("no user has the e-mail address bob@example.com"),
        "{err}"
    );
    let (ok, _, err) = cli(&s, &["users", "set-active", "alice@example.com", "maybe"]);
    assert!(!ok && err.contains("invalid value"), "{err}");
}

#[test]
fn config_check_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut command = Command::new(BIN);
        command.current_dir(dir.path()).env_clear();
        for (k, v) in test_env(dir.path()) {
            command.env(k, v);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        command.args(["config", "check"]).output().unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("configuration is valid") && text.contains("backends: jwt, cookie"),
        "{text}"
    );
    assert!(
        !dir.path().join("users.db").exists(),
        "check opens no database"
    );
    let out = run(&[("AXUM_USERS_DB_TOKENS", "perhaps")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AXUM_USERS_DB_TOKENS"));
}

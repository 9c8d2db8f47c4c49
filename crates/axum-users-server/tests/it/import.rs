//! `import fastapi-users` against databases written by the real FastAPI Users 15
//! (tests/fastapi_users/make_db.py, in a venv of its own): the imported users sign in with their
//! old passwords over the real server (and are rehashed), their provider links are there, a JWT
//! FastAPI Users issued is accepted within the opt-in window only, and a second run changes
//! nothing. Skipped (SKIPPED:) when the Python packages cannot be installed, unless
//! FASTAPI_USERS_IMPORT_REQUIRED=1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{BIN, SECRET, Server, client, get_me, login, read, test_env, try_login};

/// The venv's python, installed once per test run; `None` when it cannot be.
fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fastapi-users-venv");
            let python = venv.join("bin").join("python");
            let requirements = repo().join("tests/fastapi_users/requirements.txt");
            let ready = venv.join(".installed");
            let wanted = std::fs::read_to_string(&requirements).ok()?;
            if std::fs::read_to_string(&ready).ok().as_deref() == Some(wanted.as_str()) {
                return Some(python);
            }
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", "-r"])
                    .arg(&requirements)
                    .status()
                    .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
            std::fs::write(&ready, wanted).ok()?;
            Some(python)
        })
        .as_deref()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The python, or `None` after printing SKIPPED (a panic when the harness is required).
fn python_or_skip(test: &str) -> Option<&'static Path> {
    let found = python();
    if found.is_none() {
        assert!(
            std::env::var("FASTAPI_USERS_IMPORT_REQUIRED").as_deref() != Ok("1"),
            "FASTAPI_USERS_IMPORT_REQUIRED=1 but the FastAPI Users packages cannot be installed"
        );
        println!(
            "SKIPPED: {test}: python3 -m venv / pip install of tests/fastapi_users/requirements.txt failed"
        );
    }
    found
}

/// Fills a FastAPI Users database with FastAPI Users' own code; returns what it wrote.
fn make_db(python: &Path, layout: &str, url: &str, dir: &Path) -> Value {
    let out = dir.join(format!("{layout}.json"));
    let status = Command::new(python)
        .arg(repo().join("tests/fastapi_users/make_db.py"))
        .args([
            "--layout", layout, "--url", url, "--secret", SECRET, "--out",
        ])
        .arg(&out)
        .status()
        .expect("run make_db.py");
    assert!(status.success(), "make_db.py failed for {layout} at {url}");
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Runs the binary's import in `dir` with the test environment plus `env`.
fn import(dir: &Path, env: &[(&str, String)], args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear();
    for (k, v) in test_env(dir) {
        command.env(k, v);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command
        .args(["import", "fastapi-users"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An RFC 3339 time `secs` from now.
fn rfc3339_in(secs: i64) -> String {
    let t = axum_users::now_unix() + secs;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil date of a day count (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn read_user(db_url: &str, email: &str) -> Option<axum_users::User<uuid::Uuid>> {
    let store = axum_users_sqlx::SqlStore::<uuid::Uuid>::connect(db_url)
        .await
        .unwrap();
    axum_users::UserStore::get_by_email(&store, email)
        .await
        .unwrap()
}

async fn hash_of(db_url: &str, email: &str) -> String {
    let store = axum_users_sqlx::SqlStore::<uuid::Uuid>::connect(db_url)
        .await
        .unwrap();
    let user = axum_users::UserStore::get_by_email(&store, email)
        .await
        .unwrap()
        .unwrap();
    user.hashed_password.0
}

async fn raw_provider_tokens(db_url: &str, email: &str) -> Vec<String> {
    let store = axum_users_sqlx::SqlStore::<uuid::Uuid>::connect(db_url)
        .await
        .unwrap();
    let user = axum_users::UserStore::get_by_email(&store, email)
        .await
        .unwrap()
        .unwrap();
    axum_users::OAuthAccountStore::list_oauth_accounts(&store, &user.id)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|a| {
            [Some(a.access_token), a.refresh_token]
                .into_iter()
                .flatten()
                .map(|t| t.expose().to_owned())
        })
        .collect()
}

/// The whole move: import (dry run, real, again), then the server with and without the window.
async fn moves_over(
    python: &Path,
    layout: &str,
    source_url: &str,
    py_url: &str,
    target: &[(&str, String)],
) {
    let dir = tempfile::tempdir().unwrap();
    let written = make_db(python, layout, py_url, dir.path());
    let mut env: Vec<(&str, String)> = vec![("AXUM_USERS_SECRET", SECRET.to_owned())];
    env.extend(target.iter().cloned());
    let target_url = env
        .iter()
        .find(|(k, _)| *k == "AXUM_USERS_DATABASE_URL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("users.db").display()));

    let (ok, out, err) = import(dir.path(), &env, &["--from", source_url, "--dry-run"]);
    assert!(ok, "{layout} dry run: {out}\n{err}");
    assert!(
        out.contains("users would copy: 5 (with 2 provider accounts)"),
        "{out}"
    );
    assert!(out.contains("1: invalid e-mail address"), "{out}");
    // dave@ and the look-alikes the source database took (a case-folding collation refuses some).
    let shared = written["look_alikes"].as_u64().unwrap();
    if shared > 1 {
        assert!(
            out.contains(&format!(
                "{shared}: e-mail address another source user shares"
            )),
            "the look-alikes of dave@, and dave@ himself: {out}"
        );
    }
    assert!(out.contains("dry run: nothing was written"), "{out}");

    let (ok, out, err) = import(dir.path(), &env, &["--from", source_url]);
    assert!(ok, "{layout} import: {out}\n{err}");
    assert!(
        out.contains("users copied: 5 (with 2 provider accounts)"),
        "the dry run wrote nothing, so the real run copies all: {out}"
    );
    let invalid = written["invalid_email_id"].as_str().unwrap();
    assert!(
        out.contains(&format!(
            "skipped {invalid} <not-an-address>: invalid e-mail address"
        )),
        "{out}"
    );

    if shared > 1 {
        assert!(
            out.contains("e-mail address another source user shares")
                && out.contains("skipped 00000000-0000-0000-0000-00000000000"),
            "the lowest id, a look-alike, does not take the address: {out}"
        );
        assert!(
            read_user(&target_url, "dave@example.com").await.is_none(),
            "no look-alike holds dave@'s address"
        );
    }

    let (ok, again, err) = import(dir.path(), &env, &["--from", source_url]);
    assert!(ok, "{again}\n{err}");
    assert!(again.contains("users copied: 0"), "{again}");
    assert!(
        again.contains("users present already (an earlier import): 5"),
        "{again}"
    );
    assert!(again.contains("nothing changed"), "{again}");

    let alice = &written["users"][0];
    assert_eq!(alice["email"], "alice@example.com");
    let jwt = written["jwt"].as_str().unwrap();
    let old_hash = hash_of(&target_url, "alice@example.com").await;
    assert!(
        old_hash.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"),
        "kept as FastAPI Users wrote it: {old_hash}"
    );
    for token in raw_provider_tokens(&target_url, "alice@example.com").await {
        assert!(
            !token.contains("gho_alice") && !token.contains("ghr_alice"),
            "provider tokens are encrypted at rest"
        );
    }

    // Without the opt-in the reference's JWT (no sid) is refused.
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = Server::start_in(tempfile::tempdir().unwrap(), &with_db(&pairs, &target_url));
    assert_eq!(get_me(&server, jwt).await.0, StatusCode::UNAUTHORIZED);
    drop(server);

    let until = rfc3339_in(3600);
    let mut open = with_db(&pairs, &target_url);
    open.push(("AXUM_USERS_ACCEPT_FASTAPI_USERS_JWT_UNTIL", until.as_str()));
    let server = Server::start_in(tempfile::tempdir().unwrap(), &open);
    let (status, me) = get_me(&server, jwt).await;
    assert_eq!(status, StatusCode::OK, "accepted inside the window: {me}");
    assert_eq!(me["id"], alice["id"], "the id was kept");

    // Old passwords sign in; the Argon2 hash of FastAPI Users' parameters is rehashed.
    let token = login(&server, "alice@example.com", "alice-old-password").await;
    let new_hash = hash_of(&target_url, "alice@example.com").await;
    assert_ne!(new_hash, old_hash);
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{new_hash}"
    );
    assert_eq!(
        get_me(&server, jwt).await.0,
        StatusCode::UNAUTHORIZED,
        "a new hash (rehash, password change, reset) voids the user's FastAPI Users JWTs"
    );
    let bob = login(&server, "bob@example.com", "bob-bcrypt-password").await;
    assert!(
        hash_of(&target_url, "bob@example.com")
            .await
            .starts_with("$argon2id$"),
        "bcrypt rehashed"
    );
    assert_eq!(get_me(&server, &bob).await.0, StatusCode::OK);
    let root = login(&server, "root@example.com", "root-old-password").await;
    assert_eq!(get_me(&server, &root).await.1["is_superuser"], true);
    let (status, body) = try_login(&server, "gone@example.com", "gone-old-password").await;
    assert_eq!(
        (status, &body["detail"]),
        (
            StatusCode::BAD_REQUEST,
            &Value::from("LOGIN_BAD_CREDENTIALS")
        ),
        "still inactive"
    );
    assert_eq!(
        try_login(&server, "alice@example.com", "wrong").await.0,
        StatusCode::BAD_REQUEST
    );

    // The provider link carried over (listed through the API, tokens decrypted by the manager).
    let (status, links) = read(
        client()
            .get(server.url("/users/me/oauth-accounts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{links}");
    assert_eq!(links[0]["oauth_name"], "github", "{links}");
    assert_eq!(links[0]["account_id"], "gh-1001", "{links}");
    assert_eq!(links[0]["expires_at"], 1_999_999_999, "{links}");
    let carol = &written["provider_only"];
    let store = axum_users_sqlx::SqlStore::<uuid::Uuid>::connect(&target_url)
        .await
        .unwrap();
    let linked = axum_users::OAuthAccountStore::get_by_oauth_account(&store, "google", "g-2002")
        .await
        .unwrap()
        .expect("the provider-only user's link");
    assert_eq!(linked.id.to_string(), carol["id"].as_str().unwrap());
    assert!(linked.is_verified);
}

fn with_db<'a>(pairs: &[(&'a str, &'a str)], url: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, _)| *k != "AXUM_USERS_DATABASE_URL")
        .copied()
        .collect();
    out.push(("AXUM_USERS_DATABASE_URL", url));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlalchemy_sqlite_database_moves_over() {
    let Some(python) = python_or_skip("a_sqlalchemy_sqlite_database_moves_over") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fastapi.db");
    let py_url = format!("sqlite+aiosqlite:///{}", file.display());
    moves_over(
        python,
        "sqlalchemy",
        &format!("sqlite://{}", file.display()),
        &py_url,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tortoise_sqlite_database_moves_over() {
    let Some(python) = python_or_skip("a_tortoise_sqlite_database_moves_over") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tortoise.db");
    let url = format!("sqlite://{}", file.display());
    moves_over(python, "tortoise", &url, &url, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlalchemy_postgres_database_moves_over_to_postgres() {
    let Some(server) = axum_users::testing::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let Some(python) = python_or_skip("a_sqlalchemy_postgres_database_moves_over_to_postgres")
    else {
        return;
    };
    let source = axum_users_sqlx::testing::TempDatabase::create(&server)
        .await
        .unwrap();
    let target = axum_users_sqlx::testing::TempDatabase::create(&server)
        .await
        .unwrap();
    let py_url = source
        .url
        .replacen("postgres://", "postgresql+asyncpg://", 1);
    moves_over(
        python,
        "sqlalchemy",
        &source.url,
        &py_url,
        &[("AXUM_USERS_DATABASE_URL", target.url.clone())],
    )
    .await;
    source.drop_database().await.unwrap();
    target.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlalchemy_mysql_database_moves_over_to_mysql() {
    let Some(server) = axum_users::testing::service_url("TEST_MYSQL_URL", "MySQL") else {
        return;
    };
    let Some(python) = python_or_skip("a_sqlalchemy_mysql_database_moves_over_to_mysql") else {
        return;
    };
    let source = axum_users_sqlx::testing::TempDatabase::create(&server)
        .await
        .unwrap();
    let target = axum_users_sqlx::testing::TempDatabase::create(&server)
        .await
        .unwrap();
    let py_url = source.url.replacen("mysql://", "mysql+aiomysql://", 1);
    moves_over(
        python,
        "sqlalchemy",
        &source.url,
        &py_url,
        &[("AXUM_USERS_DATABASE_URL", target.url.clone())],
    )
    .await;
    source.drop_database().await.unwrap();
    target.drop_database().await.unwrap();
}

#[test]
fn bad_sources_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("AXUM_USERS_SECRET", SECRET.to_owned())];
    let target = dir.path().join("users.db");
    // Unreachable database.
    let (ok, _, err) = import(
        dir.path(),
        &env,
        &["--from", "postgres://nobody@127.0.0.1:1/none"],
    );
    assert!(!ok);
    assert!(
        err.contains("cannot open the FastAPI Users database") && err.contains("--from"),
        "{err}"
    );
    // A SQLite file that is not there (and is not created).
    let missing = dir.path().join("missing.db");
    let (ok, _, err) = import(
        dir.path(),
        &env,
        &["--from", &format!("sqlite://{}", missing.display())],
    );
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists());
    // Not a FastAPI Users database (an empty SQLite file).
    let empty = dir.path().join("empty.db");
    std::fs::File::create(&empty).unwrap();
    let (ok, _, err) = import(
        dir.path(),
        &env,
        &["--from", &format!("sqlite://{}", empty.display())],
    );
    assert!(!ok);
    assert!(err.contains("no FastAPI Users user table"), "{err}");
    // A scheme no driver knows.
    let (ok, _, err) = import(dir.path(), &env, &["--from", "oracle://h/db"]);
    assert!(!ok);
    assert!(err.contains("sqlite:, postgres: or mysql:"), "{err}");
    assert!(!target.exists(), "the target database was not even created");
}

#[test]
fn the_jwt_window_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let far = rfc3339_in(200 * 86_400);
    let env = [
        ("AXUM_USERS_ACCEPT_FASTAPI_USERS_JWT_UNTIL", far),
        ("AXUM_USERS_SECRET", SECRET.to_owned()),
    ];
    let (ok, _, err) = import(dir.path(), &env, &["--from", "sqlite://x.db"]);
    assert!(!ok);
    assert!(
        err.contains("AXUM_USERS_ACCEPT_FASTAPI_USERS_JWT_UNTIL") && err.contains("90 days"),
        "{err}"
    );
}

/// A tampered source: a hash that would hold a hashing thread for hours at each login, and an
/// id with trailing padding as the last row (a trimmed cursor walked it for ever). The import
/// ends, copies both users, and the costly hash becomes an unusable password (reported).
#[tokio::test]
async fn a_tampered_source_cannot_pin_the_hashing_threads_or_loop() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("fastapi.db");
    let source_url = format!("sqlite://{}?mode=rwc", source.display());
    let mut db = sqlx::SqliteConnection::connect(&source_url).await.unwrap();
    sqlx::query(
        "CREATE TABLE \"user\" (id CHAR(36) PRIMARY KEY, email TEXT, hashed_password TEXT, \
         is_active BOOLEAN, is_superuser BOOLEAN, is_verified BOOLEAN)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let costly = "$argon2id$v=19$m=8,t=4294967295,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA";
    let plain = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA";
    let padded = "ffffffff-0000-4000-8000-000000000001 ";
    for (id, email, hash) in [
        (
            "00000000-0000-4000-8000-000000000001",
            "plain@example.com",
            plain,
        ),
        (padded, "costly@example.com", costly),
    ] {
        sqlx::query("INSERT INTO \"user\" VALUES (?, ?, ?, 1, 0, 1)")
            .bind(id)
            .bind(email)
            .bind(hash)
            .execute(&mut db)
            .await
            .unwrap();
    }
    db.close().await.unwrap();

    let env = [("AXUM_USERS_SECRET", SECRET.to_owned())];
    let from = format!("sqlite://{}", source.display());
    let (ok, out, err) = import(dir.path(), &env, &["--from", &from]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("users copied: 2"), "{out}");
    assert!(out.contains("users copied without a password: 1"), "{out}");
    assert!(
        out.contains(
            "ffffffff-0000-4000-8000-000000000001 <costly@example.com>: copied without a password"
        ),
        "the report names the user: {out}"
    );
    let target = format!("sqlite://{}", dir.path().join("users.db").display());
    let costly_user = read_user(&target, "costly@example.com").await.unwrap();
    assert!(!costly_user.hashed_password.is_usable());
    assert_eq!(
        costly_user.id.to_string(),
        padded.trim(),
        "the id is imported trimmed"
    );
    assert_eq!(hash_of(&target, "plain@example.com").await, plain);
}

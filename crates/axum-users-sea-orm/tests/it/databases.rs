//! Test databases: a fresh SQLite file, or a database of our own on the PostgreSQL / MariaDB
//! server named by `TEST_POSTGRES_URL` / `TEST_MYSQL_URL` (the sqlx suites use another one).

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// A database on one backend, and what keeps it alive.
pub struct TestDb {
    pub db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
}

/// A new SQLite file in a temporary folder.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    TestDb {
        db: connect(&url).await,
        _dir: Some(dir),
    }
}

/// The database `name` on the server of `$var`, created if missing; `None` (after saying
/// `SKIPPED`) when the variable is unset.
pub async fn server(var: &str, name: &str) -> Option<TestDb> {
    let Ok(url) = std::env::var(var) else {
        println!("SKIPPED: SeaORM store on {name} (set {var})");
        return None;
    };
    let admin = connect(&url).await;
    let postgres = url.starts_with("postgres");
    let exists = if postgres {
        admin
            .query_one_raw(sea_orm::Statement::from_string(
                admin.get_database_backend(),
                format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
            ))
            .await
            .unwrap()
            .is_some()
    } else {
        false
    };
    if !exists {
        let sql = if postgres {
            format!("CREATE DATABASE {name}")
        } else {
            format!("CREATE DATABASE IF NOT EXISTS {name}")
        };
        admin.execute_unprepared(&sql).await.unwrap();
    }
    admin.close().await.unwrap();
    let (server, _) = url.rsplit_once('/').unwrap();
    Some(TestDb {
        db: connect(&format!("{server}/{name}")).await,
        _dir: None,
    })
}

async fn connect(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.sqlx_logging(false).max_connections(8);
    Database::connect(options).await.unwrap()
}

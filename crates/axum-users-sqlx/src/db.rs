//! The one place that knows there are three databases: connecting, binding, running a statement,
//! reading a column, migrating. Everything above it is one set of queries written with `?`.

use std::str::FromStr;
use std::time::Duration;

use axum_users::{StoreError, now_unix};
use sqlx::{AssertSqlSafe, Row as _};

use crate::error::store_error;
use crate::id::{Dialect, IdValue};
use crate::schema::{MIGRATIONS_TABLE, Migration};

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("axum-users-sqlx needs at least one of the features `sqlite`, `postgres`, `mysql`");

/// How the store connects: pool size and the longest a database call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Most connections the pool opens (SQLite in memory always uses one).
    pub max_connections: u32,
    /// Longest wait for a connection or an answer; past it the call fails with
    /// [`StoreError::Unavailable`] (the API answers 503).
    pub timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// Sets the pool size.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets the timeout of every database call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The connection pool of one of the supported databases.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SqlPool {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// MySQL or MariaDB.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// Runs `$body` with `$p` bound to the concrete pool: the body is written once and compiled
/// for each database.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres($p) => $body,
            #[cfg(feature = "mysql")]
            SqlPool::MySql($p) => $body,
        }
    };
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl From<IdValue> for Arg {
    fn from(value: IdValue) -> Self {
        match value {
            IdValue::Text(s) => Arg::Text(s),
            IdValue::Int(i) => Arg::Int(i),
        }
    }
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(v) => query.bind(v.clone()),
                Arg::OptText(v) => query.bind(v.clone()),
                Arg::Int(v) => query.bind(*v),
                Arg::OptInt(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
            };
        }
        query
    }};
}

/// A result row of any of the databases.
pub(crate) enum Row {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::sqlite::SqliteRow),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::postgres::PgRow),
    #[cfg(feature = "mysql")]
    MySql(sqlx::mysql::MySqlRow),
}

#[cfg(feature = "sqlite")]
impl From<sqlx::sqlite::SqliteRow> for Row {
    fn from(row: sqlx::sqlite::SqliteRow) -> Self {
        Row::Sqlite(row)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::postgres::PgRow> for Row {
    fn from(row: sqlx::postgres::PgRow) -> Self {
        Row::Postgres(row)
    }
}

#[cfg(feature = "mysql")]
impl From<sqlx::mysql::MySqlRow> for Row {
    fn from(row: sqlx::mysql::MySqlRow) -> Self {
        Row::MySql(row)
    }
}

macro_rules! on_row {
    ($row:expr, $r:ident => $body:expr) => {
        match $row {
            #[cfg(feature = "sqlite")]
            Row::Sqlite($r) => $body,
            #[cfg(feature = "postgres")]
            Row::Postgres($r) => $body,
            #[cfg(feature = "mysql")]
            Row::MySql($r) => $body,
        }
    };
}

impl Row {
    pub(crate) fn text(&self, column: &str) -> Result<String, StoreError> {
        on_row!(self, r => r.try_get(column)).map_err(store_error)
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        on_row!(self, r => r.try_get(column)).map_err(store_error)
    }

    pub(crate) fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        on_row!(self, r => r.try_get(column)).map_err(store_error)
    }

    pub(crate) fn int(&self, column: &str) -> Result<i64, StoreError> {
        on_row!(self, r => r.try_get(column)).map_err(store_error)
    }

    pub(crate) fn flag(&self, column: &str) -> Result<bool, StoreError> {
        on_row!(self, r => r.try_get(column)).map_err(store_error)
    }

    /// An id column: an integer, or else text. Told apart by the value's type rather than by a
    /// failed integer read, whose error (a formatted message) cost some 2,000 instructions of
    /// every UUID-keyed read (callgrind, docs/benchmarks.md).
    pub(crate) fn id(&self, column: &str) -> Result<IdValue, StoreError> {
        if on_row!(self, r => holds_integer(r, column)) {
            self.int(column).map(IdValue::Int)
        } else {
            self.text(column).map(IdValue::Text)
        }
    }
}

/// Whether `column` of `row` holds a value that decodes as an `i64` (the check `try_get` makes
/// before decoding).
fn holds_integer<R>(row: &R, column: &str) -> bool
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database>,
{
    use sqlx::ValueRef;
    row.try_get_raw(column).is_ok_and(|value| {
        !value.is_null() && <i64 as sqlx::Type<R::Database>>::compatible(&value.type_info())
    })
}

/// The pool with its dialect and timeout: every call is bounded by the timeout and its errors
/// are already [`StoreError`]s.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) pool: SqlPool,
    pub(crate) timeout: Duration,
}

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        self.pool.dialect()
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        bounded(self.timeout, call).await
    }

    /// Begins a transaction for a read-check-write: on SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so that its reads cannot go stale before it writes; on PostgreSQL it
    /// runs at READ COMMITTED whatever the server's default, so that a statement after a row
    /// lock sees what the lock's previous holder committed. MySQL's locking reads
    /// (`FOR UPDATE`) always read the latest rows.
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        // Boxed: the pools' `begin` futures are large, and unboxed this one was copied whole
        // six times on its way into the timeout and the caller's state (a third of the
        // instructions of a refresh, callgrind, docs/benchmarks.md).
        let conn = self.timed(Box::pin(async {
            Ok(match &self.pool {
                #[cfg(feature = "sqlite")]
                SqlPool::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
                #[cfg(feature = "postgres")]
                SqlPool::Postgres(p) => {
                    TxConn::Postgres(p.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?)
                }
                #[cfg(feature = "mysql")]
                SqlPool::MySql(p) => TxConn::MySql(p.begin().await?),
            })
        }));
        Ok(Tx {
            conn: conn.await?,
            dialect: self.dialect(),
            timeout: self.timeout,
        })
    }

    /// Runs a statement; returns the number of rows it changed.
    pub(crate) async fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        let sql = AssertSqlSafe(self.dialect().placeholders(sql));
        self.timed(async {
            on_pool!(&self.pool, p => bind_all!(sqlx::query(sql), args)
                .execute(p)
                .await
                .map(|done| done.rows_affected()))
        })
        .await
    }

    /// The first row of a query, if any.
    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<Row>, StoreError> {
        let sql = AssertSqlSafe(self.dialect().placeholders(sql));
        self.timed(async {
            on_pool!(&self.pool, p => bind_all!(sqlx::query(sql), args)
                .fetch_optional(p)
                .await
                .map(|row| row.map(Row::from)))
        })
        .await
    }

    /// Every row of a query.
    pub(crate) async fn fetch_all(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, StoreError> {
        let sql = AssertSqlSafe(self.dialect().placeholders(sql));
        self.timed(async {
            on_pool!(&self.pool, p => bind_all!(sqlx::query(sql), args)
                .fetch_all(p)
                .await
                .map(|rows| rows.into_iter().map(Row::from).collect()))
        })
        .await
    }

    /// Applies the migrations not applied yet, each in a transaction (MySQL commits DDL at once,
    /// so there a failed migration may leave a partial schema). Nodes starting together take
    /// turns: PostgreSQL and MySQL hold a named lock meanwhile.
    pub(crate) async fn migrate(&self, migrations: Vec<Migration>) -> Result<usize, sqlx::Error> {
        let dialect = self.dialect();
        let (lock, unlock) = match dialect {
            Dialect::Sqlite => (None, None),
            Dialect::Postgres => (
                Some("SELECT pg_advisory_lock(7307451131)"),
                Some("SELECT pg_advisory_unlock(7307451131)"),
            ),
            Dialect::MySql => (
                Some("SELECT GET_LOCK('axum_users_migrations', 60)"),
                Some("SELECT RELEASE_LOCK('axum_users_migrations')"),
            ),
        };
        let select =
            dialect.placeholders("SELECT version FROM axum_users_migrations WHERE version = ?");
        let insert = dialect
            .placeholders("INSERT INTO axum_users_migrations (version, applied_at) VALUES (?, ?)");
        on_pool!(&self.pool, p => {
            let mut conn = p.acquire().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut *conn).await?;
            }
            let result = async {
                sqlx::query(MIGRATIONS_TABLE).execute(&mut *conn).await?;
                let mut applied = 0;
                for migration in migrations {
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    let done: Option<i64> = sqlx::query_scalar(AssertSqlSafe(select.clone()))
                        .bind(migration.version)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if done.is_some() {
                        continue;
                    }
                    for statement in migration.statements {
                        sqlx::query(AssertSqlSafe(statement)).execute(&mut *tx).await?;
                    }
                    sqlx::query(AssertSqlSafe(insert.clone()))
                        .bind(migration.version)
                        .bind(now_unix())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    applied += 1;
                }
                if let Some(unlock) = unlock {
                    sqlx::query(unlock).execute(&mut *conn).await?;
                }
                Ok(applied)
            }
            .await;
            if result.is_err() {
                // The session lock may still be held: this connection must not be reused.
                conn.close_on_drop();
            }
            result
        })
    }
}

/// Every call bounded by `timeout`, its errors as [`StoreError`]s.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(StoreError::Unavailable(
            format!(
                "the database did not answer within {} ms",
                timeout.as_millis()
            )
            .into(),
        )),
    }
}

enum TxConn {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    MySql(sqlx::Transaction<'static, sqlx::MySql>),
}

macro_rules! on_tx {
    ($conn:expr, $t:ident => $body:expr) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            TxConn::Sqlite($t) => $body,
            #[cfg(feature = "postgres")]
            TxConn::Postgres($t) => $body,
            #[cfg(feature = "mysql")]
            TxConn::MySql($t) => $body,
        }
    };
}

/// An open transaction (see [`Db::begin`]): the same calls as [`Db`], on one connection.
/// Dropped without [`Tx::commit`], it rolls back.
pub(crate) struct Tx {
    conn: TxConn,
    dialect: Dialect,
    timeout: Duration,
}

impl Tx {
    /// Runs a statement; returns the number of rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, StoreError> {
        let sql = AssertSqlSafe(self.dialect.placeholders(sql));
        bounded(self.timeout, async {
            on_tx!(&mut self.conn, t => bind_all!(sqlx::query(sql), args)
                .execute(&mut **t)
                .await
                .map(|done| done.rows_affected()))
        })
        .await
    }

    /// The first row of a query, if any.
    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Option<Row>, StoreError> {
        let sql = AssertSqlSafe(self.dialect.placeholders(sql));
        bounded(self.timeout, async {
            on_tx!(&mut self.conn, t => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **t)
                .await
                .map(|row| row.map(Row::from)))
        })
        .await
    }

    /// Every row of a query.
    pub(crate) async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<Row>, StoreError> {
        let sql = AssertSqlSafe(self.dialect.placeholders(sql));
        bounded(self.timeout, async {
            on_tx!(&mut self.conn, t => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **t)
                .await
                .map(|rows| rows.into_iter().map(Row::from).collect()))
        })
        .await
    }

    /// Makes the transaction's writes permanent.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        bounded(self.timeout, async {
            on_tx!(self.conn, t => t.commit().await)
        })
        .await
    }

    /// Ends the transaction without writing, releasing its locks now rather than when the
    /// connection is next used.
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        bounded(self.timeout, async {
            on_tx!(self.conn, t => t.rollback().await)
        })
        .await
    }
}

impl SqlPool {
    /// The dialect this pool speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(_) => Dialect::Postgres,
            #[cfg(feature = "mysql")]
            SqlPool::MySql(_) => Dialect::MySql,
        }
    }

    /// Connections open now and, of those, idle: `(open, idle)` (for metrics).
    pub fn connections(&self) -> (u32, u32) {
        on_pool!(self, p => (p.size(), u32::try_from(p.num_idle()).unwrap_or(u32::MAX)))
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }

    /// Connects to the database of `url`, chosen by its scheme: `sqlite:`, `postgres:` /
    /// `postgresql:`, `mysql:` / `mariadb:`.
    ///
    /// # Errors
    /// [`sqlx::Error::Configuration`] for an unknown scheme or one this build was compiled
    /// without; else the driver's error.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, sqlx::Error> {
        let unsupported = |what: &str| {
            sqlx::Error::Configuration(
                format!("{what}; use a sqlite:, postgres: or mysql: URL").into(),
            )
        };
        match Dialect::of_url(url) {
            #[cfg(feature = "sqlite")]
            Some(Dialect::Sqlite) => connect_sqlite(url, options).await,
            #[cfg(feature = "postgres")]
            Some(Dialect::Postgres) => {
                let connect = sqlx::postgres::PgConnectOptions::from_str(url)?;
                let pool = pool_options(options).connect_with(connect).await?;
                Ok(SqlPool::Postgres(pool))
            }
            #[cfg(feature = "mysql")]
            Some(Dialect::MySql) => {
                let url = match url.get(..8) {
                    Some(scheme) if scheme.eq_ignore_ascii_case("mariadb:") => {
                        format!("mysql:{}", &url[8..])
                    }
                    _ => url.to_owned(),
                };
                let connect = sqlx::mysql::MySqlConnectOptions::from_str(&url)?;
                let pool = pool_options(options).connect_with(connect).await?;
                Ok(SqlPool::MySql(pool))
            }
            #[allow(unreachable_patterns)]
            Some(dialect) => Err(unsupported(&format!(
                "this build has no {dialect:?} support (cargo feature of axum-users-sqlx)"
            ))),
            None => Err(unsupported("unknown database URL scheme")),
        }
    }
}

fn pool_options<DB: sqlx::Database>(options: StoreOptions) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(options.max_connections)
        .min_connections(0)
        .acquire_timeout(options.timeout)
        .idle_timeout(Some(Duration::from_secs(600)))
        .max_lifetime(Some(Duration::from_secs(1800)))
        .test_before_acquire(true)
}

#[cfg(feature = "sqlite")]
async fn connect_sqlite(url: &str, options: StoreOptions) -> Result<SqlPool, sqlx::Error> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

    let memory = url.contains(":memory:") || url.contains("mode=memory");
    let connect = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(options.timeout)
        .journal_mode(if memory {
            SqliteJournalMode::Memory
        } else {
            SqliteJournalMode::Wal
        })
        .synchronous(SqliteSynchronous::Normal);
    // An in-memory database lives in one connection, kept for ever.
    let pool = if memory {
        pool_options(options)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool_options(options).max_connections(options.max_connections.min(8))
    };
    Ok(SqlPool::Sqlite(pool.connect_with(connect).await?))
}

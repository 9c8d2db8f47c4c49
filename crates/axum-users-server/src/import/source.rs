//! Reading a FastAPI Users database: the SQLAlchemy adapter's tables (`user`, `oauth_account`)
//! or the Tortoise models' (`user`, `oauthaccount`), on SQLite, PostgreSQL or MySQL.

use anyhow::{Result, bail};
use axum_users_sqlx::{Dialect, SqlPool};
use sqlx::AssertSqlSafe;

/// Which adapter wrote the database (the user table is the same for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `fastapi-users-db-sqlalchemy`: `user` and `oauth_account`.
    SqlAlchemy,
    /// The Tortoise base models: `user` and `oauthaccount` (foreign key column `user_id`).
    Tortoise,
    /// A `user` table and no provider-account table (either adapter without OAuth).
    UsersOnly,
}

impl Layout {
    /// The provider-account table, if any.
    fn oauth_table(self) -> Option<&'static str> {
        match self {
            Layout::SqlAlchemy => Some("oauth_account"),
            Layout::Tortoise => Some("oauthaccount"),
            Layout::UsersOnly => None,
        }
    }

    /// How the report names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Layout::SqlAlchemy => "SQLAlchemy adapter (tables user, oauth_account)",
            Layout::Tortoise => "Tortoise models (tables user, oauthaccount)",
            Layout::UsersOnly => "a user table without provider accounts",
        }
    }
}

/// One row of the user table, as text and flags.
#[derive(Debug, Clone)]
pub(crate) struct SourceUser {
    /// The id as imported: trimmed of the padding some column types add.
    pub(crate) id: String,
    /// The id exactly as the source stores it, where the next page starts: a trimmed id could
    /// sort before its own row (`'x ' > 'x'`) and walk the same row for ever.
    pub(crate) cursor: String,
    pub(crate) email: String,
    pub(crate) hashed_password: String,
    pub(crate) is_active: bool,
    pub(crate) is_superuser: bool,
    pub(crate) is_verified: bool,
}

/// One row of the provider-account table.
#[derive(Debug, Clone)]
pub(crate) struct SourceAccount {
    pub(crate) user_id: String,
    pub(crate) oauth_name: String,
    pub(crate) access_token: String,
    pub(crate) expires_at: Option<i64>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) account_id: String,
    pub(crate) account_email: String,
}

type UserRow = (String, String, String, bool, bool, bool);
type AccountRow = (
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
    String,
);

/// Runs a `query_as` on whichever pool it is, binding text arguments.
macro_rules! fetch_all {
    ($pool:expr, $sql:expr, $row:ty, $args:expr) => {
        match $pool {
            SqlPool::Sqlite(p) => {
                let mut q = sqlx::query_as::<_, $row>(AssertSqlSafe($sql));
                for a in $args {
                    q = q.bind(a.clone());
                }
                q.fetch_all(p).await
            }
            SqlPool::Postgres(p) => {
                let mut q = sqlx::query_as::<_, $row>(AssertSqlSafe($sql));
                for a in $args {
                    q = q.bind(a.clone());
                }
                q.fetch_all(p).await
            }
            SqlPool::MySql(p) => {
                let mut q = sqlx::query_as::<_, $row>(AssertSqlSafe($sql));
                for a in $args {
                    q = q.bind(a.clone());
                }
                q.fetch_all(p).await
            }
            _ => Err(sqlx::Error::Configuration(
                "this build has no driver for this database".into(),
            )),
        }
    };
}

/// A FastAPI Users database, opened for reading.
pub(crate) struct Source {
    pool: SqlPool,
    dialect: Dialect,
    pub(crate) layout: Layout,
}

impl Source {
    /// Finds the layout of the database behind `pool`.
    ///
    /// # Errors
    /// When there is no FastAPI Users user table, or its ids are not UUIDs.
    pub(crate) async fn open(pool: SqlPool) -> Result<Self> {
        let dialect = pool.dialect();
        let mut source = Source {
            pool,
            dialect,
            layout: Layout::UsersOnly,
        };
        let probe = format!(
            "SELECT {} FROM {} LIMIT 1",
            source.user_columns(),
            source.quote("user")
        );
        let first = match fetch_all!(&source.pool, probe, UserRow, Vec::<String>::new()) {
            Ok(rows) => rows,
            Err(e) => bail!(
                "no FastAPI Users user table here: `user` with the columns id, email, \
                 hashed_password, is_active, is_superuser, is_verified cannot be read ({e}); \
                 point --from at the database the FastAPI Users app uses"
            ),
        };
        if let Some((id, ..)) = first.first()
            && uuid::Uuid::try_parse(id.trim()).is_err()
        {
            if id.trim().parse::<i64>().is_ok() {
                bail!(
                    "the FastAPI Users users have integer ids; axum-users-server keeps UUID ids, \
                     so the ids (and the JWTs that name them) cannot be kept. Either run axum-users \
                     as a library with SqlStore<i64> and import with SqlStore::import_users, or \
                     give the users UUIDs in the FastAPI Users database first (their old JWTs are \
                     then void)"
                );
            }
            bail!("the user table's ids are neither UUIDs nor integers (first id: {id:?})");
        }
        for layout in [Layout::SqlAlchemy, Layout::Tortoise] {
            source.layout = layout;
            if source.accounts_of(&[]).await.is_ok() {
                return Ok(source);
            }
        }
        source.layout = Layout::UsersOnly;
        Ok(source)
    }

    fn quote(&self, table: &str) -> String {
        match self.dialect {
            Dialect::MySql => format!("`{table}`"),
            _ => format!("\"{table}\""),
        }
    }

    fn text(&self, column: &str) -> String {
        match self.dialect {
            Dialect::MySql => format!("CAST({column} AS CHAR)"),
            _ => format!("CAST({column} AS TEXT)"),
        }
    }

    fn user_columns(&self) -> String {
        format!(
            "{}, email, hashed_password, is_active, is_superuser, is_verified",
            self.text("id")
        )
    }

    /// A text argument compared with an id column (PostgreSQL keeps UUIDs natively).
    fn id_arg(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Postgres => format!("CAST(${n} AS UUID)"),
            _ => "?".into(),
        }
    }

    /// How many users there are.
    pub(crate) async fn count_users(&self) -> Result<u64> {
        let sql = format!(
            "SELECT {} FROM {}",
            self.text("COUNT(*)"),
            self.quote("user")
        );
        let rows = fetch_all!(&self.pool, sql, (String,), Vec::<String>::new())?;
        Ok(rows
            .first()
            .and_then(|(n,)| n.trim().parse().ok())
            .unwrap_or(0))
    }

    /// The next `limit` users after `after` (by id), in id order.
    pub(crate) async fn users_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SourceUser>> {
        let mut sql = format!("SELECT {} FROM {}", self.user_columns(), self.quote("user"));
        let mut args = Vec::new();
        if let Some(after) = after {
            sql.push_str(&format!(" WHERE id > {}", self.id_arg(1)));
            args.push(after.to_owned());
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        let rows = fetch_all!(&self.pool, sql, UserRow, &args)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, email, hashed_password, is_active, is_superuser, is_verified)| SourceUser {
                    id: id.trim().to_owned(),
                    cursor: id,
                    email,
                    hashed_password,
                    is_active,
                    is_superuser,
                    is_verified,
                },
            )
            .collect())
    }

    /// The provider accounts of these users (none without a provider-account table).
    pub(crate) async fn accounts_of(&self, user_ids: &[String]) -> Result<Vec<SourceAccount>> {
        let Some(table) = self.layout.oauth_table() else {
            return Ok(Vec::new());
        };
        let wide = match self.dialect {
            Dialect::MySql => "SIGNED",
            _ => "BIGINT",
        };
        let filter = if user_ids.is_empty() {
            " LIMIT 1".to_owned()
        } else {
            let marks: Vec<String> = (1..=user_ids.len()).map(|n| self.id_arg(n)).collect();
            format!(" WHERE user_id IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT {}, oauth_name, access_token, CAST(expires_at AS {wide}), refresh_token, \
             account_id, account_email FROM {}{filter}",
            self.text("user_id"),
            self.quote(table)
        );
        let rows = fetch_all!(&self.pool, sql, AccountRow, user_ids)?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    user_id,
                    oauth_name,
                    access_token,
                    expires_at,
                    refresh_token,
                    account_id,
                    account_email,
                )| SourceAccount {
                    user_id: user_id.trim().to_owned(),
                    oauth_name,
                    access_token,
                    expires_at,
                    refresh_token,
                    account_id,
                    account_email,
                },
            )
            .collect())
    }
}

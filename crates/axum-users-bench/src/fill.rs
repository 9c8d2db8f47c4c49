//! `--users N`: fills the database with N users before the scenarios, fast, so that the costs can
//! be compared at a thousand and at a million users.
//!
//! The rows are made by the database itself, in batches of one statement each (a recursive CTE on
//! SQLite, `generate_series` on PostgreSQL): `fill-<i>@bench.example.com` with an id of their own
//! and the password hash of a user the server registered (so they could sign in). A progress line
//! goes to stderr after every batch. The database's size is read before and after, for the bytes
//! one user costs.

use std::time::Instant;

use anyhow::{Context, Result};
use sqlx::Row;

use crate::floor::FloorPool;

/// Rows per statement.
const BATCH: u64 = 50_000;

/// What a fill did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filled {
    /// Users added.
    pub users: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// Database bytes per user added (size after minus size before, over `users`).
    pub bytes_per_user: f64,
}

/// Adds `n` users to the database at `url`, with the password hash of the user `template_email`.
///
/// # Errors
/// When the database cannot be reached or an insert fails.
pub async fn fill(url: &str, n: u64, template_email: &str) -> Result<Filled> {
    let pool = FloorPool::connect(url).await?;
    let before = size(&pool).await?;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let end = (done + BATCH).min(n);
        insert(&pool, done, end, template_email)
            .await
            .with_context(|| format!("inserting users {done}..{end}"))?;
        done = end;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[fill] {done} of {n} users ({:.0}%), {rate:.0} users/s   ",
            done as f64 / n as f64 * 100.0
        );
    }
    if n > 0 {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    if let FloorPool::Sqlite(pool) = &pool {
        // Into the main file, for its size.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
    }
    let after = size(&pool).await?;
    match &pool {
        FloorPool::Sqlite(p) => p.close().await,
        FloorPool::Postgres(p) => p.close().await,
    }
    Ok(Filled {
        users: n,
        seconds,
        bytes_per_user: if n == 0 {
            0.0
        } else {
            after.saturating_sub(before) as f64 / n as f64
        },
    })
}

/// Makes the user whose address is `email` a superuser, for the admin listing's scenario (the
/// API makes none by itself; the server's CLI would, at the cost of a process and a hash).
///
/// # Errors
/// When the database cannot be reached or no such user exists.
pub async fn promote(url: &str, email: &str) -> Result<()> {
    let pool = FloorPool::connect(url).await?;
    let updated = match &pool {
        FloorPool::Sqlite(p) => {
            sqlx::query("UPDATE users SET is_superuser = 1 WHERE email_key = ?")
                .bind(email)
                .execute(p)
                .await?
                .rows_affected()
        }
        FloorPool::Postgres(p) => {
            sqlx::query("UPDATE users SET is_superuser = TRUE WHERE email_key = $1")
                .bind(email)
                .execute(p)
                .await?
                .rows_affected()
        }
    };
    match &pool {
        FloorPool::Sqlite(p) => p.close().await,
        FloorPool::Postgres(p) => p.close().await,
    }
    anyhow::ensure!(updated == 1, "no user {email} to make a superuser");
    Ok(())
}

/// Users `start..end` in one statement.
async fn insert(pool: &FloorPool, start: u64, end: u64, template: &str) -> Result<()> {
    // Only numbers reach the SQL text; the template's address is bound.
    let (start, last) = (start as i64, end as i64 - 1);
    match pool {
        FloorPool::Sqlite(pool) => {
            let sql = format!(
                "WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
                 INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
                 is_verified, fields) \
                 SELECT printf('00000000-0000-4000-8000-%012x', i), \
                 'fill-' || i || '@bench.example.com', 'fill-' || i || '@bench.example.com', \
                 t.hashed_password, 1, 0, 1, t.fields \
                 FROM n, (SELECT hashed_password, fields FROM users WHERE email_key = ?) AS t"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(template)
                .execute(pool)
                .await?;
        }
        FloorPool::Postgres(pool) => {
            let sql = format!(
                "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
                 is_verified, fields) \
                 SELECT '00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'), \
                 'fill-' || i || '@bench.example.com', 'fill-' || i || '@bench.example.com', \
                 t.hashed_password, TRUE, FALSE, TRUE, t.fields \
                 FROM generate_series({start}::bigint, {last}::bigint) AS i, \
                 (SELECT hashed_password, fields FROM users WHERE email_key = $1) AS t"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(template)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// The database's size in bytes.
async fn size(pool: &FloorPool) -> Result<u64> {
    let bytes: i64 = match pool {
        FloorPool::Sqlite(pool) => sqlx::query(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        )
        .fetch_one(pool)
        .await?
        .try_get(0)?,
        FloorPool::Postgres(pool) => sqlx::query("SELECT pg_database_size(current_database())")
            .fetch_one(pool)
            .await?
            .try_get(0)?,
    };
    Ok(u64::try_from(bytes).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fills_a_sqlite_database_with_users_that_share_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("f.db").display());
        let FloorPool::Sqlite(pool) = FloorPool::connect(&url).await.unwrap() else {
            unreachable!()
        };
        sqlx::query(
            "CREATE TABLE users (id CHAR(36) PRIMARY KEY NOT NULL, email VARCHAR(320) NOT NULL, \
             email_key VARCHAR(320) NOT NULL UNIQUE, hashed_password VARCHAR(1024) NOT NULL, \
             is_active BOOLEAN NOT NULL, is_superuser BOOLEAN NOT NULL, \
             is_verified BOOLEAN NOT NULL, fields TEXT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO users VALUES ('t', 't@x', 't@x', '$argon2id$h', 1, 0, 0, '{}')")
            .execute(&pool)
            .await
            .unwrap();
        let filled = fill(&url, 120_001, "t@x").await.unwrap();
        assert_eq!(filled.users, 120_001);
        assert!(filled.bytes_per_user > 50.0, "{filled:?}");
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT id), MIN(hashed_password), MAX(hashed_password) \
             FROM users WHERE email LIKE 'fill-%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(row.get::<i64, _>(0), 120_001);
        assert_eq!(row.get::<i64, _>(1), 120_001);
        assert_eq!(row.get::<String, _>(2), "$argon2id$h");
        assert_eq!(row.get::<String, _>(3), "$argon2id$h");
        let last: String =
            sqlx::query("SELECT id FROM users WHERE email = 'fill-120000@bench.example.com'")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
        assert_eq!(last, "00000000-0000-4000-8000-00000001d4c0");

        promote(&url, "t@x").await.unwrap();
        let superusers: i64 = sqlx::query("SELECT COUNT(*) FROM users WHERE is_superuser")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(superusers, 1);
        assert!(promote(&url, "nobody@x").await.is_err());
    }
}

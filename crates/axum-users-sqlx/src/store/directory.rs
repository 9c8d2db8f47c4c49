//! The users directory (migration 6): times and the keyset-paginated listing.

use axum_users::auth::BoxFuture;
use axum_users::{
    StoreError, UserCursor, UserDirectory, UserFields, UserPage, UserQuery, UserSort, UserTimes,
};

use super::{SqlStore, USER_COLUMNS, user_from_row};
use crate::Dialect;
use crate::db::{Arg, Row};
use crate::id::SqlId;
use crate::schema::{RARE_FILTERS, bool_literal};

fn times_from_row(row: &Row) -> Result<UserTimes, StoreError> {
    Ok(UserTimes {
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        last_login_at: row.opt_int("last_login_at")?,
    })
}

/// `q` as a `LIKE` pattern: `%q%` with `%`, `_` and the escape character `!` escaped.
pub(crate) fn contains_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The `SELECT` of one page: filters, the keyset condition after the cursor, the index's
/// order and `LIMIT page + 1` (the extra row says whether there is a next page). `None` when
/// the cursor names an id this store cannot hold (no user lies after it).
///
/// A flag's rare value (superusers, deactivated, unverified: [`RARE_FILTERS`]) is written into
/// the text, so that the partial indexes of migration 10 serve it; its common value is bound
/// and walks the order's index. `q` is a `LIKE '%q%'`, which no index serves: it is checked on
/// each row of the walk until the page is full (see `docs/admin.md` for what that costs).
pub(crate) fn list_sql<Id: SqlId>(
    dialect: Dialect,
    query: &UserQuery,
) -> Option<(String, Vec<Arg>)> {
    let mut conditions: Vec<String> = Vec::new();
    let mut args = Vec::new();
    if let Some(q) = query.needle() {
        conditions.push("email_key LIKE ? ESCAPE '!'".into());
        args.push(Arg::Text(contains_pattern(&q)));
    }
    for (_, column, rare) in RARE_FILTERS {
        let value = match column {
            "is_active" => query.is_active,
            "is_verified" => query.is_verified,
            _ => query.is_superuser,
        };
        match value {
            Some(value) if value == rare && dialect != Dialect::MySql => {
                conditions.push(format!("{column} = {}", bool_literal(dialect, value)));
            }
            Some(value) => {
                conditions.push(format!("{column} = ?"));
                args.push(Arg::Bool(value));
            }
            None => {}
        }
    }
    if let Some(after) = query.created_after {
        conditions.push("created_at >= ?".into());
        args.push(Arg::Int(after));
    }
    if let Some(before) = query.created_before {
        conditions.push("created_at < ?".into());
        args.push(Arg::Int(before));
    }
    let descending = query.sort.descending();
    let (beyond, direction) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match &query.after {
        Some(UserCursor::CreatedAt { at, id }) => {
            let id = Id::parse(id)?;
            // A row-value comparison: PostgreSQL serves it as one index range of
            // `(created_at, id)`; the expanded `a > ? OR (a = ? AND b > ?)` it turns into a
            // bitmap OR and a sort (seen in `every_order_walks_an_index_on_postgres`).
            conditions.push(format!("(created_at, id) {beyond} (?, ?)"));
            args.extend([Arg::Int(*at), id.to_value().into()]);
        }
        Some(UserCursor::Email(key)) => {
            conditions.push(format!("email_key {beyond} ?"));
            args.push(Arg::Text(key.clone()));
        }
        Some(_) | None => {}
    }
    let order = match query.sort {
        UserSort::Email | UserSort::EmailDesc => format!("email_key {direction}"),
        _ => format!("created_at {direction}, id {direction}"),
    };
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    args.push(Arg::Int(i64::from(query.page_size()) + 1));
    let sql = format!(
        "SELECT {USER_COLUMNS}, email_key, created_at, updated_at, last_login_at FROM users\
         {filter} ORDER BY {order} LIMIT ?"
    );
    Some((sql, args))
}

impl<Id: SqlId, F: UserFields> UserDirectory<Id, F> for SqlStore<Id, F> {
    fn list_users<'a>(
        &'a self,
        query: &'a UserQuery,
    ) -> BoxFuture<'a, Result<UserPage<Id, F>, StoreError>> {
        Box::pin(async move {
            let Some((sql, args)) = list_sql::<Id>(self.dialect(), query) else {
                return Ok(UserPage {
                    items: Vec::new(),
                    next_cursor: None,
                });
            };
            let rows = self.db.fetch_all(&sql, &args).await?;
            let size = query.page_size() as usize;
            let more = rows.len() > size;
            let items = rows
                .iter()
                .take(size)
                .map(|row| Ok((user_from_row(row)?, times_from_row(row)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            let next_cursor = more
                .then(|| items.last())
                .flatten()
                .map(|(user, times)| UserCursor::after(query.sort, user, times));
            Ok(UserPage { items, next_cursor })
        })
    }

    fn user_times<'a>(
        &'a self,
        id: &'a Id,
    ) -> BoxFuture<'a, Result<Option<UserTimes>, StoreError>> {
        Box::pin(async move {
            let row = self
                .db
                .fetch_optional(
                    "SELECT created_at, updated_at, last_login_at FROM users WHERE id = ?",
                    &[id.to_value().into()],
                )
                .await?;
            row.map(|r| times_from_row(&r)).transpose()
        })
    }

    fn record_login<'a>(&'a self, id: &'a Id, at: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "UPDATE users SET last_login_at = ? WHERE id = ?",
                    &[Arg::Int(at), id.to_value().into()],
                )
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contains_pattern_escapes_the_wildcards() {
        assert_eq!(contains_pattern("a_b%c!d"), "%a!_b!%c!!d%");
        assert_eq!(contains_pattern("ada"), "%ada%");
    }

    #[test]
    fn pages_read_one_row_more_than_they_show_in_index_order() {
        let query = UserQuery {
            limit: 10,
            sort: UserSort::CreatedAtDesc,
            after: Some(UserCursor::CreatedAt {
                at: 5,
                id: "7".into(),
            }),
            ..UserQuery::default()
        };
        let (sql, args) = list_sql::<i64>(Dialect::Sqlite, &query).unwrap();
        assert!(
            sql.ends_with(
                "WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?"
            ),
            "{sql}"
        );
        assert!(matches!(args.last(), Some(Arg::Int(11))));
        let bad = UserQuery {
            after: Some(UserCursor::CreatedAt {
                at: 5,
                id: "not a number".into(),
            }),
            ..UserQuery::default()
        };
        assert!(list_sql::<i64>(Dialect::Sqlite, &bad).is_none());
    }

    /// The plan of each order, first page and a later one, of the queries `filtered` makes
    /// from a sort and a cursor.
    async fn plans(
        store: &SqlStore<uuid::Uuid>,
        filtered: impl Fn(UserSort, Option<UserCursor>) -> UserQuery,
    ) -> Vec<String> {
        let (explain, column) = match store.dialect() {
            crate::Dialect::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            _ => ("EXPLAIN ", "QUERY PLAN"),
        };
        let mut plans = Vec::new();
        for sort in [
            UserSort::CreatedAt,
            UserSort::CreatedAtDesc,
            UserSort::Email,
            UserSort::EmailDesc,
        ] {
            for after in [
                None,
                Some(match sort {
                    UserSort::Email | UserSort::EmailDesc => {
                        UserCursor::Email("m@example.com".into())
                    }
                    _ => UserCursor::CreatedAt {
                        at: 1,
                        id: uuid::Uuid::nil().to_string(),
                    },
                }),
            ] {
                let query = filtered(sort, after);
                let (sql, args) = list_sql::<uuid::Uuid>(store.dialect(), &query).unwrap();
                let rows = store
                    .db
                    .fetch_all(&format!("{explain}{sql}"), &args)
                    .await
                    .unwrap();
                let plan: Vec<String> = rows.iter().map(|r| r.text(column).unwrap()).collect();
                plans.push(format!("{sort:?}: {}", plan.join(" | ")));
            }
        }
        plans
    }

    /// The common filters: active users whose address holds `example`.
    fn common(sort: UserSort, after: Option<UserCursor>) -> UserQuery {
        UserQuery {
            sort,
            after,
            is_active: Some(true),
            q: Some("example".into()),
            ..UserQuery::default()
        }
    }

    /// Each rare filter of [`RARE_FILTERS`] alone, by its index's name, in every order.
    async fn rare_plans(store: &SqlStore<uuid::Uuid>) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for (name, column, rare) in RARE_FILTERS {
            let only = |sort, after| {
                let mut query = UserQuery {
                    sort,
                    after,
                    ..UserQuery::default()
                };
                match column {
                    "is_active" => query.is_active = Some(rare),
                    "is_verified" => query.is_verified = Some(rare),
                    _ => query.is_superuser = Some(rare),
                }
                query
            };
            for plan in plans(store, only).await {
                let index = if plan.starts_with("Email") {
                    format!("users_{name}_email")
                } else {
                    format!("users_{name}_created_at")
                };
                all.push((index, plan));
            }
        }
        all
    }

    /// Fills the users table with `n` active, verified users and one superuser, deactivated
    /// and unverified, so that the planners price a walk of the whole table as what it is.
    async fn fill(store: &SqlStore<uuid::Uuid>, n: i64) {
        let (series, yes, no) = match store.dialect() {
            crate::Dialect::Postgres => {
                (format!("generate_series(1, {n}) AS s(i)"), "TRUE", "FALSE")
            }
            _ => (
                format!(
                    "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c \
                     WHERE i < {n}) SELECT i FROM c) AS s"
                ),
                "1",
                "0",
            ),
        };
        let filled = format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, created_at, updated_at) \
             SELECT 'u' || i, 'u' || i || '@example.com', 'u' || i || '@example.com', 'h', \
             {yes}, {no}, {yes}, '{{}}', i, i FROM {series}"
        );
        store.db.execute(&filled, &[]).await.unwrap();
        let rare = format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, created_at, updated_at) \
             VALUES ('r', 'r@example.com', 'r@example.com', 'h', {no}, {yes}, {no}, '{{}}', 0, 0)"
        );
        store.db.execute(&rare, &[]).await.unwrap();
        store.db.execute("ANALYZE", &[]).await.unwrap();
    }

    #[tokio::test]
    async fn every_order_walks_an_index_on_sqlite() {
        let store = SqlStore::<uuid::Uuid>::connect("sqlite::memory:")
            .await
            .unwrap();
        store.migrate().await.unwrap();
        fill(&store, 2000).await;
        for plan in plans(&store, common).await {
            assert!(!plan.contains("TEMP B-TREE"), "a sort of the table: {plan}");
            assert!(
                plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"),
                "{plan}"
            );
        }
        for (index, plan) in rare_plans(&store).await {
            assert!(!plan.contains("TEMP B-TREE"), "a sort of the table: {plan}");
            assert!(plan.contains(&index), "not walking {index}: {plan}");
        }
    }

    #[tokio::test]
    async fn every_order_walks_an_index_on_postgres() {
        let Some(server) = axum_users::testing::service_url("TEST_POSTGRES_URL", "PostgreSQL")
        else {
            return;
        };
        let db = crate::testing::TempDatabase::create(&server).await.unwrap();
        // One connection, so the setting below holds for every statement.
        let options = crate::StoreOptions::default().with_max_connections(1);
        let store = SqlStore::<uuid::Uuid>::connect_with(&db.url, options)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        fill(&store, 2000).await;
        // Ask whether an index can serve the order: with sorts and the other scans priced
        // out, a plan that still sorts could not be served by an index scan.
        for setting in ["enable_seqscan", "enable_bitmapscan", "enable_sort"] {
            let sql = format!("SET {setting} = off");
            store.db.execute(&sql, &[]).await.unwrap();
        }
        for plan in plans(&store, common).await {
            assert!(!plan.contains("Sort"), "a sort of the table: {plan}");
            assert!(plan.contains("Index Scan"), "{plan}");
        }
        for (index, plan) in rare_plans(&store).await {
            assert!(!plan.contains("Sort"), "a sort of the table: {plan}");
            assert!(plan.contains(&index), "not walking {index}: {plan}");
        }
        store.pool().close().await;
        db.drop_database().await.unwrap();
    }
}

//! The core's `UserDirectory` over the user entity's times (`created_at`, `updated_at`,
//! `last_login_at`): the admin listing, one walk of an index from the cursor.
//!
//! A page reads `limit + 1` rows in the order of an index (`(created_at, id)`, index
//! `user_created_at_id` of the base schema, or `email_key`, its unique index) after a keyset
//! condition; the extra row says whether there is a next page.

use axum_users::auth::BoxFuture;
use axum_users::{
    StoreError, UserCursor, UserDirectory, UserId, UserPage, UserQuery, UserSort, UserTimes,
};
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, DatabaseBackend, Order, QueryFilter, QueryOrder, QuerySelect};

use crate::columns::TimeColumns;
use crate::error::store_error;
use crate::store::read;
use crate::{MfaEntities, SeaOrmStore, StoreEntity, UserEntity};

/// The listing's filters whose matches are rare, as (index name, column, the rare value):
/// superusers, deactivated and unverified users. Filtering the listing's index walk for them
/// reads every user to find a few, so each has indexes of its own, in both orders
/// (the migration `AddRareFilterIndexes`).
pub(crate) const RARE_FILTERS: [(&str, &str, bool); 3] = [
    ("superusers", "is_superuser", true),
    ("inactive", "is_active", false),
    ("unverified", "is_verified", false),
];

fn times_from_model<U: UserEntity>(
    model: &U::Model,
    c: &TimeColumns<U>,
) -> Result<UserTimes, StoreError> {
    Ok(UserTimes {
        created_at: read(model, c.created_at)?,
        updated_at: read(model, c.updated_at)?,
        last_login_at: read(model, c.last_login_at)?,
    })
}

fn no_times() -> StoreError {
    StoreError::Backend("the user entity has no created_at/updated_at/last_login_at".into())
}

impl<U, O, T, S, R, M> SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    /// The `SELECT` of one page: filters, the keyset condition after the cursor, the index's
    /// order and `LIMIT page + 1`. `None` when the cursor names an id this store cannot hold
    /// (no user lies after it).
    pub(crate) fn list_select(
        &self,
        times: &TimeColumns<U>,
        query: &UserQuery,
    ) -> Option<sea_orm::Select<U>> {
        let c = &self.users;
        let mut select = U::find();
        if let Some(pattern) = query.contains_pattern() {
            let pattern = LikeExpr::new(pattern).escape('!');
            select = select.filter(Expr::col(c.email_key).like(pattern));
        }
        // A flag's rare value is written into the text (`= TRUE`), so that the partial
        // indexes of `AddRareFilterIndexes` serve it (a bound value does not); its common value
        // is bound and walks the order's index.
        let literal = self.db.get_database_backend() != DatabaseBackend::MySql;
        for (name, value) in [
            ("is_active", query.is_active),
            ("is_verified", query.is_verified),
            ("is_superuser", query.is_superuser),
        ] {
            let column = match name {
                "is_active" => c.is_active,
                "is_verified" => c.is_verified,
                _ => c.is_superuser,
            };
            let rare = RARE_FILTERS
                .iter()
                .any(|(_, flag, rare)| *flag == name && Some(*rare) == value);
            match value {
                Some(value) if rare && literal => {
                    let text = if value { "TRUE" } else { "FALSE" };
                    select = select.filter(Expr::col(column).eq(Expr::cust(text)));
                }
                Some(value) => select = select.filter(column.eq(value)),
                None => {}
            }
        }
        if let Some(after) = query.created_after {
            select = select.filter(times.created_at.gte(after));
        }
        if let Some(before) = query.created_before {
            select = select.filter(times.created_at.lt(before));
        }
        let descending = query.sort.descending();
        match &query.after {
            Some(UserCursor::CreatedAt { at, id }) => {
                let id = <U::Id as UserId>::parse(id)?;
                // A row-value comparison: PostgreSQL serves it as one range of the
                // `(created_at, id)` index (the expanded OR form turns into a sort).
                let key = Expr::tuple([Expr::col(times.created_at), Expr::col(c.id)]);
                let cursor = Expr::tuple([Expr::val(*at), Expr::val(id)]);
                let beyond = if descending {
                    key.lt(cursor)
                } else {
                    key.gt(cursor)
                };
                select = select.filter(beyond);
            }
            Some(UserCursor::Email(key)) => {
                let beyond = if descending {
                    c.email_key.lt(key.as_str())
                } else {
                    c.email_key.gt(key.as_str())
                };
                select = select.filter(beyond);
            }
            Some(_) | None => {}
        }
        let order = if descending { Order::Desc } else { Order::Asc };
        select = match query.sort {
            UserSort::Email | UserSort::EmailDesc => select.order_by(c.email_key, order),
            _ => select
                .order_by(times.created_at, order.clone())
                .order_by(c.id, order),
        };
        Some(select.limit(u64::from(query.page_size()) + 1))
    }
}

impl<U, O, T, S, R, M> UserDirectory<U::Id, U::Fields> for SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    fn list_users<'a>(
        &'a self,
        query: &'a UserQuery,
    ) -> BoxFuture<'a, Result<UserPage<U::Id, U::Fields>, StoreError>> {
        Box::pin(async move {
            let times = self.times.as_ref().ok_or_else(no_times)?;
            let Some(select) = self.list_select(times, query) else {
                return Ok(UserPage {
                    items: Vec::new(),
                    next_cursor: None,
                });
            };
            let rows = select.all(&self.db).await.map_err(store_error)?;
            let rows = rows
                .iter()
                .map(|m| Ok((self.user_from_model(m)?, times_from_model(m, times)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(UserPage::from_rows(rows, query))
        })
    }

    fn user_times<'a>(
        &'a self,
        id: &'a U::Id,
    ) -> BoxFuture<'a, Result<Option<UserTimes>, StoreError>> {
        Box::pin(async move {
            let times = self.times.as_ref().ok_or_else(no_times)?;
            let row = U::find()
                .filter(self.users.id.eq(id.clone()))
                .one(&self.db)
                .await
                .map_err(store_error)?;
            row.map(|m| times_from_model(&m, times)).transpose()
        })
    }

    fn record_login<'a>(&'a self, id: &'a U::Id, at: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let times = self.times.as_ref().ok_or_else(no_times)?;
            U::update_many()
                .col_expr(times.last_login_at, Expr::val(at))
                .filter(self.users.id.eq(id.clone()))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnectionTrait, QueryTrait, Statement};

    /// The plan of each order, first page and a later one, of the queries `filtered` makes
    /// from a sort and a cursor.
    async fn plans(
        store: &SeaOrmStore,
        filtered: impl Fn(UserSort, Option<UserCursor>) -> UserQuery,
    ) -> Vec<String> {
        let backend = store.db.get_database_backend();
        let (explain, column) = match backend {
            sea_orm::DatabaseBackend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            _ => ("EXPLAIN ", "QUERY PLAN"),
        };
        let times = store.times.expect("the base user entity has times");
        let mut plans = Vec::new();
        for sort in [
            UserSort::CreatedAt,
            UserSort::CreatedAtDesc,
            UserSort::Email,
            UserSort::EmailDesc,
        ] {
            let later = match sort {
                UserSort::Email | UserSort::EmailDesc => UserCursor::Email("m@example.com".into()),
                _ => UserCursor::CreatedAt {
                    at: 1,
                    id: uuid::Uuid::nil().to_string(),
                },
            };
            for after in [None, Some(later)] {
                let query = filtered(sort, after);
                let statement = store.list_select(&times, &query).unwrap().build(backend);
                let values = statement.values.map(|v| v.0).unwrap_or_default();
                let sql = format!("{explain}{}", statement.sql);
                let rows = store
                    .db
                    .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
                    .await
                    .unwrap();
                let plan: Vec<String> = rows
                    .iter()
                    .map(|r| r.try_get::<String>("", column).unwrap())
                    .collect();
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

    /// Each rare filter of [`RARE_FILTERS`] alone, with the index it must walk, in every order.
    async fn rare_plans(store: &SeaOrmStore) -> Vec<(String, String)> {
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
                let order = if plan.starts_with("Email") {
                    "email"
                } else {
                    "created_at"
                };
                all.push((format!("user_{name}_{order}"), plan));
            }
        }
        all
    }

    #[cfg(feature = "migration")]
    #[tokio::test]
    async fn every_order_walks_an_index_on_sqlite() {
        use crate::migration::{Migrator, MigratorTrait};
        let store: SeaOrmStore = SeaOrmStore::connect("sqlite::memory:").await.unwrap();
        Migrator::up(store.connection(), None).await.unwrap();
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

    #[cfg(all(feature = "migration", feature = "postgres"))]
    #[tokio::test]
    async fn every_order_walks_an_index_on_postgres() {
        use crate::migration::{Migrator, MigratorTrait};
        let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
            println!("SKIPPED: plans on PostgreSQL (set TEST_POSTGRES_URL)");
            return;
        };
        let admin = sea_orm::Database::connect(url.as_str()).await.unwrap();
        // Already there after an earlier run: the error says so, and the schema is redone.
        let _ = admin
            .execute_unprepared("CREATE DATABASE axum_users_seaorm_plans")
            .await;
        admin.close().await.unwrap();
        let (server, _) = url.rsplit_once('/').unwrap();
        // One connection, so the settings below hold for every statement.
        let mut options = sea_orm::ConnectOptions::new(format!("{server}/axum_users_seaorm_plans"));
        options.max_connections(1).sqlx_logging(false);
        let db = sea_orm::Database::connect(options).await.unwrap();
        Migrator::fresh(&db).await.unwrap();
        // An empty table costs nothing to scan: with sorts and the other scans priced out, a
        // plan that still sorts could not be served by an index scan.
        for setting in ["enable_seqscan", "enable_bitmapscan", "enable_sort"] {
            db.execute_unprepared(&format!("SET {setting} = off"))
                .await
                .unwrap();
        }
        let store: SeaOrmStore = SeaOrmStore::new(db).unwrap();
        for plan in plans(&store, common).await {
            assert!(!plan.contains("Sort"), "a sort of the table: {plan}");
            assert!(plan.contains("Index Scan"), "{plan}");
        }
        for (index, plan) in rare_plans(&store).await {
            assert!(!plan.contains("Sort"), "a sort of the table: {plan}");
            assert!(plan.contains(&index), "not walking {index}: {plan}");
        }
    }
}

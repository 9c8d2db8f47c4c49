//! The core's `SessionStore` over the session entities ([`crate::entity::session`] and
//! [`crate::entity::session_rotated_token`], or an application's own).
//!
//! A refresh rotates with a compare-and-swap: one `UPDATE ... WHERE id = ? AND refresh_hash = ?`
//! in a transaction that also records the hash it retires. Of concurrent rotations from one
//! hash, the database lets one update the row (PostgreSQL and InnoDB re-check the condition on
//! the row they waited for; SQLite runs one writer at a time), so a session never forks into
//! two live chains; the manager decides reuse and the grace window from what the store reads.

use axum_users::auth::BoxFuture;
use axum_users::{Pruned, RefreshState, Session, SessionStore, StoreError, UserSession};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelBehavior, ColumnTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    TransactionTrait,
};

use crate::error::store_error;
use crate::store::{read, write};
use crate::{MfaEntities, SeaOrmStore, StoreEntity, UserEntity};

/// The most session ids one `IN (...)` names: a user with thousands of sessions is deleted in
/// batches.
const BATCH: usize = 100;

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    SeaOrmStore<U, O, T, S, R, M>
{
    fn session_from_model(&self, model: &S::Model) -> Result<Session<U::Id>, StoreError> {
        let c = &self.sessions;
        Ok(Session {
            id: read(model, c.id)?,
            user_id: read(model, c.user_id)?,
            created_at: read(model, c.created_at)?,
            last_seen_at: read(model, c.last_seen_at)?,
            expires_at: read(model, c.expires_at)?,
            ip: read(model, c.ip)?,
            user_agent: read(model, c.user_agent)?,
            method: read(model, c.method)?,
            backend: read(model, c.backend)?,
            refresh: RefreshState {
                current: read(model, c.refresh_hash)?,
                previous: read(model, c.previous_refresh_hash)?,
                rotated_at: read(model, c.rotated_at)?,
            },
        })
    }

    /// The live sessions matching `condition`, at most one.
    async fn live_session(
        &self,
        condition: Condition,
        now: i64,
    ) -> Result<Option<Session<U::Id>>, StoreError> {
        let row = S::find()
            .filter(condition)
            .filter(self.sessions.expires_at.gt(now))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(|m| self.session_from_model(&m)).transpose()
    }

    /// Deletes the sessions `ids` with their access tokens and rotated hashes, through `conn`.
    async fn delete_session_rows<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        ids: &[String],
    ) -> Result<(), StoreError> {
        T::delete_many()
            .filter(self.tokens.session_id.is_in(ids.iter().cloned()))
            .exec(conn)
            .await
            .map_err(store_error)?;
        R::delete_many()
            .filter(self.rotated.session_id.is_in(ids.iter().cloned()))
            .exec(conn)
            .await
            .map_err(store_error)?;
        S::delete_many()
            .filter(self.sessions.id.is_in(ids.iter().cloned()))
            .exec(conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

impl<U, O, T, S, R, M> SessionStore<U::Id, U::Fields> for SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    fn create_session<'a>(
        &'a self,
        session: &'a Session<U::Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            let mut active = S::ActiveModel::new();
            write(&mut active, c.id, session.id.clone().into())?;
            write(&mut active, c.user_id, session.user_id.clone().into())?;
            write(&mut active, c.created_at, session.created_at.into())?;
            write(&mut active, c.last_seen_at, session.last_seen_at.into())?;
            write(&mut active, c.expires_at, session.expires_at.into())?;
            write(&mut active, c.ip, session.ip.clone().into())?;
            write(&mut active, c.user_agent, session.user_agent.clone().into())?;
            write(&mut active, c.method, session.method.clone().into())?;
            write(&mut active, c.backend, session.backend.clone().into())?;
            let refresh = &session.refresh;
            write(&mut active, c.refresh_hash, refresh.current.clone().into())?;
            write(
                &mut active,
                c.previous_refresh_hash,
                refresh.previous.clone().into(),
            )?;
            write(&mut active, c.rotated_at, refresh.rotated_at.into())?;
            S::insert(active)
                .exec_without_returning(&self.db)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn get_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<U::Id>>, StoreError>> {
        Box::pin(async move {
            self.live_session(Condition::all().add(self.sessions.id.eq(id)), now)
                .await
        })
    }

    fn user_of_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<UserSession<U::Id, U::Fields>>, StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            // The join is built from the columns, not from a `Related` impl: any pair of
            // entities with `session.user_id` and `user.id` joins, in one query.
            let to_user = S::belongs_to(U::default())
                .from(c.user_id)
                .to(self.users.id)
                .into();
            let row = S::find()
                .join(JoinType::InnerJoin, to_user)
                .select_also(U::default())
                .filter(c.id.eq(id))
                .filter(c.expires_at.gt(now))
                .one(&self.db)
                .await
                .map_err(store_error)?;
            match row {
                Some((session, Some(user))) => Ok(Some((
                    self.user_from_model(&user)?,
                    self.session_from_model(&session)?,
                ))),
                _ => Ok(None),
            }
        })
    }

    fn find_session_by_refresh<'a>(
        &'a self,
        hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<U::Id>>, StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            let live = Condition::any()
                .add(c.refresh_hash.eq(hash))
                .add(c.previous_refresh_hash.eq(hash));
            if let Some(session) = self.live_session(live, now).await? {
                return Ok(Some(session));
            }
            let retired = R::find()
                .select_only()
                .column(self.rotated.session_id)
                .filter(self.rotated.token_hash.eq(hash))
                .into_query();
            self.live_session(Condition::all().add(c.id.in_subquery(retired)), now)
                .await
        })
    }

    fn swap_refresh<'a>(
        &'a self,
        id: &'a str,
        expected: &'a str,
        next: &'a RefreshState,
        retired: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            let txn = self.begin_locked().await?;
            let swapped = S::update_many()
                .col_expr(c.refresh_hash, Expr::value(next.current.clone()))
                .col_expr(c.previous_refresh_hash, Expr::value(next.previous.clone()))
                .col_expr(c.rotated_at, Expr::value(next.rotated_at))
                .filter(c.id.eq(id))
                .filter(c.refresh_hash.eq(expected))
                .exec(&txn)
                .await
                .map_err(store_error)?;
            if swapped.rows_affected != 1 {
                txn.rollback().await.map_err(store_error)?;
                return Ok(false);
            }
            if let Some(hash) = retired {
                let r = &self.rotated;
                let mut active = R::ActiveModel::new();
                write(&mut active, r.token_hash, hash.into())?;
                write(&mut active, r.session_id, id.into())?;
                R::insert(active)
                    .exec_without_returning(&txn)
                    .await
                    .map_err(store_error)?;
            }
            txn.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    fn touch_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        stale_before: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            S::update_many()
                .col_expr(c.last_seen_at, Expr::value(now))
                .filter(c.id.eq(id))
                .filter(c.last_seen_at.lt(stale_before))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn list_sessions<'a>(
        &'a self,
        user_id: &'a U::Id,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<Session<U::Id>>, StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            let rows = S::find()
                .filter(c.user_id.eq(user_id.clone()))
                .filter(c.expires_at.gt(now))
                .order_by_desc(c.created_at)
                .order_by_asc(c.id)
                .all(&self.db)
                .await
                .map_err(store_error)?;
            rows.iter().map(|m| self.session_from_model(m)).collect()
        })
    }

    fn delete_sessions<'a>(
        &'a self,
        user_id: &'a U::Id,
        only: Option<&'a str>,
        except: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let c = &self.sessions;
            let mut select = S::find()
                .select_only()
                .column(c.id)
                .filter(c.user_id.eq(user_id.clone()));
            if let Some(only) = only {
                select = select.filter(c.id.eq(only));
            }
            if let Some(except) = except {
                select = select.filter(c.id.ne(except));
            }
            let txn = self.begin_locked().await?;
            let ids: Vec<String> = select.into_tuple().all(&txn).await.map_err(store_error)?;
            for batch in ids.chunks(BATCH) {
                self.delete_session_rows(&txn, batch).await?;
            }
            if only.is_none() {
                T::delete_many()
                    .filter(self.tokens.user_id.eq(user_id.clone()))
                    .filter(self.tokens.session_id.is_null())
                    .exec(&txn)
                    .await
                    .map_err(store_error)?;
            }
            txn.commit().await.map_err(store_error)?;
            Ok(ids)
        })
    }

    fn delete_session_tokens_before<'a>(
        &'a self,
        id: &'a str,
        before: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = T::delete_many()
                .filter(self.tokens.session_id.eq(id))
                .filter(self.tokens.created_at.lt(before))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected)
        })
    }

    fn prune<'a>(
        &'a self,
        now: i64,
        tokens_before: Option<i64>,
    ) -> BoxFuture<'a, Result<Pruned, StoreError>> {
        Box::pin(async move {
            let (c, t) = (&self.sessions, &self.tokens);
            let txn = self.db.begin().await.map_err(store_error)?;
            let expired = || {
                S::find()
                    .select_only()
                    .column(c.id)
                    .filter(c.expires_at.lte(now))
                    .into_query()
            };
            let mut access_tokens = T::delete_many()
                .filter(t.session_id.in_subquery(expired()))
                .exec(&txn)
                .await
                .map_err(store_error)?
                .rows_affected;
            R::delete_many()
                .filter(self.rotated.session_id.in_subquery(expired()))
                .exec(&txn)
                .await
                .map_err(store_error)?;
            let sessions = S::delete_many()
                .filter(c.expires_at.lte(now))
                .exec(&txn)
                .await
                .map_err(store_error)?
                .rows_affected;
            // Tokens whose session ended some other way (a token written while its session
            // was being revoked).
            let live = S::find().select_only().column(c.id).into_query();
            access_tokens += T::delete_many()
                .filter(t.session_id.is_not_null())
                .filter(t.session_id.not_in_subquery(live))
                .exec(&txn)
                .await
                .map_err(store_error)?
                .rows_affected;
            if let Some(before) = tokens_before {
                access_tokens += T::delete_many()
                    .filter(t.created_at.lt(before))
                    .exec(&txn)
                    .await
                    .map_err(store_error)?
                    .rows_affected;
            }
            txn.commit().await.map_err(store_error)?;
            Ok(Pruned {
                sessions,
                access_tokens,
            })
        })
    }
}

//! The core's `MfaStore` over the second-factor entities ([`crate::entity::mfa_totp`],
//! [`crate::entity::mfa_recovery_code`], [`crate::entity::mfa_challenge`], or an
//! application's own, see [`crate::MfaEntities`]).
//!
//! Every write that decides whether a code is accepted is one conditional statement: of two
//! requests racing with one code, the database lets one change a row (PostgreSQL and InnoDB
//! re-check the condition on the row they waited for; SQLite runs one writer at a time) and the
//! other changes nothing.

use axum_users::auth::BoxFuture;
use axum_users::{MfaChallenge, MfaStore, StoreError, TotpRecord};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelBehavior, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use crate::error::store_error;
use crate::store::{read, write};
use crate::{MfaEntities, SeaOrmStore, StoreEntity, UserEntity};

impl<U, O, T, S, R, M> SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    /// Restarts an unconfirmed enrolment with `sealed_secret`; whether there was one.
    async fn update_pending_totp(
        &self,
        user_id: &U::Id,
        sealed_secret: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = &self.mfa.totp;
        let done = M::Totp::update_many()
            .col_expr(c.sealed_secret, Expr::val(sealed_secret))
            .col_expr(c.last_step, Expr::val(Option::<i64>::None))
            .col_expr(c.created_at, Expr::val(now))
            .filter(c.user_id.eq(user_id.clone()))
            .filter(c.confirmed.eq(false))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected == 1)
    }

    /// Replaces the user's recovery codes with `hashes`, through `conn` (a transaction).
    async fn replace_codes_in<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: &U::Id,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        let c = &self.mfa.codes;
        M::RecoveryCode::delete_many()
            .filter(c.user_id.eq(user_id.clone()))
            .exec(conn)
            .await
            .map_err(store_error)?;
        for hash in hashes {
            let mut active = <M::RecoveryCode as EntityTrait>::ActiveModel::new();
            write(&mut active, c.code_hash, hash.as_str().into())?;
            write(&mut active, c.user_id, user_id.clone().into())?;
            M::RecoveryCode::insert(active)
                .exec_without_returning(conn)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    /// Deletes the user's factor and recovery codes (and, with `challenges`, their pending
    /// sign-ins) through `conn`; whether a factor existed.
    pub(crate) async fn delete_second_factors<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: &U::Id,
        challenges: bool,
    ) -> Result<bool, StoreError> {
        let m = &self.mfa;
        M::RecoveryCode::delete_many()
            .filter(m.codes.user_id.eq(user_id.clone()))
            .exec(conn)
            .await
            .map_err(store_error)?;
        if challenges {
            M::Challenge::delete_many()
                .filter(m.challenges.user_id.eq(user_id.clone()))
                .exec(conn)
                .await
                .map_err(store_error)?;
        }
        let removed = M::Totp::delete_many()
            .filter(m.totp.user_id.eq(user_id.clone()))
            .exec(conn)
            .await
            .map_err(store_error)?;
        Ok(removed.rows_affected == 1)
    }

    /// The live challenges of `token_hash` at `now` (and, with `max_failures`, with fewer
    /// failures than that).
    fn live_challenge(&self, token_hash: &str, now: i64, max_failures: Option<i64>) -> Condition {
        let c = &self.mfa.challenges;
        let mut condition = Condition::all()
            .add(c.token_hash.eq(token_hash))
            .add(c.expires_at.gt(now));
        if let Some(max) = max_failures {
            condition = condition.add(c.failures.lt(max));
        }
        condition
    }
}

impl<U, O, T, S, R, M> MfaStore<U::Id> for SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    fn get_totp<'a>(
        &'a self,
        user_id: &'a U::Id,
    ) -> BoxFuture<'a, Result<Option<TotpRecord>, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.totp;
            let row = M::Totp::find()
                .filter(c.user_id.eq(user_id.clone()))
                .one(&self.db)
                .await
                .map_err(store_error)?;
            row.map(|m| {
                Ok(TotpRecord::new(
                    read::<String, _>(&m, c.sealed_secret)?,
                    read(&m, c.confirmed)?,
                    read(&m, c.last_step)?,
                    read(&m, c.created_at)?,
                ))
            })
            .transpose()
        })
    }

    fn begin_totp<'a>(
        &'a self,
        user_id: &'a U::Id,
        sealed_secret: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if self
                .update_pending_totp(user_id, sealed_secret, now)
                .await?
            {
                return Ok(true);
            }
            if self.get_totp(user_id).await?.is_some() {
                // Confirmed (an unconfirmed row was updated above).
                return Ok(false);
            }
            let c = &self.mfa.totp;
            let mut active = <M::Totp as EntityTrait>::ActiveModel::new();
            write(&mut active, c.user_id, user_id.clone().into())?;
            write(&mut active, c.sealed_secret, sealed_secret.into())?;
            write(&mut active, c.confirmed, false.into())?;
            write(&mut active, c.last_step, Option::<i64>::None.into())?;
            write(&mut active, c.created_at, now.into())?;
            match M::Totp::insert(active)
                .exec_without_returning(&self.db)
                .await
            {
                Ok(_) => Ok(true),
                // A concurrent enrolment inserted first: restart it with this secret.
                Err(_) => self.update_pending_totp(user_id, sealed_secret, now).await,
            }
        })
    }

    fn confirm_totp<'a>(
        &'a self,
        user_id: &'a U::Id,
        sealed_secret: &'a str,
        step: i64,
        recovery_hashes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.totp;
            let txn = self.db.begin().await.map_err(store_error)?;
            let confirmed = M::Totp::update_many()
                .col_expr(c.confirmed, Expr::val(true))
                .col_expr(c.last_step, Expr::val(step))
                .filter(c.user_id.eq(user_id.clone()))
                .filter(c.sealed_secret.eq(sealed_secret))
                .filter(c.confirmed.eq(false))
                .exec(&txn)
                .await
                .map_err(store_error)?;
            if confirmed.rows_affected != 1 {
                txn.rollback().await.map_err(store_error)?;
                return Ok(false);
            }
            self.replace_codes_in(&txn, user_id, recovery_hashes)
                .await?;
            txn.commit().await.map_err(store_error)?;
            Ok(true)
        })
    }

    fn use_totp_step<'a>(
        &'a self,
        user_id: &'a U::Id,
        step: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.totp;
            let unused = Condition::any()
                .add(c.last_step.is_null())
                .add(c.last_step.lt(step));
            let done = M::Totp::update_many()
                .col_expr(c.last_step, Expr::val(step))
                .filter(c.user_id.eq(user_id.clone()))
                .filter(c.confirmed.eq(true))
                .filter(unused)
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected == 1)
        })
    }

    fn remove_totp<'a>(&'a self, user_id: &'a U::Id) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let txn = self.db.begin().await.map_err(store_error)?;
            let removed = self.delete_second_factors(&txn, user_id, false).await?;
            txn.commit().await.map_err(store_error)?;
            Ok(removed)
        })
    }

    fn recovery_codes<'a>(
        &'a self,
        user_id: &'a U::Id,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.codes;
            M::RecoveryCode::find()
                .select_only()
                .column(c.code_hash)
                .filter(c.user_id.eq(user_id.clone()))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(store_error)
        })
    }

    fn replace_recovery_codes<'a>(
        &'a self,
        user_id: &'a U::Id,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let txn = self.db.begin().await.map_err(store_error)?;
            self.replace_codes_in(&txn, user_id, hashes).await?;
            txn.commit().await.map_err(store_error)
        })
    }

    fn use_recovery_code<'a>(
        &'a self,
        user_id: &'a U::Id,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.codes;
            let done = M::RecoveryCode::delete_many()
                .filter(c.user_id.eq(user_id.clone()))
                .filter(c.code_hash.eq(hash))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected == 1)
        })
    }

    fn create_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        challenge: &'a MfaChallenge<U::Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.challenges;
            let mut active = <M::Challenge as EntityTrait>::ActiveModel::new();
            write(&mut active, c.token_hash, token_hash.into())?;
            write(&mut active, c.user_id, challenge.user_id.clone().into())?;
            write(&mut active, c.backend, challenge.backend.as_str().into())?;
            write(&mut active, c.method, challenge.method.as_str().into())?;
            write(&mut active, c.expires_at, challenge.expires_at.into())?;
            write(&mut active, c.failures, challenge.failures.into())?;
            M::Challenge::insert(active)
                .exec_without_returning(&self.db)
                .await
                .map_err(store_error)?;
            Ok(())
        })
    }

    fn get_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<MfaChallenge<U::Id>>, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.challenges;
            let row = M::Challenge::find()
                .filter(self.live_challenge(token_hash, now, None))
                .one(&self.db)
                .await
                .map_err(store_error)?;
            row.map(|m| {
                let mut challenge = MfaChallenge::new(
                    read::<U::Id, _>(&m, c.user_id)?,
                    read::<String, _>(&m, c.backend)?,
                    read::<String, _>(&m, c.method)?,
                    read(&m, c.expires_at)?,
                );
                challenge.failures = read(&m, c.failures)?;
                Ok(challenge)
            })
            .transpose()
        })
    }

    fn fail_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(async move {
            let c = &self.mfa.challenges;
            M::Challenge::update_many()
                .col_expr(c.failures, Expr::col(c.failures).add(1))
                .filter(c.token_hash.eq(token_hash))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            let failures: Option<i64> = M::Challenge::find()
                .select_only()
                .column(c.failures)
                .filter(c.token_hash.eq(token_hash))
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(store_error)?;
            Ok(failures.unwrap_or(0))
        })
    }

    fn take_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
        max_failures: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = M::Challenge::delete_many()
                .filter(self.live_challenge(token_hash, now, Some(max_failures)))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected == 1)
        })
    }

    fn prune_mfa_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = M::Challenge::delete_many()
                .filter(self.mfa.challenges.expires_at.lte(now))
                .exec(&self.db)
                .await
                .map_err(store_error)?;
            Ok(done.rows_affected)
        })
    }
}

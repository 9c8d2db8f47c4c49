//! Second factors in the `mfa_totp`, `mfa_recovery_codes` and `mfa_challenges` tables
//! (migration 5). Every accepting write is one conditional statement (or one transaction): of
//! two requests racing with one code, one changes a row and the other changes nothing.

use axum_users::auth::BoxFuture;
use axum_users::{MfaChallenge, MfaStore, StoreError, TotpRecord, UserFields};

use super::{SqlStore, id_from_row};
use crate::db::Arg;
use crate::id::SqlId;

impl<Id: SqlId, F: UserFields> SqlStore<Id, F> {
    async fn update_pending_totp(
        &self,
        user_id: &Id,
        sealed_secret: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let updated = self
            .db
            .execute(
                "UPDATE mfa_totp SET sealed_secret = ?, last_step = NULL, created_at = ? \
                 WHERE user_id = ? AND confirmed = ?",
                &[
                    Arg::Text(sealed_secret.to_owned()),
                    Arg::Int(now),
                    user_id.to_value().into(),
                    Arg::Bool(false),
                ],
            )
            .await?;
        Ok(updated == 1)
    }
}

impl<Id: SqlId, F: UserFields> MfaStore<Id> for SqlStore<Id, F> {
    fn get_totp<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Option<TotpRecord>, StoreError>> {
        Box::pin(async move {
            let row = self
                .db
                .fetch_optional(
                    "SELECT sealed_secret, confirmed, last_step, created_at FROM mfa_totp \
                     WHERE user_id = ?",
                    &[user_id.to_value().into()],
                )
                .await?;
            row.map(|r| {
                Ok(TotpRecord::new(
                    r.text("sealed_secret")?,
                    r.flag("confirmed")?,
                    r.opt_int("last_step")?,
                    r.int("created_at")?,
                ))
            })
            .transpose()
        })
    }

    fn begin_totp<'a>(
        &'a self,
        user_id: &'a Id,
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
            let inserted = self
                .db
                .execute(
                    "INSERT INTO mfa_totp (user_id, sealed_secret, confirmed, last_step, \
                     created_at) VALUES (?, ?, ?, NULL, ?)",
                    &[
                        user_id.to_value().into(),
                        Arg::Text(sealed_secret.to_owned()),
                        Arg::Bool(false),
                        Arg::Int(now),
                    ],
                )
                .await;
            match inserted {
                Ok(_) => Ok(true),
                // A concurrent enrolment inserted first: restart it with this secret.
                Err(_) => self.update_pending_totp(user_id, sealed_secret, now).await,
            }
        })
    }

    fn confirm_totp<'a>(
        &'a self,
        user_id: &'a Id,
        sealed_secret: &'a str,
        step: i64,
        recovery_hashes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.db.begin().await?;
            let confirmed = tx
                .execute(
                    "UPDATE mfa_totp SET confirmed = ?, last_step = ? \
                     WHERE user_id = ? AND sealed_secret = ? AND confirmed = ?",
                    &[
                        Arg::Bool(true),
                        Arg::Int(step),
                        user_id.to_value().into(),
                        Arg::Text(sealed_secret.to_owned()),
                        Arg::Bool(false),
                    ],
                )
                .await?;
            if confirmed != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            replace_codes(&mut tx, user_id, recovery_hashes).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn use_totp_step<'a>(
        &'a self,
        user_id: &'a Id,
        step: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let updated = self
                .db
                .execute(
                    "UPDATE mfa_totp SET last_step = ? WHERE user_id = ? AND confirmed = ? \
                     AND (last_step IS NULL OR last_step < ?)",
                    &[
                        Arg::Int(step),
                        user_id.to_value().into(),
                        Arg::Bool(true),
                        Arg::Int(step),
                    ],
                )
                .await?;
            Ok(updated == 1)
        })
    }

    fn remove_totp<'a>(&'a self, user_id: &'a Id) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.db.begin().await?;
            tx.execute(
                "DELETE FROM mfa_recovery_codes WHERE user_id = ?",
                &[user_id.to_value().into()],
            )
            .await?;
            let removed = tx
                .execute(
                    "DELETE FROM mfa_totp WHERE user_id = ?",
                    &[user_id.to_value().into()],
                )
                .await?;
            tx.commit().await?;
            Ok(removed == 1)
        })
    }

    fn recovery_codes<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .db
                .fetch_all(
                    "SELECT code_hash FROM mfa_recovery_codes WHERE user_id = ?",
                    &[user_id.to_value().into()],
                )
                .await?;
            rows.iter().map(|r| r.text("code_hash")).collect()
        })
    }

    fn replace_recovery_codes<'a>(
        &'a self,
        user_id: &'a Id,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.db.begin().await?;
            replace_codes(&mut tx, user_id, hashes).await?;
            tx.commit().await
        })
    }

    fn use_recovery_code<'a>(
        &'a self,
        user_id: &'a Id,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deleted = self
                .db
                .execute(
                    "DELETE FROM mfa_recovery_codes WHERE user_id = ? AND code_hash = ?",
                    &[user_id.to_value().into(), Arg::Text(hash.to_owned())],
                )
                .await?;
            Ok(deleted == 1)
        })
    }

    fn create_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        challenge: &'a MfaChallenge<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "INSERT INTO mfa_challenges (token_hash, user_id, backend, method, \
                     expires_at, failures) VALUES (?, ?, ?, ?, ?, ?)",
                    &[
                        Arg::Text(token_hash.to_owned()),
                        challenge.user_id.to_value().into(),
                        Arg::Text(challenge.backend.clone()),
                        Arg::Text(challenge.method.clone()),
                        Arg::Int(challenge.expires_at),
                        Arg::Int(challenge.failures),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn get_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<MfaChallenge<Id>>, StoreError>> {
        Box::pin(async move {
            let row = self
                .db
                .fetch_optional(
                    "SELECT user_id, backend, method, expires_at, failures FROM mfa_challenges \
                     WHERE token_hash = ? AND expires_at > ?",
                    &[Arg::Text(token_hash.to_owned()), Arg::Int(now)],
                )
                .await?;
            row.map(|r| {
                let mut challenge = MfaChallenge::new(
                    id_from_row(&r, "user_id")?,
                    r.text("backend")?,
                    r.text("method")?,
                    r.int("expires_at")?,
                );
                challenge.failures = r.int("failures")?;
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
            let args = [Arg::Text(token_hash.to_owned())];
            self.db
                .execute(
                    "UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = ?",
                    &args,
                )
                .await?;
            let row = self
                .db
                .fetch_optional(
                    "SELECT failures FROM mfa_challenges WHERE token_hash = ?",
                    &args,
                )
                .await?;
            row.map_or(Ok(0), |r| r.int("failures"))
        })
    }

    fn take_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
        max_failures: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let deleted = self
                .db
                .execute(
                    "DELETE FROM mfa_challenges WHERE token_hash = ? AND expires_at > ? \
                     AND failures < ?",
                    &[
                        Arg::Text(token_hash.to_owned()),
                        Arg::Int(now),
                        Arg::Int(max_failures),
                    ],
                )
                .await?;
            Ok(deleted == 1)
        })
    }

    fn prune_mfa_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "DELETE FROM mfa_challenges WHERE expires_at <= ?",
                    &[Arg::Int(now)],
                )
                .await
        })
    }
}

async fn replace_codes<Id: SqlId>(
    tx: &mut crate::db::Tx,
    user_id: &Id,
    hashes: &[String],
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM mfa_recovery_codes WHERE user_id = ?",
        &[user_id.to_value().into()],
    )
    .await?;
    for hash in hashes {
        tx.execute(
            "INSERT INTO mfa_recovery_codes (code_hash, user_id) VALUES (?, ?)",
            &[Arg::Text(hash.clone()), user_id.to_value().into()],
        )
        .await?;
    }
    Ok(())
}

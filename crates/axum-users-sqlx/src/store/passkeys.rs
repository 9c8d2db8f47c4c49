//! Passkeys in the `passkeys` and `passkey_challenges` tables (migration 9). A ceremony is
//! spent by the one `DELETE` that removes its row, a counter advanced by an `UPDATE` on the
//! value seen, and the last passkey kept under the user's row lock.

use axum_users::auth::BoxFuture;
use axum_users::{
    PasskeyChallenge, PasskeyRecord, PasskeyRemoval, PasskeyStore, StoreError, UserFields,
};

use super::{SqlStore, id_from_row};
use crate::db::{Arg, Row};
use crate::id::{Dialect, SqlId};

const COLUMNS: &str = "id, user_id, credential_key, user_handle, name, passkey, sign_count, \
                       created_at, last_used_at";

fn passkey_from_row<Id: SqlId>(row: &Row) -> Result<PasskeyRecord<Id>, StoreError> {
    Ok(PasskeyRecord::new(
        row.text("id")?,
        id_from_row(row, "user_id")?,
        row.text("credential_key")?,
        row.text("user_handle")?,
        row.text("name")?,
        row.text("passkey")?,
        row.int("sign_count")?,
        row.int("created_at")?,
        row.opt_int("last_used_at")?,
    ))
}

impl<Id: SqlId, F: UserFields> PasskeyStore<Id> for SqlStore<Id, F> {
    fn create_passkey<'a>(
        &'a self,
        record: &'a PasskeyRecord<Id>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let inserted = self
                .db
                .execute(
                    &format!("INSERT INTO passkeys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    &[
                        Arg::Text(record.id.clone()),
                        record.user_id.to_value().into(),
                        Arg::Text(record.credential_key.clone()),
                        Arg::Text(record.user_handle.clone()),
                        Arg::Text(record.name.clone()),
                        Arg::Text(record.passkey.clone()),
                        Arg::Int(record.sign_count),
                        Arg::Int(record.created_at),
                        Arg::OptInt(record.last_used_at),
                    ],
                )
                .await;
            match inserted {
                Ok(_) => Ok(true),
                // The unique credential key (a concurrent registration of it included).
                Err(error) => match self.passkey_by_credential(&record.credential_key).await? {
                    Some(_) => Ok(false),
                    None => Err(error),
                },
            }
        })
    }

    fn list_passkeys<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Vec<PasskeyRecord<Id>>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .db
                .fetch_all(
                    &format!(
                        "SELECT {COLUMNS} FROM passkeys WHERE user_id = ? \
                         ORDER BY created_at, id"
                    ),
                    &[user_id.to_value().into()],
                )
                .await?;
            rows.iter().map(passkey_from_row).collect()
        })
    }

    fn passkey_by_credential<'a>(
        &'a self,
        credential_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<PasskeyRecord<Id>>, StoreError>> {
        Box::pin(async move {
            let row = self
                .db
                .fetch_optional(
                    &format!("SELECT {COLUMNS} FROM passkeys WHERE credential_key = ?"),
                    &[Arg::Text(credential_key.to_owned())],
                )
                .await?;
            row.as_ref().map(passkey_from_row).transpose()
        })
    }

    fn rename_passkey<'a>(
        &'a self,
        user_id: &'a Id,
        id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // Found rather than changed: MySQL counts an update to the same name as none.
            if !self.owns_passkey(user_id, id).await? {
                return Ok(false);
            }
            self.db
                .execute(
                    "UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?",
                    &[
                        Arg::Text(name.to_owned()),
                        Arg::Text(id.to_owned()),
                        user_id.to_value().into(),
                    ],
                )
                .await?;
            Ok(true)
        })
    }

    fn delete_passkey<'a>(
        &'a self,
        user_id: &'a Id,
        id: &'a str,
        keep_one: bool,
    ) -> BoxFuture<'a, Result<PasskeyRemoval, StoreError>> {
        Box::pin(async move {
            // The user's row lock (on SQLite the write lock `begin` takes) serialises removals
            // of one user's passkeys, so the count below sees what a concurrent one left.
            let lock = match self.dialect() {
                Dialect::Sqlite => "",
                Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
            };
            let mut tx = self.db.begin().await?;
            tx.fetch_optional(
                &format!("SELECT id FROM users WHERE id = ?{lock}"),
                &[user_id.to_value().into()],
            )
            .await?;
            let ids = tx
                .fetch_all(
                    &format!("SELECT id FROM passkeys WHERE user_id = ?{lock}"),
                    &[user_id.to_value().into()],
                )
                .await?
                .iter()
                .map(|row| row.text("id"))
                .collect::<Result<Vec<_>, _>>()?;
            let refusal = if !ids.iter().any(|i| i == id) {
                Some(PasskeyRemoval::NotFound)
            } else if keep_one && ids.len() == 1 {
                Some(PasskeyRemoval::LastOne)
            } else {
                None
            };
            if let Some(refusal) = refusal {
                tx.rollback().await?;
                return Ok(refusal);
            }
            tx.execute(
                "DELETE FROM passkeys WHERE id = ? AND user_id = ?",
                &[Arg::Text(id.to_owned()), user_id.to_value().into()],
            )
            .await?;
            tx.commit().await?;
            Ok(PasskeyRemoval::Removed)
        })
    }

    fn use_passkey<'a>(
        &'a self,
        id: &'a str,
        passkey: &'a str,
        seen_count: i64,
        sign_count: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let updated = self
                .db
                .execute(
                    "UPDATE passkeys SET passkey = ?, sign_count = ?, last_used_at = ? \
                     WHERE id = ? AND sign_count = ?",
                    &[
                        Arg::Text(passkey.to_owned()),
                        Arg::Int(sign_count),
                        Arg::Int(now),
                        Arg::Text(id.to_owned()),
                        Arg::Int(seen_count),
                    ],
                )
                .await?;
            Ok(updated == 1)
        })
    }

    fn create_passkey_challenge<'a>(
        &'a self,
        handle_hash: &'a str,
        challenge: &'a PasskeyChallenge<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "INSERT INTO passkey_challenges (handle_hash, kind, user_id, backend, state, \
                     expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    &[
                        Arg::Text(handle_hash.to_owned()),
                        Arg::Text(challenge.kind.clone()),
                        Arg::OptText(challenge.user_id.as_ref().map(ToString::to_string)),
                        Arg::Text(challenge.backend.clone()),
                        Arg::Text(challenge.state.clone()),
                        Arg::Int(challenge.expires_at),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn take_passkey_challenge<'a>(
        &'a self,
        handle_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<PasskeyChallenge<Id>>, StoreError>> {
        Box::pin(async move {
            let args = [Arg::Text(handle_hash.to_owned())];
            let row = self
                .db
                .fetch_optional(
                    "SELECT kind, user_id, backend, state, expires_at FROM passkey_challenges \
                     WHERE handle_hash = ?",
                    &args,
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            // The one DELETE that removes the row spends it: of two finishes, one wins.
            let deleted = self
                .db
                .execute(
                    "DELETE FROM passkey_challenges WHERE handle_hash = ?",
                    &args,
                )
                .await?;
            let expires_at = row.int("expires_at")?;
            if deleted != 1 || expires_at <= now {
                return Ok(None);
            }
            let user_id = match row.opt_text("user_id")? {
                Some(text) => Some(Id::parse(&text).ok_or_else(|| {
                    StoreError::Backend("passkey_challenges.user_id holds no valid id".into())
                })?),
                None => None,
            };
            Ok(Some(PasskeyChallenge::new(
                row.text("kind")?,
                user_id,
                row.text("backend")?,
                row.text("state")?,
                expires_at,
            )))
        })
    }

    fn prune_passkey_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "DELETE FROM passkey_challenges WHERE expires_at <= ?",
                    &[Arg::Int(now)],
                )
                .await
        })
    }
}

impl<Id: SqlId, F: UserFields> SqlStore<Id, F> {
    async fn owns_passkey(&self, user_id: &Id, id: &str) -> Result<bool, StoreError> {
        let row = self
            .db
            .fetch_optional(
                "SELECT id FROM passkeys WHERE id = ? AND user_id = ?",
                &[Arg::Text(id.to_owned()), user_id.to_value().into()],
            )
            .await?;
        Ok(row.is_some())
    }
}

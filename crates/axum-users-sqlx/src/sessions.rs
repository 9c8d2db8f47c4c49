//! The sessions table (migration 3): one set of queries for every database.

use axum_users::auth::BoxFuture;
use axum_users::{
    Pruned, RefreshState, Session, SessionStore, StoreError, UserFields, UserSession,
};

use crate::db::{Arg, Row};
use crate::id::SqlId;
use crate::store::{SqlStore, USER_COLUMNS, id_from_row, user_from_row};

/// The query of every revocable token check (the user and the live session in one join), built
/// once: building it per request cost some 7,500 instructions of a 170,000-instruction
/// `GET /users/me` (callgrind, docs/benchmarks.md).
fn user_of_session_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let users = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "SELECT {users}, {SESSION_COLUMNS} FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.id = ? AND s.expires_at > ?"
        )
    })
}

/// The session columns, prefixed so that a join with `users` has no clashing names.
const SESSION_COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, \
     s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, \
     s.expires_at AS s_expires_at, s.ip AS s_ip, s.user_agent AS s_user_agent, \
     s.method AS s_method, s.backend AS s_backend, s.refresh_hash AS s_refresh_hash, \
     s.previous_refresh_hash AS s_previous_refresh_hash, s.rotated_at AS s_rotated_at";

fn session_from_row<Id: SqlId>(row: &Row) -> Result<Session<Id>, StoreError> {
    Ok(Session {
        id: row.text("s_id")?,
        user_id: id_from_row(row, "s_user_id")?,
        created_at: row.int("s_created_at")?,
        last_seen_at: row.int("s_last_seen_at")?,
        expires_at: row.int("s_expires_at")?,
        ip: row.opt_text("s_ip")?,
        user_agent: row.opt_text("s_user_agent")?,
        method: row.text("s_method")?,
        backend: row.text("s_backend")?,
        refresh: RefreshState {
            current: row.opt_text("s_refresh_hash")?,
            previous: row.opt_text("s_previous_refresh_hash")?,
            rotated_at: row.opt_int("s_rotated_at")?,
        },
    })
}

/// `?, ?, ?` for `n` values.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl<Id: SqlId, F: UserFields> SqlStore<Id, F> {
    async fn session_where(
        &self,
        condition: &str,
        args: &[Arg],
    ) -> Result<Option<Session<Id>>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE {condition}");
        let row = self.db.fetch_optional(&sql, args).await?;
        row.map(|r| session_from_row(&r)).transpose()
    }
}

impl<Id: SqlId, F: UserFields> SessionStore<Id, F> for SqlStore<Id, F> {
    fn create_session<'a>(
        &'a self,
        session: &'a Session<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, ip, \
                     user_agent, method, backend, refresh_hash, previous_refresh_hash, rotated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    &[
                        Arg::Text(session.id.clone()),
                        session.user_id.to_value().into(),
                        Arg::Int(session.created_at),
                        Arg::Int(session.last_seen_at),
                        Arg::Int(session.expires_at),
                        Arg::OptText(session.ip.clone()),
                        Arg::OptText(session.user_agent.clone()),
                        Arg::Text(session.method.clone()),
                        Arg::Text(session.backend.clone()),
                        Arg::OptText(session.refresh.current.clone()),
                        Arg::OptText(session.refresh.previous.clone()),
                        Arg::OptInt(session.refresh.rotated_at),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn get_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<Id>>, StoreError>> {
        Box::pin(async move {
            self.session_where(
                "s.id = ? AND s.expires_at > ?",
                &[Arg::Text(id.to_owned()), Arg::Int(now)],
            )
            .await
        })
    }

    fn user_of_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<UserSession<Id, F>>, StoreError>> {
        Box::pin(async move {
            let row = self
                .db
                .fetch_optional(
                    user_of_session_sql(),
                    &[Arg::Text(id.to_owned()), Arg::Int(now)],
                )
                .await?;
            row.map(|r| Ok((user_from_row(&r)?, session_from_row(&r)?)))
                .transpose()
        })
    }

    fn find_session_by_refresh<'a>(
        &'a self,
        hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<Id>>, StoreError>> {
        Box::pin(async move {
            let live = self
                .session_where(
                    "(s.refresh_hash = ? OR s.previous_refresh_hash = ?) AND s.expires_at > ?",
                    &[
                        Arg::Text(hash.to_owned()),
                        Arg::Text(hash.to_owned()),
                        Arg::Int(now),
                    ],
                )
                .await?;
            if live.is_some() {
                return Ok(live);
            }
            self.session_where(
                "s.id = (SELECT r.session_id FROM session_rotated_tokens r \
                 WHERE r.token_hash = ?) AND s.expires_at > ?",
                &[Arg::Text(hash.to_owned()), Arg::Int(now)],
            )
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
            let mut tx = self.db.begin().await?;
            let changed = tx
                .execute(
                    "UPDATE sessions SET refresh_hash = ?, previous_refresh_hash = ?, \
                     rotated_at = ? WHERE id = ? AND refresh_hash = ?",
                    &[
                        Arg::OptText(next.current.clone()),
                        Arg::OptText(next.previous.clone()),
                        Arg::OptInt(next.rotated_at),
                        Arg::Text(id.to_owned()),
                        Arg::Text(expected.to_owned()),
                    ],
                )
                .await?;
            if changed != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            if let Some(hash) = retired {
                tx.execute(
                    "INSERT INTO session_rotated_tokens (token_hash, session_id) VALUES (?, ?)",
                    &[Arg::Text(hash.to_owned()), Arg::Text(id.to_owned())],
                )
                .await?;
            }
            tx.commit().await?;
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
            self.db
                .execute(
                    "UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
                    &[
                        Arg::Int(now),
                        Arg::Text(id.to_owned()),
                        Arg::Int(stale_before),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn list_sessions<'a>(
        &'a self,
        user_id: &'a Id,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<Session<Id>>, StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = ? AND \
                 s.expires_at > ? ORDER BY s.created_at DESC, s.id"
            );
            let rows = self
                .db
                .fetch_all(&sql, &[user_id.to_value().into(), Arg::Int(now)])
                .await?;
            rows.iter().map(session_from_row).collect()
        })
    }

    fn delete_sessions<'a>(
        &'a self,
        user_id: &'a Id,
        only: Option<&'a str>,
        except: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let mut sql = "SELECT id FROM sessions WHERE user_id = ?".to_owned();
            let mut args: Vec<Arg> = vec![user_id.to_value().into()];
            if let Some(only) = only {
                sql.push_str(" AND id = ?");
                args.push(Arg::Text(only.to_owned()));
            }
            if let Some(except) = except {
                sql.push_str(" AND id <> ?");
                args.push(Arg::Text(except.to_owned()));
            }
            let mut tx = self.db.begin().await?;
            let ids = tx
                .fetch_all(&sql, &args)
                .await?
                .iter()
                .map(|r| r.text("id"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut gone = Vec::with_capacity(ids.len());
            // Bounded statements: a user with thousands of sessions is deleted in batches.
            for batch in ids.chunks(100) {
                let list = marks(batch.len());
                let batch_args: Vec<Arg> = batch.iter().cloned().map(Arg::Text).collect();
                tx.execute(
                    &format!("DELETE FROM access_tokens WHERE session_id IN ({list})"),
                    &batch_args,
                )
                .await?;
                tx.execute(
                    &format!("DELETE FROM session_rotated_tokens WHERE session_id IN ({list})"),
                    &batch_args,
                )
                .await?;
                tx.execute(
                    &format!("DELETE FROM sessions WHERE id IN ({list})"),
                    &batch_args,
                )
                .await?;
                gone.extend_from_slice(batch);
            }
            if only.is_none() {
                tx.execute(
                    "DELETE FROM access_tokens WHERE user_id = ? AND session_id IS NULL",
                    &[user_id.to_value().into()],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(gone)
        })
    }

    fn delete_session_tokens_before<'a>(
        &'a self,
        id: &'a str,
        before: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "DELETE FROM access_tokens WHERE session_id = ? AND created_at < ?",
                    &[Arg::Text(id.to_owned()), Arg::Int(before)],
                )
                .await
        })
    }

    fn prune<'a>(
        &'a self,
        now: i64,
        tokens_before: Option<i64>,
    ) -> BoxFuture<'a, Result<Pruned, StoreError>> {
        Box::pin(async move {
            let mut tx = self.db.begin().await?;
            let mut access_tokens = tx
                .execute(
                    "DELETE FROM access_tokens WHERE session_id IN \
                     (SELECT id FROM sessions WHERE expires_at <= ?)",
                    &[Arg::Int(now)],
                )
                .await?;
            tx.execute(
                "DELETE FROM session_rotated_tokens WHERE session_id IN \
                 (SELECT id FROM sessions WHERE expires_at <= ?)",
                &[Arg::Int(now)],
            )
            .await?;
            let sessions = tx
                .execute(
                    "DELETE FROM sessions WHERE expires_at <= ?",
                    &[Arg::Int(now)],
                )
                .await?;
            // Tokens whose session ended some other way (none should be left, but a token
            // written while its session was being revoked could be).
            access_tokens += tx
                .execute(
                    "DELETE FROM access_tokens WHERE session_id IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM sessions s WHERE s.id = access_tokens.session_id)",
                    &[],
                )
                .await?;
            if let Some(before) = tokens_before {
                access_tokens += tx
                    .execute(
                        "DELETE FROM access_tokens WHERE created_at < ?",
                        &[Arg::Int(before)],
                    )
                    .await?;
            }
            tx.commit().await?;
            Ok(Pruned {
                sessions,
                access_tokens,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_columns_do_not_clash_with_user_columns() {
        for column in SESSION_COLUMNS.split(", ") {
            let alias = column.rsplit(" AS ").next().unwrap_or_default();
            assert!(alias.starts_with("s_"), "{column}");
            assert!(!USER_COLUMNS.split(", ").any(|u| u == alias));
        }
        assert_eq!(marks(3), "?, ?, ?");
    }
}

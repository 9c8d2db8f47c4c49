//! Bulk import: many users with their provider links in one transaction per batch, for moving a
//! deployment over (`axum-users-server import fastapi-users`). The rows are the ones
//! [`UserStore::create`](axum_users::UserStore::create) and
//! [`OAuthAccountStore::add_oauth_account`](axum_users::OAuthAccountStore::add_oauth_account)
//! write, through the same insert statements; what is present already is left alone, so that a
//! second run writes nothing.

use axum_users::{NewOAuthAccount, NewUser, StoreError, UserFields, email_key};

use super::{SqlStore, insert_account_row, insert_user_row};
use crate::db::{Arg, Tx};
use crate::id::SqlId;

/// One user to import, with the id it had (kept) and its provider links (their tokens already
/// sealed by the manager, as a sign-in stores them).
#[derive(Debug, Clone)]
pub struct ImportUser<Id, F> {
    /// The user; `id` must be set (imports keep the ids the tokens name).
    pub user: NewUser<Id, F>,
    /// The provider accounts linked to the user.
    pub accounts: Vec<NewOAuthAccount>,
}

/// What the import did with one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Imported {
    /// Written, with this many of its provider links (the others were linked to someone
    /// already).
    Created {
        /// Links written.
        accounts: usize,
        /// Links left out: the provider account is linked to another user already.
        accounts_taken: usize,
    },
    /// A user with this id and this e-mail address exists already (an earlier import): nothing
    /// written.
    Present,
    /// Another user (another id) has this e-mail address: nothing written.
    EmailTaken,
    /// A user with this id exists with another e-mail address: nothing written.
    IdTaken,
    /// The user came without an id: nothing written.
    NoId,
}

impl<Id: SqlId, F: UserFields> SqlStore<Id, F> {
    /// Imports a batch of users in one transaction: each user that is not present yet (by id
    /// and by e-mail address, case-insensitively) is inserted with the provider links that are
    /// not linked yet. Returns what happened to each, in order. With `dry_run` the transaction
    /// is rolled back: the answer says what a real run would do.
    ///
    /// # Errors
    /// A store failure; nothing of the batch is written then. A concurrent writer that takes an
    /// e-mail address between the check and the insert fails the batch with
    /// [`StoreError::DuplicateEmail`] (run the import again: the batch is then checked anew).
    pub async fn import_users(
        &self,
        batch: Vec<ImportUser<Id, F>>,
        dry_run: bool,
    ) -> Result<Vec<Imported>, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for item in batch {
            match import_one(&mut tx, item).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => {
                    tx.rollback().await?;
                    return Err(e);
                }
            }
        }
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(outcomes)
    }
}

async fn import_one<Id: SqlId, F: UserFields>(
    tx: &mut Tx,
    item: ImportUser<Id, F>,
) -> Result<Imported, StoreError> {
    let Some(id) = item.user.id.clone() else {
        return Ok(Imported::NoId);
    };
    let key = email_key(&item.user.email);
    let found = tx
        .fetch_all(
            "SELECT id, email_key FROM users WHERE id = ? OR email_key = ?",
            &[id.to_value().into(), Arg::Text(key.clone())],
        )
        .await?;
    let mut same_id = None;
    let mut email_elsewhere = false;
    for row in &found {
        let row_id = Id::from_value(row.id("id")?);
        let row_key = row.text("email_key")?;
        if row_id.as_ref() == Some(&id) {
            same_id = Some(row_key == key);
        } else if row_key == key {
            email_elsewhere = true;
        }
    }
    match same_id {
        Some(true) => return Ok(Imported::Present),
        Some(false) => return Ok(Imported::IdTaken),
        None if email_elsewhere => return Ok(Imported::EmailTaken),
        None => {}
    }
    insert_user_row(tx, item.user).await?;
    let (mut accounts, mut accounts_taken) = (0, 0);
    for account in item.accounts {
        let linked = tx
            .fetch_optional(
                "SELECT id FROM oauth_accounts WHERE oauth_name = ? AND account_id = ?",
                &[
                    Arg::Text(account.oauth_name.clone()),
                    Arg::Text(account.account_id.clone()),
                ],
            )
            .await?;
        if linked.is_some() {
            accounts_taken += 1;
            continue;
        }
        insert_account_row(tx, &id, account).await?;
        accounts += 1;
    }
    Ok(Imported::Created {
        accounts,
        accounts_taken,
    })
}

//! Passkeys in memory: each call holds the lock, so every compare-and-swap is atomic.

use super::MemoryStore;
use crate::auth::BoxFuture;
use crate::model::{UserFields, UserId};
use crate::passkeys::{PasskeyChallenge, PasskeyRecord, PasskeyRemoval, PasskeyStore};
use crate::store::StoreError;

impl<Id: UserId, F: UserFields> PasskeyStore<Id> for MemoryStore<Id, F> {
    fn create_passkey<'a>(
        &'a self,
        record: &'a PasskeyRecord<Id>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                if t.passkeys
                    .iter()
                    .any(|p| p.credential_key == record.credential_key || p.id == record.id)
                {
                    return Ok(false);
                }
                t.passkeys.push(record.clone());
                Ok(true)
            })
        })
    }

    fn list_passkeys<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Vec<PasskeyRecord<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let mut mine: Vec<_> = t
                    .passkeys
                    .iter()
                    .filter(|p| &p.user_id == user_id)
                    .cloned()
                    .collect();
                mine.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
                Ok(mine)
            })
        })
    }

    fn passkey_by_credential<'a>(
        &'a self,
        credential_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<PasskeyRecord<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                Ok(t.passkeys
                    .iter()
                    .find(|p| p.credential_key == credential_key)
                    .cloned())
            })
        })
    }

    fn rename_passkey<'a>(
        &'a self,
        user_id: &'a Id,
        id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let Some(p) = t
                    .passkeys
                    .iter_mut()
                    .find(|p| &p.user_id == user_id && p.id == id)
                else {
                    return Ok(false);
                };
                p.name = name.to_owned();
                Ok(true)
            })
        })
    }

    fn delete_passkey<'a>(
        &'a self,
        user_id: &'a Id,
        id: &'a str,
        keep_one: bool,
    ) -> BoxFuture<'a, Result<PasskeyRemoval, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let mine = t.passkeys.iter().filter(|p| &p.user_id == user_id).count();
                let Some(at) = t
                    .passkeys
                    .iter()
                    .position(|p| &p.user_id == user_id && p.id == id)
                else {
                    return Ok(PasskeyRemoval::NotFound);
                };
                if keep_one && mine <= 1 {
                    return Ok(PasskeyRemoval::LastOne);
                }
                t.passkeys.remove(at);
                Ok(PasskeyRemoval::Removed)
            })
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
            self.with(|t| {
                let Some(p) = t
                    .passkeys
                    .iter_mut()
                    .find(|p| p.id == id && p.sign_count == seen_count)
                else {
                    return Ok(false);
                };
                p.passkey = passkey.to_owned();
                p.sign_count = sign_count;
                p.last_used_at = Some(now);
                Ok(true)
            })
        })
    }

    fn create_passkey_challenge<'a>(
        &'a self,
        handle_hash: &'a str,
        challenge: &'a PasskeyChallenge<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                t.passkey_challenges
                    .insert(handle_hash.to_owned(), challenge.clone());
                Ok(())
            })
        })
    }

    fn take_passkey_challenge<'a>(
        &'a self,
        handle_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<PasskeyChallenge<Id>>, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                Ok(t.passkey_challenges
                    .remove(handle_hash)
                    .filter(|c| c.expires_at > now))
            })
        })
    }

    fn prune_passkey_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.with(|t| {
                let before = t.passkey_challenges.len();
                t.passkey_challenges.retain(|_, c| c.expires_at > now);
                Ok((before - t.passkey_challenges.len()) as u64)
            })
        })
    }
}

//! [`SeaOrmStore`]: the core's store traits over SeaORM entities.

use axum_users::{
    AccessTokenStore, NewOAuthAccount, NewUser, OAuthAccount, OAuthAccountStore, PasswordHash,
    Secret, SessionStoreRef, StoreError, TokenSession, Unlink, User, UserChanges, UserStore,
    email_key,
};
use sea_orm::sea_query::{Expr, Value, ValueType};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseBackend,
    DatabaseConnection, EntityTrait, IdenStatic, IsolationLevel, ModelTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Related, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::columns::{
    MfaColumns, OAuthColumns, RotatedColumns, SessionColumns, TimeColumns, TokenColumns,
    UserColumns,
};
use crate::entity;
use crate::error::{bad_column, store_error};
use crate::{MfaEntities, SetupError, StoreEntity, UserEntity};

/// Users, OAuth accounts, access tokens and sessions in SeaORM entities: the base ones with
/// UUID keys by default, or an application's own. The mail outbox is the base
/// [`entity::mail_outbox`] entity.
///
/// `U` is the user entity ([`UserEntity`]); `O` the OAuth account entity, with the columns `id`,
/// `user_id`, `oauth_name`, `access_token`, `expires_at`, `refresh_token`, `account_id`,
/// `account_email` and a relation from `U` to it (the `oauth_accounts` back-relation); `T` the
/// access token entity, with `token`, `user_id`, `created_at` and `session_id`; `S` the session
/// entity, with the columns of [`entity::session`]; `R` the rotated refresh-token entity, with
/// `token_hash` and `session_id`; `M` the second factors' entities ([`MfaEntities`]). The
/// store finds those columns by name when it is built.
///
/// The audit log ([`entity::audit_event`]), the mail outbox and the webhook outbox are base
/// entities that name no user by a foreign key, the same for every store.
pub struct SeaOrmStore<
    U: UserEntity = entity::user::Entity,
    O: StoreEntity = entity::oauth_account::Entity,
    T: StoreEntity = entity::access_token::Entity,
    S: StoreEntity = entity::session::Entity,
    R: StoreEntity = entity::session_rotated_token::Entity,
    M: MfaEntities = entity::Mfa,
> {
    pub(crate) db: DatabaseConnection,
    pub(crate) users: UserColumns<U>,
    /// The user's times, when the user entity has them: the users directory needs them.
    pub(crate) times: Option<TimeColumns<U>>,
    oauth: OAuthColumns<O>,
    pub(crate) tokens: TokenColumns<T>,
    pub(crate) sessions: SessionColumns<S>,
    pub(crate) rotated: RotatedColumns<R>,
    pub(crate) mfa: MfaColumns<M>,
    /// Where audit events are also delivered (see `webhooks.rs`).
    pub(crate) webhooks: std::sync::Arc<axum_users::WebhookRoutes>,
}

/// The store over the base entities with integer keys ([`entity::integer`]).
pub type IntegerStore = SeaOrmStore<
    entity::integer::user::Entity,
    entity::integer::oauth_account::Entity,
    entity::integer::access_token::Entity,
    entity::integer::session::Entity,
    entity::integer::session_rotated_token::Entity,
    entity::integer::Mfa,
>;

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    Clone for SeaOrmStore<U, O, T, S, R, M>
{
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            users: self.users,
            times: self.times,
            oauth: self.oauth,
            tokens: self.tokens,
            sessions: self.sessions,
            rotated: self.rotated,
            mfa: self.mfa,
            webhooks: self.webhooks.clone(),
        }
    }
}

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    std::fmt::Debug for SeaOrmStore<U, O, T, S, R, M>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaOrmStore").finish_non_exhaustive()
    }
}

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    SeaOrmStore<U, O, T, S, R, M>
{
    /// A store over an open connection. The schema must exist (see [`crate::migration`]).
    ///
    /// The users directory (`GET /users`, the users' times) is on when the user entity has
    /// `created_at`, `updated_at` and `last_login_at` BIGINT columns (the base one does), off
    /// otherwise.
    ///
    /// # Errors
    /// [`SetupError::MissingColumn`] when an entity lacks a column the store needs.
    pub fn new(db: DatabaseConnection) -> Result<Self, SetupError> {
        Ok(Self {
            db,
            users: UserColumns::find()?,
            times: TimeColumns::find_optional(),
            oauth: OAuthColumns::find()?,
            tokens: TokenColumns::find()?,
            sessions: SessionColumns::find()?,
            rotated: RotatedColumns::find()?,
            mfa: MfaColumns::find()?,
            webhooks: std::sync::Arc::default(),
        })
    }

    /// Connects to `url` (e.g. `sqlite://app.db?mode=rwc`, `postgres://...`) with SeaORM's
    /// defaults (on SQLite one connection, so `sqlite::memory:` works) and statement logging
    /// off, then [`SeaOrmStore::new`]. Use [`SeaOrmStore::new`] for a pool of your own making.
    ///
    /// # Errors
    /// The driver's error, or a missing column.
    pub async fn connect(url: &str) -> Result<Self, SetupError> {
        let mut options = sea_orm::ConnectOptions::new(url);
        options.sqlx_logging(false);
        Self::new(Database::connect(options).await?)
    }

    /// The connection, for the application's own queries and migrations.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    async fn one_user(
        &self,
        select: sea_orm::Select<U>,
    ) -> Result<Option<User<U::Id, U::Fields>>, StoreError> {
        self.one_user_in(&self.db, select).await
    }

    async fn one_user_in<C: ConnectionTrait>(
        &self,
        conn: &C,
        select: sea_orm::Select<U>,
    ) -> Result<Option<User<U::Id, U::Fields>>, StoreError> {
        let model = select.one(conn).await.map_err(store_error)?;
        model.map(|m| self.user_from_model(&m)).transpose()
    }

    /// Begins a transaction for a read-check-write: on SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so that its reads cannot go stale before it writes; on PostgreSQL it
    /// runs at READ COMMITTED whatever the server's default, so that a statement after a row
    /// lock sees what the lock's previous holder committed. MySQL's locking reads
    /// (`FOR UPDATE`) always read the latest rows.
    pub(crate) async fn begin_locked(&self) -> Result<sea_orm::DatabaseTransaction, StoreError> {
        let options = match self.db.get_database_backend() {
            DatabaseBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            DatabaseBackend::Postgres => TransactionOptions {
                isolation_level: Some(IsolationLevel::ReadCommitted),
                ..TransactionOptions::default()
            },
            _ => TransactionOptions::default(),
        };
        self.db
            .begin_with_options(options)
            .await
            .map_err(store_error)
    }

    /// Inserts a user through `conn` (epoch 0).
    async fn insert_user<C: ConnectionTrait>(
        &self,
        conn: &C,
        user: NewUser<U::Id, U::Fields>,
    ) -> Result<User<U::Id, U::Fields>, StoreError> {
        let mut active = self.user_columns(
            U::ActiveModel::new(),
            &user.email,
            Some(&user.hashed_password),
            [user.is_active, user.is_superuser, user.is_verified],
            &user.fields,
        )?;
        // Set, not left to a default: a schema made from an entity has none.
        write(&mut active, self.users.email_epoch, 0_i64.into())?;
        if let Some(times) = &self.times {
            let now = axum_users::now_unix();
            write(&mut active, times.created_at, now.into())?;
            write(&mut active, times.updated_at, now.into())?;
        }
        if let Some(id) = user.id {
            write(&mut active, self.users.id, id.into())?;
        }
        let model = active.insert(conn).await.map_err(store_error)?;
        self.user_from_model(&model)
    }

    pub(crate) fn user_from_model(
        &self,
        model: &U::Model,
    ) -> Result<User<U::Id, U::Fields>, StoreError> {
        let c = &self.users;
        Ok(User {
            id: read(model, c.id)?,
            email: read(model, c.email)?,
            hashed_password: PasswordHash(read(model, c.hashed_password)?),
            is_active: read(model, c.is_active)?,
            is_superuser: read(model, c.is_superuser)?,
            is_verified: read(model, c.is_verified)?,
            email_epoch: read(model, c.email_epoch)?,
            fields: U::fields(model),
        })
    }

    /// Every column of a user but the key, written into `active`.
    fn user_columns(
        &self,
        mut active: U::ActiveModel,
        email: &str,
        hashed_password: Option<&PasswordHash>,
        flags: [bool; 3],
        fields: &U::Fields,
    ) -> Result<U::ActiveModel, StoreError> {
        let c = &self.users;
        let [is_active, is_superuser, is_verified] = flags;
        write(&mut active, c.email, email.into())?;
        write(&mut active, c.email_key, email_key(email).into())?;
        if let Some(hash) = hashed_password {
            write(&mut active, c.hashed_password, hash.0.as_str().into())?;
        }
        write(&mut active, c.is_active, is_active.into())?;
        write(&mut active, c.is_superuser, is_superuser.into())?;
        write(&mut active, c.is_verified, is_verified.into())?;
        U::set_fields(&mut active, fields);
        Ok(active)
    }

    fn oauth_from_model(&self, model: &O::Model) -> Result<OAuthAccount<U::Id>, StoreError> {
        let c = &self.oauth;
        Ok(OAuthAccount {
            id: read(model, c.id)?,
            user_id: read(model, c.user_id)?,
            oauth_name: read(model, c.oauth_name)?,
            access_token: Secret::new(read::<String, _>(model, c.access_token)?),
            expires_at: read(model, c.expires_at)?,
            refresh_token: read::<Option<String>, _>(model, c.refresh_token)?.map(Secret::new),
            account_id: read(model, c.account_id)?,
            account_email: read(model, c.account_email)?,
        })
    }
}

/// A column of a row as a Rust value.
pub(crate) fn read<V: ValueType, M: ModelTrait>(
    model: &M,
    column: <M::Entity as EntityTrait>::Column,
) -> Result<V, StoreError> {
    <V as ValueType>::try_from(model.get(column)).map_err(|_| bad_column(column.as_str()))
}

/// Sets a column of an active model.
pub(crate) fn write<A: ActiveModelTrait>(
    active: &mut A,
    column: <A::Entity as EntityTrait>::Column,
    value: Value,
) -> Result<(), StoreError> {
    active
        .try_set(column, value)
        .map_err(|_| bad_column(column.as_str()))
}

fn secret_value(secret: Option<&Secret>) -> Value {
    secret.map(|s| s.expose().to_owned()).into()
}

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    UserStore for SeaOrmStore<U, O, T, S, R, M>
{
    type Id = U::Id;
    type Fields = U::Fields;

    async fn get(&self, id: &U::Id) -> Result<Option<User<U::Id, U::Fields>>, StoreError> {
        self.one_user(U::find().filter(self.users.id.eq(id.clone())))
            .await
    }

    async fn get_by_email(
        &self,
        email: &str,
    ) -> Result<Option<User<U::Id, U::Fields>>, StoreError> {
        self.one_user(U::find().filter(self.users.email_key.eq(email_key(email))))
            .await
    }

    async fn create(
        &self,
        user: NewUser<U::Id, U::Fields>,
    ) -> Result<User<U::Id, U::Fields>, StoreError> {
        self.insert_user(&self.db, user).await
    }

    async fn update(
        &self,
        id: &U::Id,
        changes: UserChanges<U::Fields>,
    ) -> Result<Option<User<U::Id, U::Fields>>, StoreError> {
        let c = &self.users;
        let mut update = U::update_many().filter(c.id.eq(id.clone()));
        let mut any = false;
        if let Some(email) = &changes.email {
            // First: MySQL evaluates assignments left to right, so the comparison must come
            // before `email` is overwritten; and it compares bytes there, as the column's
            // collation may ignore case.
            // (sea-query's placeholders: numbered on PostgreSQL, `?` elsewhere.)
            let template = match self.db.get_database_backend() {
                DatabaseBackend::Postgres => "$1 + CASE WHEN $2 = $3 THEN 0 ELSE 1 END",
                DatabaseBackend::MySql => {
                    "? + CASE WHEN CAST(? AS BINARY) = CAST(? AS BINARY) THEN 0 ELSE 1 END"
                }
                _ => "? + CASE WHEN ? = ? THEN 0 ELSE 1 END",
            };
            let bump = Expr::cust_with_exprs(
                template,
                [
                    Expr::col(c.email_epoch),
                    Expr::col(c.email),
                    Expr::val(email.clone()),
                ],
            );
            update = update
                .col_expr(c.email_epoch, bump)
                .col_expr(c.email, Expr::val(email.clone()))
                .col_expr(c.email_key, Expr::val(email_key(email)));
            any = true;
        }
        for (column, value) in [
            (c.is_active, changes.is_active),
            (c.is_superuser, changes.is_superuser),
            (c.is_verified, changes.is_verified),
        ] {
            if let Some(value) = value {
                update = update.col_expr(column, Expr::val(value));
                any = true;
            }
        }
        if let Some(fields) = &changes.fields {
            // A blank active model, not `new()`: defaults an application sets for new rows
            // must not overwrite the stored values.
            let mut active = <U::ActiveModel as ActiveModelTrait>::default();
            U::set_fields(&mut active, fields);
            if active.is_changed() {
                update = update.set(active);
                any = true;
            }
        }
        if !any {
            return self.get(id).await;
        }
        if let Some(times) = &self.times {
            update = update.col_expr(times.updated_at, Expr::val(axum_users::now_unix()));
        }
        // The read in the same transaction returns the row as this update left it.
        if let Some(epoch) = changes.if_email_epoch {
            update = update.filter(c.email_epoch.eq(epoch));
        }
        let txn = self.db.begin().await.map_err(store_error)?;
        let written = update.exec(&txn).await.map_err(store_error)?;
        if changes.if_email_epoch.is_some() && written.rows_affected == 0 {
            // The epoch moved on (or the user is gone): the compare-and-swap lost.
            return Ok(None);
        }
        let user = self
            .one_user_in(&txn, U::find().filter(c.id.eq(id.clone())))
            .await?;
        txn.commit().await.map_err(store_error)?;
        Ok(user)
    }

    async fn replace_password(
        &self,
        id: &U::Id,
        expected: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let c = &self.users;
        let mut update = U::update_many().col_expr(c.hashed_password, Expr::value(new.0.clone()));
        if let Some(times) = &self.times {
            update = update.col_expr(times.updated_at, Expr::val(axum_users::now_unix()));
        }
        let done = update
            .filter(c.id.eq(id.clone()))
            .filter(c.hashed_password.eq(expected.0.clone()))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected == 1)
    }

    async fn delete(&self, id: &U::Id) -> Result<bool, StoreError> {
        // The foreign keys cascade; deleting the dependent rows here as well keeps that true
        // for schemas an application made without `ON DELETE CASCADE`.
        let txn = self.db.begin().await.map_err(store_error)?;
        O::delete_many()
            .filter(self.oauth.user_id.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        T::delete_many()
            .filter(self.tokens.user_id.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let theirs = S::find()
            .select_only()
            .column(self.sessions.id)
            .filter(self.sessions.user_id.eq(id.clone()))
            .into_query();
        R::delete_many()
            .filter(self.rotated.session_id.in_subquery(theirs))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        S::delete_many()
            .filter(self.sessions.user_id.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        self.delete_second_factors(&txn, id, true).await?;
        let done = U::delete_many()
            .filter(self.users.id.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(done.rows_affected == 1)
    }

    fn session_store(&self) -> Option<SessionStoreRef<U::Id, U::Fields>> {
        Some(std::sync::Arc::new(self.clone()))
    }

    fn directory(&self) -> Option<axum_users::UserDirectoryRef<U::Id, U::Fields>> {
        self.times.is_some().then(|| {
            let directory: axum_users::UserDirectoryRef<U::Id, U::Fields> =
                std::sync::Arc::new(self.clone());
            directory
        })
    }

    fn audit_store(&self) -> Option<axum_users::AuditStoreRef> {
        Some(std::sync::Arc::new(self.clone()))
    }

    fn mfa_store(&self) -> Option<axum_users::MfaStoreRef<U::Id>> {
        Some(std::sync::Arc::new(self.clone()))
    }
}

impl<U, O, T, S, R, M> OAuthAccountStore for SeaOrmStore<U, O, T, S, R, M>
where
    U: UserEntity + Related<O>,
    O: StoreEntity,
    T: StoreEntity,
    S: StoreEntity,
    R: StoreEntity,
    M: MfaEntities,
{
    async fn get_by_oauth_account(
        &self,
        oauth_name: &str,
        account_id: &str,
    ) -> Result<Option<User<U::Id, U::Fields>>, StoreError> {
        let c = &self.oauth;
        self.one_user(
            U::find()
                .inner_join(O::default())
                .filter(c.oauth_name.eq(oauth_name))
                .filter(c.account_id.eq(account_id)),
        )
        .await
    }

    async fn list_oauth_accounts(
        &self,
        user_id: &U::Id,
    ) -> Result<Vec<OAuthAccount<U::Id>>, StoreError> {
        let c = &self.oauth;
        let rows = O::find()
            .filter(c.user_id.eq(user_id.clone()))
            .order_by_asc(c.oauth_name)
            .order_by_asc(c.account_id)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        rows.iter().map(|m| self.oauth_from_model(m)).collect()
    }

    async fn add_oauth_account(
        &self,
        user_id: &U::Id,
        account: NewOAuthAccount,
    ) -> Result<OAuthAccount<U::Id>, StoreError> {
        self.insert_account(&self.db, user_id, account).await
    }

    async fn create_with_oauth_account(
        &self,
        user: NewUser<U::Id, U::Fields>,
        account: NewOAuthAccount,
    ) -> Result<User<U::Id, U::Fields>, StoreError> {
        let txn = self.db.begin().await.map_err(store_error)?;
        let user = self.insert_user(&txn, user).await?;
        self.insert_account(&txn, &user.id, account).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(user)
    }

    async fn update_oauth_account(&self, account: &OAuthAccount<U::Id>) -> Result<(), StoreError> {
        let c = &self.oauth;
        O::update_many()
            .col_expr(c.access_token, Expr::value(account.access_token.expose()))
            .col_expr(c.expires_at, Expr::value(account.expires_at))
            .col_expr(
                c.refresh_token,
                Expr::value(secret_value(account.refresh_token.as_ref())),
            )
            .col_expr(c.account_email, Expr::value(account.account_email.clone()))
            .filter(c.id.eq(account.id.clone()))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn unlink_oauth_account(
        &self,
        user_id: &U::Id,
        account_id: &U::Id,
    ) -> Result<Unlink, StoreError> {
        // The user's row lock (on SQLite the write lock of the transaction) serialises unlinks
        // of one user, and the links are read with a locking read, so the check below sees
        // every link a concurrent unlink left.
        let c = &self.oauth;
        let txn = self.begin_locked().await?;
        let user = U::find()
            .filter(self.users.id.eq(user_id.clone()))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(store_error)?;
        let Some(user) = user else {
            txn.rollback().await.map_err(store_error)?;
            return Ok(Unlink::NotFound);
        };
        let usable = PasswordHash(read(&user, self.users.hashed_password)?).is_usable();
        let links = O::find()
            .filter(c.user_id.eq(user_id.clone()))
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(store_error)?
            .iter()
            .map(|m| read::<U::Id, _>(m, c.id))
            .collect::<Result<Vec<_>, _>>()?;
        let refusal = if !links.contains(account_id) {
            Some(Unlink::NotFound)
        } else if links.len() == 1 && !usable {
            Some(Unlink::LastSignInMethod)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            // Now, not when the connection is next used: the user's row stays locked till then.
            txn.rollback().await.map_err(store_error)?;
            return Ok(refusal);
        }
        O::delete_many()
            .filter(c.id.eq(account_id.clone()))
            .filter(c.user_id.eq(user_id.clone()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(Unlink::Removed)
    }
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
    /// Stores an access token hash, of a session or of none.
    async fn insert_token(
        &self,
        token_hash: &str,
        user_id: &U::Id,
        session_id: Option<&str>,
        created_at: i64,
    ) -> Result<(), StoreError> {
        let c = &self.tokens;
        let mut active = T::ActiveModel::new();
        write(&mut active, c.token, token_hash.into())?;
        write(&mut active, c.user_id, user_id.clone().into())?;
        write(
            &mut active,
            c.session_id,
            session_id.map(str::to_owned).into(),
        )?;
        write(&mut active, c.created_at, created_at.into())?;
        T::insert(active)
            .exec_without_returning(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Links an account through `conn`.
    async fn insert_account<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: &U::Id,
        account: NewOAuthAccount,
    ) -> Result<OAuthAccount<U::Id>, StoreError> {
        let c = &self.oauth;
        let mut active = O::ActiveModel::new();
        if let Some(id) = <U::Id as axum_users::UserId>::generate() {
            write(&mut active, c.id, id.into())?;
        }
        write(&mut active, c.user_id, user_id.clone().into())?;
        write(&mut active, c.oauth_name, account.oauth_name.into())?;
        write(
            &mut active,
            c.access_token,
            account.access_token.expose().into(),
        )?;
        write(&mut active, c.expires_at, account.expires_at.into())?;
        write(
            &mut active,
            c.refresh_token,
            secret_value(account.refresh_token.as_ref()),
        )?;
        write(&mut active, c.account_id, account.account_id.into())?;
        write(&mut active, c.account_email, account.account_email.into())?;
        let model = active.insert(conn).await.map_err(store_error)?;
        self.oauth_from_model(&model)
    }
}

impl<U: UserEntity, O: StoreEntity, T: StoreEntity, S: StoreEntity, R: StoreEntity, M: MfaEntities>
    AccessTokenStore for SeaOrmStore<U, O, T, S, R, M>
{
    type Id = U::Id;

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &U::Id,
        created_at: i64,
    ) -> Result<(), StoreError> {
        self.insert_token(token_hash, user_id, None, created_at)
            .await
    }

    async fn find_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> Result<Option<U::Id>, StoreError> {
        let found = self.find_session_token(token_hash, not_before).await?;
        Ok(found.map(|(user_id, _)| user_id))
    }

    async fn delete_token(&self, token_hash: &str) -> Result<(), StoreError> {
        T::delete_many()
            .filter(self.tokens.token.eq(token_hash))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn create_session_token(
        &self,
        token_hash: &str,
        user_id: &U::Id,
        session_id: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        self.insert_token(token_hash, user_id, Some(session_id), created_at)
            .await
    }

    async fn find_session_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> Result<Option<TokenSession<U::Id>>, StoreError> {
        let c = &self.tokens;
        let mut select = T::find().filter(c.token.eq(token_hash));
        if let Some(not_before) = not_before {
            select = select.filter(c.created_at.gte(not_before));
        }
        let row = select.one(&self.db).await.map_err(store_error)?;
        row.map(|m| Ok((read(&m, c.user_id)?, read(&m, c.session_id)?)))
            .transpose()
    }
}

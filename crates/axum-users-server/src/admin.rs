//! `axum-users-server users ...`: look at and manage accounts from the command line.

use anyhow::{Context, Result, bail};
use axum_users::{ManagerError, UserUpdate};
use clap::Subcommand;

use crate::app::{self, Users};
use crate::config::Config;

/// What to do with users.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// List users, ordered by e-mail address.
    List {
        /// How many at most.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// How many to skip first.
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// Show one user.
    Show {
        /// The user's e-mail address.
        email: String,
    },
    /// Activate (true) or deactivate (false) a user; inactive users cannot log in.
    SetActive {
        /// The user's e-mail address.
        email: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        value: bool,
    },
    /// Make a user a superuser (true) or not (false).
    SetSuperuser {
        /// The user's e-mail address.
        email: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        value: bool,
    },
    /// Mark a user's e-mail address verified (true) or not (false).
    SetVerified {
        /// The user's e-mail address.
        email: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        value: bool,
    },
    /// Delete a user, with their OAuth accounts and tokens.
    Delete {
        /// The user's e-mail address.
        email: String,
    },
}

/// One line per user: id, e-mail, then the flags that are set.
fn line(user: &axum_users::User) -> String {
    let flags: Vec<&str> = [
        (user.is_active, "active"),
        (user.is_superuser, "superuser"),
        (user.is_verified, "verified"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    format!(
        "{}  {}  {}",
        user.id,
        user.email,
        if flags.is_empty() {
            "-".into()
        } else {
            flags.join(",")
        }
    )
}

async fn find(users: &Users, email: &str) -> Result<axum_users::User> {
    match users.manager().get_by_email(email).await {
        Ok(user) => Ok(user),
        Err(ManagerError::UserNotExists) => bail!("no user has the e-mail address {email}"),
        Err(e) => Err(e.into()),
    }
}

/// Runs a `users` command against the configured database.
///
/// # Errors
/// When the database cannot be reached or the user does not exist.
pub(crate) async fn run(config: Config, command: UsersCommand) -> Result<()> {
    let store = app::open_store(&config).await?;
    let secret = app::resolve_secret(&config)?;
    let users = app::users(&config, store.clone(), None, secret, Vec::new(), None)?;
    let set = |email: String, update: UserUpdate<axum_users::NoFields>| {
        let users = users.clone();
        async move {
            let user = find(&users, &email).await?;
            let user = users
                .manager()
                .update(user, update, axum_users::Privilege::Superuser, None)
                .await
                .context("cannot update the user")?;
            println!("{}", line(&user));
            anyhow::Ok(())
        }
    };
    match command {
        UsersCommand::List { limit, offset } => {
            for user in store.list_users(limit.max(0), offset.max(0)).await? {
                println!("{}", line(&user));
            }
            Ok(())
        }
        UsersCommand::Show { email } => {
            println!("{}", line(&find(&users, &email).await?));
            Ok(())
        }
        UsersCommand::SetActive { email, value } => {
            set(
                email,
                UserUpdate {
                    is_active: Some(value),
                    ..Default::default()
                },
            )
            .await
        }
        UsersCommand::SetSuperuser { email, value } => {
            set(
                email,
                UserUpdate {
                    is_superuser: Some(value),
                    ..Default::default()
                },
            )
            .await
        }
        UsersCommand::SetVerified { email, value } => {
            set(
                email,
                UserUpdate {
                    is_verified: Some(value),
                    ..Default::default()
                },
            )
            .await
        }
        UsersCommand::Delete { email } => {
            let user = find(&users, &email).await?;
            users.manager().delete(&user, None).await?;
            println!("deleted {}", user.email);
            Ok(())
        }
    }
}

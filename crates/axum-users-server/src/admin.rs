//! `axum-users-server users ...`: look at and manage accounts from the command line.

use anyhow::{Context, Result, bail};
use axum_users::{ManagerError, UserUpdate};
use clap::Subcommand;

use crate::app::{self, Users};
use crate::config::Config;

/// What to do with users.
#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// List users (one page; the next page's cursor is printed to stderr).
    List(ListArgs),
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

/// The filters of `users list`: those of `GET /users`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only addresses containing this text (case-insensitive).
    #[arg(long)]
    q: Option<String>,
    /// Only active (true) or inactive (false) users.
    #[arg(long, action = clap::ArgAction::Set)]
    active: Option<bool>,
    /// Only verified (true) or unverified (false) users.
    #[arg(long, action = clap::ArgAction::Set)]
    verified: Option<bool>,
    /// Only superusers (true) or ordinary users (false).
    #[arg(long, action = clap::ArgAction::Set)]
    superuser: Option<bool>,
    /// Only users created at or after this time (RFC 3339 or Unix seconds).
    #[arg(long, value_parser = time_arg)]
    created_after: Option<i64>,
    /// Only users created before this time (RFC 3339 or Unix seconds).
    #[arg(long, value_parser = time_arg)]
    created_before: Option<i64>,
    /// Order: email, -email, created_at or -created_at.
    #[arg(long, default_value = "email", value_parser = sort_arg)]
    sort: axum_users::UserSort,
    /// How many at most (1 to 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: u32,
    /// Where to start: the cursor the previous page printed.
    #[arg(long)]
    cursor: Option<String>,
}

fn time_arg(text: &str) -> Result<i64, String> {
    axum_users::parse_time(text)
        .ok_or_else(|| format!("not an RFC 3339 time or Unix seconds: {text}"))
}

fn sort_arg(text: &str) -> Result<axum_users::UserSort, String> {
    axum_users::UserSort::parse(text)
        .ok_or_else(|| "one of email, -email, created_at, -created_at".to_owned())
}

impl ListArgs {
    fn query(self) -> Result<axum_users::UserQuery> {
        let after = match &self.cursor {
            Some(text) => Some(
                axum_users::UserCursor::decode(text, self.sort)
                    .context("not a cursor of this listing and sort")?,
            ),
            None => None,
        };
        let query = axum_users::UserQuery {
            q: self.q,
            is_active: self.active,
            is_verified: self.verified,
            is_superuser: self.superuser,
            created_after: self.created_after,
            created_before: self.created_before,
            sort: self.sort,
            limit: self.limit,
            after,
        };
        Ok(query)
    }
}

/// A line of `users list`: [`line()`], then when the user was created and last signed in.
fn list_line(user: &axum_users::User, times: &axum_users::UserTimes) -> String {
    format!(
        "{}  created {}  last login {}",
        line(user),
        axum_users::format_time(times.created_at),
        times
            .last_login_at
            .map_or_else(|| "never".to_owned(), axum_users::format_time)
    )
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
        UsersCommand::List(args) => {
            let query = args.query()?;
            let page = users.manager().list_users(&query).await?;
            for (user, times) in &page.items {
                println!("{}", list_line(user, times));
            }
            if let Some(cursor) = page.next_cursor {
                eprintln!("next page: --cursor {}", cursor.encode(query.sort));
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

//! `axum-users-server import fastapi-users --from <URL>`: moves the users of a FastAPI Users
//! deployment (ids, password hashes, flags, provider accounts) into the configured database.
//!
//! The source is read in id order, a page at a time; each page is written in one transaction
//! through [`axum_users_sqlx::SqlStore::import_users`], with the provider tokens sealed by the
//! manager as a sign-in seals them. What is present already is left alone, so a second run
//! writes nothing and says so.

mod source;
mod window;

pub(crate) use window::jwt_window_end;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum_users::{
    NewOAuthAccount, NewUser, NoFields, PasswordHash, Secret, email_key, normalize_email,
};
use axum_users_sqlx::{ImportUser, Imported, SqlPool, StoreOptions};
use clap::{Args, Subcommand};
use uuid::Uuid;

use crate::app;
use crate::config::Config;
use source::{Source, SourceAccount, SourceUser};

/// What to import from.
#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// Copy the users of a FastAPI Users database (SQLAlchemy or Tortoise tables) into the
    /// configured database: ids, password hashes (verified and rehashed at first sign-in),
    /// flags and provider accounts. Users present already are left alone: running it again
    /// changes nothing. Set AXUM_USERS_SECRET to the FastAPI Users app's JWT secret to keep
    /// its tokens (see docs/migrating-from-fastapi-users.md).
    #[command(name = "fastapi-users")]
    FastapiUsers(FastapiUsersArgs),
}

/// The options of `import fastapi-users`.
#[derive(Debug, Args)]
pub(crate) struct FastapiUsersArgs {
    /// URL of the FastAPI Users database: sqlite://path.db, postgres://user@host/db or
    /// mysql://user@host/db (the driver prefixes of SQLAlchemy URLs, +aiosqlite, +asyncpg,
    /// +aiomysql, ..., are accepted and dropped). Read only.
    #[arg(long, value_name = "URL")]
    from: String,
    /// Read everything and report what would be copied and skipped, writing nothing.
    #[arg(long)]
    dry_run: bool,
    /// Users written per transaction.
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
}

/// Runs an `import` command.
///
/// # Errors
/// When the source cannot be read (unreachable, not a FastAPI Users database, integer ids) or
/// the target cannot be written; the batches written before a failure stay (each is whole), and
/// a second run goes on where the first stopped.
pub(crate) async fn run(config: Config, command: ImportCommand) -> Result<()> {
    match command {
        ImportCommand::FastapiUsers(args) => import_fastapi_users(config, args).await,
    }
}

/// What the run did, for the final report.
#[derive(Debug, Default)]
struct Report {
    read: u64,
    copied: u64,
    accounts: u64,
    present: u64,
    skipped: BTreeMap<&'static str, u64>,
    skipped_links: BTreeMap<&'static str, u64>,
    /// Copied with an unusable password: the source's hash is of a kind we do not read, or
    /// costs more than the ceiling a login computes (one such row would hold a hashing thread
    /// for hours at each login naming it).
    without_password: u64,
    examples: Vec<String>,
}

const MAX_EXAMPLES: usize = 20;

impl Report {
    fn skip(&mut self, why: &'static str, id: &str, email: &str) {
        *self.skipped.entry(why).or_default() += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(format!("skipped {id} <{email}>: {why}"));
        }
    }

    fn without_password(&mut self, id: &str, email: &str) {
        self.without_password += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(format!("{id} <{email}>: {NO_PASSWORD}"));
        }
    }

    fn skip_links(&mut self, why: &'static str, n: u64) {
        if n > 0 {
            *self.skipped_links.entry(why).or_default() += n;
        }
    }

    fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

const EMAIL_TAKEN: &str = "e-mail already present with another id";
const ID_TAKEN: &str = "id already present with another e-mail";
const INVALID_EMAIL: &str = "invalid e-mail address";
const NOT_UUID: &str = "id is not a UUID";
const NO_PASSWORD: &str = "copied without a password: its hash is of an unknown kind or costs more \
     than the ceiling (docs/security.md); the user sets one with forgot-password";
const SHARED_ADDRESS: &str = "e-mail address another source user shares (another case or a look-alike \
     such as a fullwidth letter): resolve it in the source, then run the import again";
const ACCOUNT_TAKEN: &str = "provider account linked to another user already (link skipped)";
const ORPHAN_ACCOUNT: &str = "provider account of a skipped user (link skipped)";

async fn import_fastapi_users(config: Config, args: FastapiUsersArgs) -> Result<()> {
    let started = Instant::now();
    let from = source_url(&args.from);
    let shown = redacted(&from);
    // The source first: bad input fails before the target is touched.
    if let Some(path) = sqlite_file(&from)
        && !path.exists()
    {
        anyhow::bail!(
            "the FastAPI Users database {shown} does not exist (check --from: the path of the \
             SQLite file the FastAPI Users app uses)"
        );
    }
    let pool = SqlPool::connect(
        &from,
        StoreOptions::default()
            .with_max_connections(2)
            .with_timeout(Duration::from_secs(10)),
    )
    .await
    .with_context(|| {
        format!(
            "cannot open the FastAPI Users database {shown} (check --from: a sqlite:, \
             postgres: or mysql: URL of a reachable database; the database must exist)"
        )
    })?;
    let source = Source::open(pool).await?;
    let total = source.count_users().await?;
    let store = app::open_store(&config).await?;
    let secret = app::resolve_secret(&config)?;
    let users = app::users(&config, store.clone(), None, secret, Vec::new(), None)?;
    let manager = users.manager();

    let bar = progress_bar(total);
    bar.set_message("checking addresses");
    let shared = SharedKeys::of(&source, args.batch_size as usize, &bar).await?;
    bar.set_position(0);
    bar.set_message("importing");
    let mut report = Report::default();
    let mut after: Option<String> = None;
    loop {
        let page = source
            .users_after(after.as_deref(), args.batch_size as usize)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.cursor.clone());
        report.read += page.len() as u64;
        let ids: Vec<String> = page.iter().map(|u| u.id.clone()).collect();
        let mut accounts = BTreeMap::<String, Vec<SourceAccount>>::new();
        for account in source.accounts_of(&ids).await? {
            accounts
                .entry(account.user_id.clone())
                .or_default()
                .push(account);
        }
        let mut batch = Vec::with_capacity(page.len());
        let mut sent = Vec::with_capacity(page.len());
        for user in page {
            let links = accounts.remove(&user.id).unwrap_or_default();
            let orphans = links.len() as u64;
            if shared.contains(&user.email) {
                report.skip(SHARED_ADDRESS, &user.id, &user.email);
                report.skip_links(ORPHAN_ACCOUNT, orphans);
                continue;
            }
            let usable = manager
                .passwords()
                .is_verifiable(&PasswordHash(user.hashed_password.clone()));
            match to_import(&user, links, usable, |a| manager.sealed_oauth_account(a)) {
                Ok(item) => {
                    sent.push((user, orphans, usable));
                    batch.push(item);
                }
                Err(why) => {
                    report.skip(why, &user.id, &user.email);
                    report.skip_links(ORPHAN_ACCOUNT, orphans);
                }
            }
        }
        let outcomes = store
            .import_users(batch, args.dry_run)
            .await
            .context("cannot write a batch of users (nothing of that batch was written)")?;
        for ((user, links, usable), outcome) in sent.iter().zip(outcomes) {
            match outcome {
                Imported::Created {
                    accounts,
                    accounts_taken,
                } => {
                    report.copied += 1;
                    if !usable {
                        report.without_password(&user.id, &user.email);
                    }
                    report.accounts += accounts as u64;
                    report.skip_links(ACCOUNT_TAKEN, accounts_taken as u64);
                }
                Imported::Present => report.present += 1,
                other => {
                    let why = match other {
                        Imported::EmailTaken => EMAIL_TAKEN,
                        Imported::IdTaken => ID_TAKEN,
                        _ => NOT_UUID,
                    };
                    report.skip(why, &user.id, &user.email);
                    report.skip_links(ORPHAN_ACCOUNT, *links);
                }
            }
        }
        bar.set_position(report.read);
    }
    bar.finish_and_clear();
    print_report(
        &report,
        &shown,
        source.layout,
        args.dry_run,
        started.elapsed(),
    );
    Ok(())
}

/// The account keys (the normalised, case-folded e-mail a sign-in looks up) that more than
/// one source user has. FastAPI Users keeps `Dave@`, `dave@` and a fullwidth `ｄave@` apart;
/// here they are one account, so importing the first of them would hand the address to
/// whichever id sorts first, perhaps an attacker's early look-alike sign-up, who would then
/// receive the real owner's sign-ins by e-mail. All of them are skipped and reported instead,
/// whatever the batch they are in. Keys are kept as 64-bit digests (a million users take a few
/// MiB); a digest collision would only skip two users with a report.
struct SharedKeys(HashSet<u64>);

impl SharedKeys {
    async fn of(source: &Source, page_size: usize, bar: &indicatif::ProgressBar) -> Result<Self> {
        let mut seen = HashMap::<u64, u32>::new();
        let mut after: Option<String> = None;
        loop {
            let page = source.users_after(after.as_deref(), page_size).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.cursor.clone());
            for user in &page {
                if let Some(digest) = key_digest(&user.email) {
                    *seen.entry(digest).or_default() += 1;
                }
            }
            bar.inc(page.len() as u64);
        }
        Ok(Self(
            seen.into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(digest, _)| digest)
                .collect(),
        ))
    }

    fn contains(&self, email: &str) -> bool {
        key_digest(email).is_some_and(|digest| self.0.contains(&digest))
    }
}

/// The digest of an address's account key; `None` for an address the import refuses anyway.
fn key_digest(email: &str) -> Option<u64> {
    let email = normalize_email(email).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    email_key(&email).hash(&mut hasher);
    Some(hasher.finish())
}

/// A source user as the store imports it, or why it cannot be.
fn to_import(
    user: &SourceUser,
    accounts: Vec<SourceAccount>,
    usable_hash: bool,
    seal: impl Fn(NewOAuthAccount) -> NewOAuthAccount,
) -> Result<ImportUser<Uuid, NoFields>, &'static str> {
    let id = Uuid::try_parse(&user.id).map_err(|_| NOT_UUID)?;
    let email = normalize_email(&user.email).map_err(|_| INVALID_EMAIL)?;
    let accounts = accounts
        .into_iter()
        .map(|a| {
            seal(NewOAuthAccount {
                oauth_name: a.oauth_name,
                access_token: Secret::new(a.access_token),
                expires_at: a.expires_at,
                refresh_token: a.refresh_token.map(Secret::new),
                account_id: a.account_id,
                account_email: a.account_email,
            })
        })
        .collect();
    Ok(ImportUser {
        user: NewUser {
            id: Some(id),
            email,
            hashed_password: if usable_hash {
                PasswordHash(user.hashed_password.clone())
            } else {
                PasswordHash::unusable()
            },
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            fields: NoFields::default(),
        },
        accounts,
    })
}

/// A SQLAlchemy URL's driver suffix (`sqlite+aiosqlite://`, `postgresql+asyncpg://`) dropped.
fn source_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let base = scheme.split('+').next().unwrap_or(scheme);
            format!("{base}://{rest}")
        }
        None => url.to_owned(),
    }
}

/// The file of a SQLite URL (`sqlite://path`, `sqlite:path`), not of an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:18} {bar:40} {pos}/{len} users  {per_sec}  elapsed {elapsed}  eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn print_report(
    report: &Report,
    from: &str,
    layout: source::Layout,
    dry_run: bool,
    elapsed: Duration,
) {
    let verb = if dry_run { "would copy" } else { "copied" };
    println!("FastAPI Users database {from}: {}", layout.describe());
    println!("  users read: {}", report.read);
    println!(
        "  users {verb}: {} (with {} provider accounts)",
        report.copied, report.accounts
    );
    println!(
        "  users present already (an earlier import): {}",
        report.present
    );
    println!("  users skipped: {}", report.skipped_total());
    for (why, n) in &report.skipped {
        if *n > 0 {
            println!("    {n}: {why}");
        }
    }
    if report.without_password > 0 {
        println!(
            "  users {verb} without a password: {}",
            report.without_password
        );
    }
    for example in &report.examples {
        println!("    {example}");
    }
    for (why, n) in &report.skipped_links {
        println!("  provider accounts skipped: {n}: {why}");
    }
    let secs = elapsed.as_secs_f64().max(0.001);
    println!(
        "  elapsed {:.1} s ({:.0} users/s)",
        secs,
        report.read as f64 / secs
    );
    if report.copied == 0 && report.read > 0 && report.present + report.skipped_total() > 0 {
        println!("nothing changed: every user was present already or skipped");
    } else if dry_run {
        println!("dry run: nothing was written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlalchemy_driver_suffixes_are_dropped_and_passwords_hidden() {
        assert_eq!(source_url("sqlite+aiosqlite:///x.db"), "sqlite:///x.db");
        assert_eq!(
            source_url("postgresql+asyncpg://u:p@h/db"),
            "postgresql://u:p@h/db"
        );
        assert_eq!(source_url("mysql://h/db"), "mysql://h/db");
        assert_eq!(
            sqlite_file("sqlite:///tmp/a.db?mode=ro"),
            Some("/tmp/a.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
        let shown = redacted("postgres://u:hunter2@h/db");
        assert!(!shown.contains("hunter2") && shown.contains("redacted"));
    }

    #[test]
    fn look_alike_addresses_share_one_key_and_others_do_not() {
        let dave = key_digest("dave@example.com").unwrap();
        for alike in [
            "Dave@example.com",
            "\u{ff44}ave@example.com",
            "DAVE@EXAMPLE.COM",
        ] {
            assert_eq!(key_digest(alike), Some(dave), "{alike}");
        }
        assert_ne!(key_digest("dave2@example.com"), Some(dave));
        assert_eq!(key_digest("not an address"), None);
    }

    #[test]
    fn invalid_addresses_and_ids_are_refused_with_why() {
        let user = |id: &str, email: &str| SourceUser {
            id: id.into(),
            cursor: id.into(),
            email: email.into(),
            hashed_password: "$2b$12$x".into(),
            is_active: true,
            is_superuser: false,
            is_verified: true,
        };
        let keep = |a| a;
        let id = Uuid::new_v4().to_string();
        assert_eq!(
            to_import(&user(&id, "not an address"), vec![], true, keep).err(),
            Some(INVALID_EMAIL)
        );
        assert_eq!(
            to_import(&user("17", "a@example.com"), vec![], true, keep).err(),
            Some(NOT_UUID)
        );
        let ok = to_import(&user(&id, "A@Example.com"), vec![], true, keep).unwrap();
        assert_eq!(ok.user.id.unwrap().to_string(), id);
        assert!(ok.user.is_verified && ok.user.is_active && !ok.user.is_superuser);
    }
}

//! `axum-users-server mail ...` and `webhooks ...`: look at an outbox (the mail's, or the
//! webhook deliveries') and queue failed messages again. Never shows a body: the sealed mail
//! bodies carry live tokens.

use anyhow::Result;
use axum_users::OutboxStore;
use clap::Subcommand;

use crate::app;
use crate::config::Config;

/// What to do with an outbox.
#[derive(Debug, Subcommand)]
pub(crate) enum MailCommand {
    /// List queued messages (pending and failed): id, status, kind (event type), recipient
    /// (endpoint), attempts, next attempt, last error. No body, no token.
    List {
        /// How many at most.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Queue failed messages again (all, or the one with --id), due now with no attempts.
    Retry {
        /// The id of one message (from `list`).
        #[arg(long)]
        id: Option<String>,
    },
}

/// `2026-12-02T06:00:00Z` from Unix seconds.
fn timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Runs a `mail` command.
///
/// # Errors
/// When the database cannot be reached.
pub(crate) async fn run(config: Config, command: MailCommand) -> Result<()> {
    let store = app::open_store(&config).await?;
    run_on(&store, command).await
}

/// Runs a `webhooks` command: the same, on the webhook deliveries.
///
/// # Errors
/// When the database cannot be reached.
pub(crate) async fn run_webhooks(config: Config, command: MailCommand) -> Result<()> {
    let store = app::open_store(&config).await?;
    run_on(&store.webhook_outbox(), command).await
}

async fn run_on(queue: &impl OutboxStore, command: MailCommand) -> Result<()> {
    match command {
        MailCommand::List { limit } => {
            let messages = queue.list_outbox(limit).await?;
            for m in &messages {
                println!(
                    "{}\t{}\t{}\t{}\tattempts={}\tnext={}\t{}",
                    m.id,
                    m.status.as_str(),
                    m.kind,
                    m.recipient,
                    m.attempts,
                    timestamp(m.next_attempt_at),
                    m.last_error.as_deref().unwrap_or("-")
                );
            }
            println!("{} queued", messages.len());
        }
        MailCommand::Retry { id } => {
            let n = queue
                .retry_failed(id.as_deref(), axum_users::now_unix())
                .await?;
            println!("{n} queued again");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(1_795_929_257), "2026-11-29T05:14:17Z");
    }
}

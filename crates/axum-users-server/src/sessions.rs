//! Removing expired sessions and access tokens, and audit events past their retention: a
//! background task of `serve` and the `prune` command.

use anyhow::Result;
use axum_users::{Pruned, UserStore, now_unix};

use crate::app::Users;
use crate::config::Config;

/// Database tokens created before this are past their lifetime (`None`: they live until logout,
/// or there are none).
fn tokens_before(db_tokens: Option<Option<std::time::Duration>>) -> Option<i64> {
    let lifetime = db_tokens.flatten()?;
    Some(now_unix() - lifetime.as_secs() as i64)
}

fn report(pruned: Pruned) -> String {
    format!(
        "removed {} expired sessions and {} access tokens",
        pruned.sessions, pruned.access_tokens
    )
}

/// `axum-users-server prune`: one pass, printing what it removed.
///
/// # Errors
/// When the database cannot be opened or the deletes fail.
pub(crate) async fn prune(config: &Config) -> Result<()> {
    let store = crate::app::open_store(config).await?;
    let Some(sessions) = store.session_store() else {
        anyhow::bail!("this store keeps no sessions");
    };
    let pruned = sessions
        .prune(now_unix(), tokens_before(config.db_tokens))
        .await?;
    println!("{}", report(pruned));
    if let (Some(retention), Some(log)) = (config.audit_retention, store.audit_store()) {
        let before = now_unix().saturating_sub(retention.as_secs() as i64);
        println!("removed {} audit events", log.prune_events(before).await?);
    }
    Ok(())
}

/// Prunes every `prune_interval` while the server runs (not at all when it is 0).
pub(crate) fn spawn_pruning(config: &Config, users: &Users) {
    let Some(interval) = config.prune_interval else {
        return;
    };
    let db_tokens = config.db_tokens;
    let audit_retention = config.audit_retention;
    let users = users.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match users
                .manager()
                .prune_sessions(tokens_before(db_tokens))
                .await
            {
                Ok(pruned) if pruned != Pruned::default() => {
                    tracing::info!("{}", report(pruned));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning expired sessions failed"),
            }
            if let Some(retention) = audit_retention {
                match users.manager().prune_audit(retention).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("removed {n} audit events past their retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
                }
            }
        }
    });
}

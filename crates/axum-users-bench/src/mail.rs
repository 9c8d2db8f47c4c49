//! Reset tokens from the server's `file:` mailer: one watcher reads each new `.eml` file, takes
//! the `token=` of its link, deletes the file and hands the token to whoever waits for that
//! recipient.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

/// Waiters for mail, by recipient address.
#[derive(Clone, Default)]
pub struct MailBox {
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>,
}

impl MailBox {
    /// Registers interest in the next message to `email` (call before triggering it).
    pub fn expect(&self, email: &str) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.insert(email.to_owned(), tx);
        }
        rx
    }

    /// Polls `dir` every millisecond until the returned task is aborted.
    pub fn watch(&self, dir: PathBuf) -> tokio::task::JoinHandle<()> {
        let waiters = self.waiters.clone();
        tokio::spawn(async move {
            loop {
                for (to, token) in drain(&dir) {
                    let waiter = waiters.lock().ok().and_then(|mut w| w.remove(&to));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(token);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }
}

/// Reads, deletes and parses every finished message in `dir`: `(recipient, token)`.
fn drain(dir: &std::path::Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let _ = std::fs::remove_file(&path);
        if let Some(parsed) = parse(&text) {
            found.push(parsed);
        }
    }
    found
}

/// The `To:` address and the link's `token=` of one message.
pub fn parse(message: &str) -> Option<(String, String)> {
    let to = message
        .lines()
        .find_map(|line| line.strip_prefix("To: "))?
        .trim()
        .to_owned();
    let token = message
        .split("token=")
        .nth(1)?
        .split(|c: char| c.is_whitespace() || c == '&')
        .next()?
        .to_owned();
    (!token.is_empty()).then_some((to, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "From: axum-users <no-reply@localhost>\r\nTo: a@b.example.com\r\n\
        Subject: Reset your password\r\n\r\nOpen http://x/reset-password?token=abc.def-g_h\r\nto reset.\r\n";

    #[test]
    fn parses_recipient_and_token() {
        assert_eq!(
            parse(MAIL),
            Some(("a@b.example.com".into(), "abc.def-g_h".into()))
        );
        assert_eq!(parse("To: a@b\r\n\r\nno link"), None);
    }

    #[tokio::test]
    async fn the_watcher_hands_tokens_to_their_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let mail = MailBox::default();
        let rx = mail.expect("a@b.example.com");
        let watcher = mail.watch(dir.path().to_owned());
        std::fs::write(dir.path().join(".tmp"), "partial").unwrap();
        std::fs::write(dir.path().join("1.eml"), MAIL).unwrap();
        let token = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap()
            .unwrap();
        watcher.abort();
        assert_eq!(token, "abc.def-g_h");
        assert!(!dir.path().join("1.eml").exists());
    }
}

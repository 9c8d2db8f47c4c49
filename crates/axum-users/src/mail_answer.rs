//! The answer of forgot-password and request-verify-token: written first, and the same for
//! every address.
//!
//! Two rules pull apart here. The mail must be written (the outbox row committed by the hook)
//! before the client hears "accepted", or a crash in between loses it; and an address with an
//! account must not answer later than one without, or the timing tells who has an account.
//! Both paths therefore go through [`answer_at_floor`]: the work (cooldown, lookup, token, hook)
//! runs on its own task, and the answer waits for its end and, whatever the address, until a
//! common floor measured from the start ([`crate::Defences::mail_answer_floor`], default
//! 500 ms). An unknown address waits out the floor doing nothing; a known one spends it writing.
//!
//! Work that overruns the floor (a database that is very slow right now) is not waited for: the
//! answer leaves at the floor and the work goes on, with a warning and the metric
//! `axum_users_mail_answer_overruns_total`. No-enumeration wins over durability there, since a
//! lost mail costs the user a second request while a late answer tells an attacker something.

use std::future::Future;
use std::time::Duration;

use http::request::Parts;
use tokio::time::Instant;

use crate::background::BackgroundJobs;
use crate::hooks::UserHooks;
use crate::limits::MailKind;
use crate::manager::{ManagerError, UserManager};
use crate::store::UserStore;

/// The default floor: well above a lookup, a template and a committed insert, short for a person.
pub(crate) const DEFAULT_FLOOR: Duration = Duration::from_millis(500);

/// How the work of one request ended, when the answer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MailAnswer {
    /// The work had ended (written, ignored, or failed and logged).
    Done,
    /// The floor came first: the work goes on after the answer.
    Overran,
    /// Too many requests' work in flight: this one was dropped.
    Dropped,
}

/// Runs `work` on its own task and resolves at `floor` after the call, never before the work
/// has ended unless the floor has passed (see the module).
pub(crate) async fn answer_at_floor(
    jobs: &BackgroundJobs,
    floor: Duration,
    what: &'static str,
    work: impl Future<Output = Result<(), ManagerError>> + Send + 'static,
) -> MailAnswer {
    let deadline = Instant::now() + floor;
    let answer = match jobs.spawn_watched(what, work) {
        None => MailAnswer::Dropped,
        Some(mut job) => match tokio::time::timeout_at(deadline, &mut job).await {
            Ok(_) => MailAnswer::Done,
            Err(_) => {
                tracing::warn!(
                    ?floor,
                    "{what}: the mail was not written within the floor; answered without it \
                     (raise AXUM_USERS_MAIL_ANSWER_FLOOR_MS if this repeats)"
                );
                metrics::counter!("axum_users_mail_answer_overruns_total", "what" => what)
                    .increment(1);
                MailAnswer::Overran
            }
        },
    };
    tokio::time::sleep_until(deadline).await;
    answer
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// [`UserManager::forgot_password_by_email`] as `POST /forgot-password` answers it: returns
    /// once the hook has written the mail, and for every address at the same time, the
    /// [`crate::Defences::mail_answer_floor`]. Failures are logged, never returned, so that they
    /// say nothing about the address either.
    pub async fn forgot_password_at_floor(&self, email: &str, request: Option<&Parts>) {
        self.mail_at_floor(MailKind::Reset, email, request).await;
    }

    /// [`UserManager::request_verify_by_email`] as `POST /request-verify-token` answers it; see
    /// [`UserManager::forgot_password_at_floor`].
    pub async fn request_verify_at_floor(&self, email: &str, request: Option<&Parts>) {
        self.mail_at_floor(MailKind::Verify, email, request).await;
    }

    async fn mail_at_floor(
        &self,
        kind: MailKind,
        email: &str,
        request: Option<&Parts>,
    ) -> MailAnswer {
        let (manager, email, request) = (self.clone(), email.to_owned(), request.cloned());
        let what = match kind {
            MailKind::Reset => "forgot-password",
            MailKind::Verify => "request-verify-token",
        };
        let work = async move {
            let request = request.as_ref();
            match kind {
                MailKind::Reset => manager.forgot_password_by_email(&email, request).await,
                MailKind::Verify => manager.request_verify_by_email(&email, request).await,
            }
        };
        let defences = self.defences();
        answer_at_floor(&defences.mail_jobs, defences.mail_answer_floor, what, work).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Work that takes `busy` (of the paused clock) and then marks itself written.
    async fn work_taking(busy: Duration, written: Arc<AtomicBool>) -> Result<(), ManagerError> {
        tokio::time::sleep(busy).await;
        written.store(true, Ordering::SeqCst);
        Ok(())
    }

    // The clock is tokio's paused one: the durations below are exact, not measured.
    #[tokio::test(start_paused = true)]
    async fn the_answer_waits_for_the_write_and_leaves_at_the_floor_for_every_path() {
        let jobs = BackgroundJobs::new(4);
        let floor = Duration::from_millis(500);
        for busy in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(499),
        ] {
            let written = Arc::new(AtomicBool::new(false));
            let start = Instant::now();
            let answer = answer_at_floor(&jobs, floor, "t", work_taking(busy, written.clone()));
            assert_eq!(answer.await, MailAnswer::Done);
            assert!(written.load(Ordering::SeqCst), "written before the answer");
            assert_eq!(
                start.elapsed(),
                floor,
                "work of {busy:?}: answered at the floor"
            );
        }
    }

    /// Counts the reset mails it "writes", after `busy` of the paused clock.
    #[derive(Clone, Default)]
    struct SlowOutbox {
        busy: Duration,
        written: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl UserHooks<uuid::Uuid, crate::NoFields> for SlowOutbox {
        async fn on_after_forgot_password(&self, _: &crate::User, _: &str, _: Option<&Parts>) {
            tokio::time::sleep(self.busy).await;
            self.written.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn known_unknown_and_cooled_down_addresses_answer_at_one_floor_known_ones_written() {
        use crate::manager::{Privilege, TokenSettings, UserCreate};
        let hooks = SlowOutbox {
            busy: Duration::from_millis(200),
            ..SlowOutbox::default()
        };
        let hasher = crate::PasswordHasher::new(crate::Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let m = UserManager::new(
            crate::MemoryStore::new(),
            hooks.clone(),
            hasher,
            crate::Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .unwrap();
        let create = UserCreate::new("known@example.com", "a long right passphrase");
        m.create(create, Privilege::SelfService, None)
            .await
            .unwrap();
        tokio::time::pause(); // after the hash, which runs on a real thread
        let floor = m.defences().mail_answer_floor;
        for (email, written) in [
            ("known@example.com", 1),
            ("unknown@example.com", 1),
            ("known@example.com", 1), // within the cooldown: no second mail
        ] {
            let start = Instant::now();
            m.forgot_password_at_floor(email, None).await;
            // Paused after a real hash, the clock is not on a millisecond, and the timer's
            // granularity is one: the deadline is rounded up to the next.
            let waited = start.elapsed();
            assert!(
                waited >= floor && waited <= floor + Duration::from_millis(1),
                "{email}: answered at the floor, not after {waited:?}"
            );
            assert_eq!(hooks.written.load(Ordering::SeqCst), written, "{email}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_floor_is_answered_at_the_floor_and_still_finishes() {
        let jobs = BackgroundJobs::new(4);
        let floor = Duration::from_millis(500);
        let written = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let work = work_taking(Duration::from_secs(3), written.clone());
        let answer = answer_at_floor(&jobs, floor, "t", work).await;
        assert_eq!(answer, MailAnswer::Overran);
        assert_eq!(start.elapsed(), floor, "no later than the others");
        assert!(!written.load(Ordering::SeqCst));
        jobs.idle().await;
        assert!(written.load(Ordering::SeqCst), "the work went on");
    }

    #[tokio::test(start_paused = true)]
    async fn work_beyond_the_bound_is_dropped_and_answered_at_the_floor_too() {
        let jobs = BackgroundJobs::new(1);
        let floor = Duration::from_millis(500);
        let hung = Arc::new(AtomicBool::new(false));
        let first = answer_at_floor(&jobs, floor, "t", work_taking(Duration::from_secs(9), hung));
        assert_eq!(first.await, MailAnswer::Overran);
        let start = Instant::now();
        let written = Arc::new(AtomicBool::new(false));
        let second = answer_at_floor(
            &jobs,
            floor,
            "t",
            work_taking(Duration::ZERO, written.clone()),
        );
        assert_eq!(second.await, MailAnswer::Dropped);
        assert_eq!(start.elapsed(), floor);
        assert!(!written.load(Ordering::SeqCst), "never ran");
    }
}

//! The work that runs after an answer (the mail of an always-202 request, the verification
//! mail after a registration): bounded, and observable, so that a test can wait for it
//! instead of racing it ([`crate::AxumUsers::background_idle`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::manager::ManagerError;

/// How long a job (a hook, a mail) may run before it is abandoned with a warning, so that a
/// hung mailer gives its slot back.
const JOB_TIME_LIMIT: Duration = Duration::from_secs(60);

/// The bound on jobs in flight, per kind of job, and the count of those running.
#[derive(Clone)]
pub(crate) struct BackgroundJobs {
    limit: usize,
    time_limit: Duration,
    /// One budget per kind (`what`): a flood of forgot-password requests cannot starve
    /// register's verification mail, nor the other way round.
    bounds: Arc<Mutex<HashMap<&'static str, Arc<Semaphore>>>>,
    running: Arc<watch::Sender<usize>>,
}

/// Counts a job as running until it is dropped, even when the job panics.
struct Running(Arc<watch::Sender<usize>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl BackgroundJobs {
    /// At most `limit` jobs of each kind run or wait at once.
    pub(crate) fn new(limit: usize) -> Self {
        Self::with_time_limit(limit, JOB_TIME_LIMIT)
    }

    /// [`Self::new`], each job abandoned after `time_limit`.
    pub(crate) fn with_time_limit(limit: usize, time_limit: Duration) -> Self {
        Self {
            limit,
            time_limit,
            bounds: Arc::default(),
            running: Arc::new(watch::Sender::new(0)),
        }
    }

    fn bound(&self, what: &'static str) -> Arc<Semaphore> {
        let mut bounds = self.bounds.lock().unwrap_or_else(|e| e.into_inner());
        bounds
            .entry(what)
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
            .clone()
    }

    /// Runs `work` on its own task; beyond the bound the job is dropped with a warning rather
    /// than queued without end (the client got its answer either way). The handle resolves
    /// when the job has ended (`None`: dropped); dropping it leaves the job running.
    pub(crate) fn spawn_watched(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<(), ManagerError>> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let Ok(permit) = self.bound(what).try_acquire_owned() else {
            tracing::warn!("{what}: too many jobs in flight, this one is dropped");
            return None;
        };
        // Counted before the answer leaves, so `idle` never misses a job.
        self.running.send_modify(|n| *n += 1);
        let running = Running(self.running.clone());
        let time_limit = self.time_limit;
        Some(tokio::spawn(async move {
            match tokio::time::timeout(time_limit, work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "{what} failed"),
                Err(_) => tracing::warn!("{what}: still running after {time_limit:?}, abandoned"),
            }
            drop(permit);
            drop(running);
        }))
    }

    /// Resolves once no job is running.
    pub(crate) async fn idle(&self) {
        let mut count = self.running.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = count.wait_for(|n| *n == 0).await;
    }

    /// Jobs of kind `what` that may still start now.
    #[cfg(test)]
    pub(crate) fn available(&self, what: &'static str) -> usize {
        self.bound(what).available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_running_job_and_survives_a_panic() {
        let jobs = BackgroundJobs::new(4);
        let (release, wait) = watch::channel(false);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for i in 0..3 {
            let (mut wait, done) = (wait.clone(), done.clone());
            let _ = jobs.spawn_watched("test", async move {
                let _ = wait.wait_for(|go| *go).await;
                assert!(i != 1, "a job that panics");
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            });
        }
        let idle = tokio::time::timeout(Duration::from_millis(50), jobs.idle()).await;
        assert!(idle.is_err(), "three jobs are still waiting");
        release.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), jobs.idle())
            .await
            .expect("idle once every job ended, the panicking one too");
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(jobs.available("test"), 4, "permits come back");
    }

    #[tokio::test]
    async fn each_kind_has_its_own_budget_and_hung_jobs_are_abandoned() {
        let jobs = BackgroundJobs::with_time_limit(2, Duration::from_millis(100));
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..3 {
            let ran = ran.clone();
            let _ = jobs.spawn_watched("forgot", async move {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok(())
            });
        }
        assert_eq!(jobs.available("forgot"), 0, "the third was dropped");
        let ran_register = ran.clone();
        let _ = jobs.spawn_watched("register", async move {
            ran_register.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        tokio::time::timeout(Duration::from_secs(5), jobs.idle())
            .await
            .expect("the hung jobs are abandoned after their time limit");
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 12);
        assert_eq!(jobs.available("forgot"), 2, "their slots come back");
    }

    #[tokio::test]
    async fn background_work_beyond_the_bound_is_dropped_not_queued() {
        let bound = BackgroundJobs::new(2);
        let ran = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        for _ in 0..5 {
            let (ran, mut wait) = (ran.clone(), wait.clone());
            let _ = bound.spawn_watched("test", async move {
                let _ = wait.wait_for(|go| *go).await;
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        assert_eq!(bound.available("test"), 0, "two jobs hold the bound");
        release.send(true).unwrap();
        for _ in 0..100 {
            if bound.available("test") == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            2,
            "the three beyond the bound never ran"
        );
        assert_eq!(bound.available("test"), 2, "permits come back");
    }
}

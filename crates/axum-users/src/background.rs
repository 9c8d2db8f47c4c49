//! The work that runs after an answer (the mail of an always-202 request, the verification
//! mail after a registration): bounded, and observable, so that a test can wait for it
//! instead of racing it ([`crate::AxumUsers::background_idle`]).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

use crate::manager::ManagerError;

/// The bound on jobs in flight and the count of those running.
#[derive(Clone)]
pub(crate) struct BackgroundJobs {
    bound: Arc<Semaphore>,
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
    /// At most `limit` jobs run or wait at once.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            bound: Arc::new(Semaphore::new(limit)),
            running: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Runs `work` on its own task; beyond the bound the job is dropped with a warning rather
    /// than queued without end (the client got its answer either way).
    pub(crate) fn spawn(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<(), ManagerError>> + Send + 'static,
    ) {
        let Ok(permit) = self.bound.clone().try_acquire_owned() else {
            tracing::warn!("{what}: too many jobs in flight, this one is dropped");
            return;
        };
        // Counted before the answer leaves, so `idle` never misses a job.
        self.running.send_modify(|n| *n += 1);
        let running = Running(self.running.clone());
        tokio::spawn(async move {
            if let Err(e) = work.await {
                tracing::error!(error = %e, "{what} failed");
            }
            drop(permit);
            drop(running);
        });
    }

    /// Resolves once no job is running.
    pub(crate) async fn idle(&self) {
        let mut count = self.running.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = count.wait_for(|n| *n == 0).await;
    }

    /// Jobs that may still start now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.bound.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_running_job_and_survives_a_panic() {
        let jobs = BackgroundJobs::new(4);
        let (release, wait) = watch::channel(false);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for i in 0..3 {
            let (mut wait, done) = (wait.clone(), done.clone());
            jobs.spawn("test", async move {
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
        assert_eq!(jobs.available(), 4, "permits come back");
    }
}

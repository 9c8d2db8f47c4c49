//! The hashing threads: a few long-lived threads of our own, fed by a bounded queue.
//!
//! The bound lives in the threads, not in the requests. A request that goes away leaves its job in
//! the queue, where it is skipped before it starts; a hash that has started runs to its end on one
//! of `threads` threads, each with its own Argon2 buffer. So at most `threads` hashes run and at
//! most `threads` buffers exist, whatever the clients do; more than `threads + queue` live
//! requests are refused at once rather than left to pile up.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use argon2::Block;
use tokio::sync::oneshot;

use super::PasswordError;

/// How many hashes may run, and how many requests may wait for one, at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HasherLimits {
    /// Hashing threads, so the most hashes that run at once (at least 1).
    pub threads: usize,
    /// Requests that may wait for a thread; the next one fails at once with
    /// [`PasswordError::Busy`].
    pub queue: usize,
}

impl HasherLimits {
    /// Waiting requests per thread by default.
    ///
    /// At the default parameters one hash takes some 20 to 50 ms of a core, so a full queue is
    /// served within 1.5 to 3 s: about as long as a login may reasonably wait before a 503 with
    /// `Retry-After` serves the client better. A waiting request holds only its password and the
    /// stored hash (well under 1 KiB), so the queue costs no memory worth counting.
    pub const QUEUE_PER_THREAD: usize = 64;

    /// `threads` hashing threads and a queue of [`Self::QUEUE_PER_THREAD`] per thread.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        Self {
            threads,
            queue: threads.saturating_mul(Self::QUEUE_PER_THREAD),
        }
    }

    /// The same with another queue bound (0: a request runs only when a thread is free).
    #[must_use]
    pub fn with_queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }
}

impl Default for HasherLimits {
    /// One thread per core.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// A snapshot of the hashing threads, for metrics and to show that the bound holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HasherStats {
    /// Hashing threads alive.
    pub threads: usize,
    /// Hashes running now.
    pub running: usize,
    /// The most hashes that ever ran at once.
    pub max_running: usize,
    /// Requests waiting for a thread now.
    pub queued: usize,
    /// Jobs that ran (hashes and verifications).
    pub completed: u64,
    /// Jobs skipped because their requester had gone away before they started.
    pub skipped: u64,
    /// Requests refused with [`PasswordError::Busy`].
    pub refused: u64,
    /// Argon2 buffers held by the threads.
    pub buffers: usize,
    /// Their total size in bytes.
    pub buffer_bytes: usize,
}

/// Work for a hashing thread, with the way back to its requester.
trait Job: Send {
    /// The requester went away: nobody would read the result.
    fn abandoned(&self) -> bool;
    /// When it was queued.
    fn queued_at(&self) -> Instant;
    /// Does the work and keeps the result for [`Job::answer`].
    fn run(&mut self, memory: &mut Vec<Block>);
    /// Hands the result to the requester (after the stats count the job as done).
    fn answer(self: Box<Self>);
}

struct Request<F, T> {
    queued_at: Instant,
    work: Option<F>,
    out: Option<Result<T, PasswordError>>,
    reply: oneshot::Sender<Result<T, PasswordError>>,
}

impl<F, T> Job for Request<F, T>
where
    F: FnOnce(&mut Vec<Block>) -> Result<T, PasswordError> + Send,
    T: Send,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn queued_at(&self) -> Instant {
        self.queued_at
    }

    fn run(&mut self, memory: &mut Vec<Block>) {
        let Some(work) = self.work.take() else {
            return;
        };
        self.out = Some(
            catch_unwind(AssertUnwindSafe(|| work(memory))).unwrap_or_else(|_| {
                tracing::error!("a password hashing job panicked");
                Err(PasswordError::TaskFailed)
            }),
        );
    }

    fn answer(self: Box<Self>) {
        let out = self.out.unwrap_or(Err(PasswordError::TaskFailed));
        // The requester may have left while the job ran; the result is then simply dropped.
        let _ = self.reply.send(out);
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Box<dyn Job>>,
    /// Threads waiting for a job.
    idle: usize,
    /// Set when the last hasher is dropped: the threads end.
    closed: bool,
    spawned: u64,
    stats: HasherStats,
}

/// What the threads share with the [`Pool`].
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    limits: HasherLimits,
    /// The buffer size of a hash at the configured parameters, in blocks: a thread that needed
    /// more (for a legacy hash) gives the rest back.
    keep_blocks: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock (jobs run outside it), so the state is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job whose requester is still there, or `None` when the pool is closed.
    fn next_job(&self) -> Option<Box<dyn Job>> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            while let Some(job) = state.queue.pop_front() {
                if job.abandoned() {
                    state.stats.skipped += 1;
                    continue;
                }
                state.stats.running += 1;
                state.stats.max_running = state.stats.max_running.max(state.stats.running);
                return Some(job);
            }
            state.idle += 1;
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
        }
    }

    /// Records the end of a job and of the buffer change it made.
    fn finished(&self, held: &mut Held, buffer_bytes: usize) {
        let mut state = self.lock();
        state.stats.running -= 1;
        state.stats.completed += 1;
        held.update(&mut state.stats, buffer_bytes);
    }
}

/// The buffer bytes one thread has accounted for in the stats.
struct Held(usize);

impl Held {
    fn update(&mut self, stats: &mut HasherStats, now: usize) {
        stats.buffer_bytes = stats.buffer_bytes - self.0 + now;
        stats.buffers = stats.buffers + usize::from(now > 0) - usize::from(self.0 > 0);
        self.0 = now;
    }
}

/// The hashing threads and their queue; dropping it ends the threads.
pub(super) struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool with these limits; threads start with the first jobs, up to `limits.threads`.
    pub(super) fn new(limits: HasherLimits, keep_blocks: usize) -> Self {
        let limits = HasherLimits {
            threads: limits.threads.max(1),
            ..limits
        };
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                limits,
                keep_blocks,
            }),
        }
    }

    /// The limits in force.
    pub(super) fn limits(&self) -> HasherLimits {
        self.shared.limits
    }

    pub(super) fn stats(&self) -> HasherStats {
        let state = self.shared.lock();
        HasherStats {
            queued: state.queue.len(),
            ..state.stats
        }
    }

    /// Runs `work` on a hashing thread with that thread's Argon2 buffer.
    ///
    /// The job is queued when this future is first polled; dropping the future before the job
    /// starts means it never starts.
    ///
    /// # Errors
    /// [`PasswordError::Busy`] at once when the queue is full; [`PasswordError::TaskFailed`]
    /// when the job panicked or no thread could be started; or the job's own error.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        F: FnOnce(&mut Vec<Block>) -> Result<T, PasswordError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(Request {
            queued_at: Instant::now(),
            work: Some(work),
            out: None,
            reply,
        }))?;
        answer.await.map_err(|_| PasswordError::TaskFailed)?
    }

    fn submit(&self, job: Box<dyn Job>) -> Result<(), PasswordError> {
        let limits = self.shared.limits;
        let capacity = limits.threads.saturating_add(limits.queue);
        let spawn = {
            let mut state = self.shared.lock();
            if state.queue.len() + state.stats.running >= capacity {
                // Requesters that left still hold places in the queue: free those first.
                let before = state.queue.len();
                state.queue.retain(|job| !job.abandoned());
                state.stats.skipped += (before - state.queue.len()) as u64;
                if state.queue.len() + state.stats.running >= capacity {
                    state.stats.refused += 1;
                    return Err(PasswordError::Busy);
                }
            }
            state.queue.push_back(job);
            let spawn = state.stats.threads < limits.threads && state.queue.len() > state.idle;
            if spawn {
                state.stats.threads += 1;
                state.spawned += 1;
            }
            spawn.then_some(state.spawned)
        };
        self.shared.wake.notify_one();
        if let Some(n) = spawn {
            self.spawn(n);
        }
        Ok(())
    }

    fn spawn(&self, n: u64) {
        let shared = self.shared.clone();
        // Linux shows the first 15 bytes of the name ("axum-users-hash"); Rust keeps all of it.
        let started = std::thread::Builder::new()
            .name(format!("axum-users-hash-{n}"))
            .spawn(move || work(&shared));
        if let Err(error) = started {
            tracing::error!(%error, "cannot start a password hashing thread");
            let orphans = {
                let mut state = self.shared.lock();
                state.stats.threads -= 1;
                if state.stats.threads == 0 {
                    // Nobody would ever run these: their requesters get `TaskFailed`.
                    std::mem::take(&mut state.queue)
                } else {
                    VecDeque::new()
                }
            };
            drop(orphans);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

/// The body of a hashing thread: jobs until the pool closes, each with the thread's buffer.
fn work(shared: &Shared) {
    lower_priority();
    let mut memory = Vec::new();
    let mut held = Held(0);
    while let Some(mut job) = shared.next_job() {
        metrics::histogram!("axum_users_hash_wait_seconds")
            .record(job.queued_at().elapsed().as_secs_f64());
        job.run(&mut memory);
        if memory.capacity() > shared.keep_blocks {
            memory.truncate(shared.keep_blocks);
            memory.shrink_to_fit();
        }
        shared.finished(&mut held, memory.capacity() * std::mem::size_of::<Block>());
        job.answer();
    }
    drop(memory);
    let mut state = shared.lock();
    held.update(&mut state.stats, 0);
    state.stats.threads -= 1;
}

/// Lowers the calling thread's priority to at least nice 10, so that the async threads, which
/// answer every other request, win the cores when both want them. A process already started at a
/// higher nice keeps it: this never raises a priority. (Linux: `setpriority` on the thread itself,
/// through `thread-priority`, as our code has no `unsafe`.)
#[cfg(target_os = "linux")]
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    const HASH_NICE: i32 = 10;
    if thread_nice().is_some_and(|nice| nice >= HASH_NICE) {
        return;
    }
    // thread-priority maps its 0..=99 scale onto nice 19..=-20; 22 lands on nice 10 (the unit
    // test `hashing_threads_run_at_nice_10` checks the result, not this arithmetic).
    let Ok(value) = ThreadPriorityValue::try_from(22u8) else {
        return;
    };
    if let Err(error) = set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
        tracing::debug!(
            ?error,
            "cannot lower the priority of a password hashing thread"
        );
    }
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
#[cfg(target_os = "linux")]
fn thread_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let (_, fields) = stat.rsplit_once(')')?;
    fields.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use tokio::task::JoinSet;

    use super::*;

    type GatedJob = Box<dyn FnOnce(&mut Vec<Block>) -> Result<(), PasswordError> + Send>;

    /// Jobs that each wait for one message on a shared channel: a thread they hold stays held
    /// until the test lets it go.
    fn gate() -> (mpsc::Sender<()>, impl Fn() -> GatedJob + Clone) {
        let (open, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let job = move || {
            let wait = wait.clone();
            Box::new(move |_: &mut Vec<Block>| {
                let _ = wait.lock().unwrap().recv();
                Ok(())
            }) as GatedJob
        };
        (open, job)
    }

    /// Waits (a few seconds at most) until the stats satisfy `ready`.
    async fn wait_for(pool: &Pool, ready: impl Fn(&HasherStats) -> bool) -> HasherStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = pool.stats();
            if ready(&stats) {
                return stats;
            }
            assert!(Instant::now() < deadline, "never reached; last {stats:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = Arc::new(Pool::new(HasherLimits::new(1).with_queue(2), 0));
        let (open, job) = gate();
        let mut held = JoinSet::new();
        for _ in 0..3 {
            let (pool, job) = (pool.clone(), job.clone());
            held.spawn(async move { pool.run(job()).await });
        }
        wait_for(&pool, |s| s.running == 1 && s.queued == 2).await;

        // The thread is held, so anything but an immediate answer would hang until the timeout.
        let refused = tokio::time::timeout(Duration::from_secs(5), pool.run(|_| Ok(()))).await;
        assert!(
            matches!(refused, Ok(Err(PasswordError::Busy))),
            "{refused:?}"
        );
        assert_eq!(pool.stats().refused, 1);

        for _ in 0..3 {
            open.send(()).unwrap();
        }
        for result in held.join_all().await {
            result.unwrap();
        }
        pool.run(|_| Ok(())).await.unwrap();
        let stats = pool.stats();
        assert_eq!((stats.completed, stats.refused, stats.skipped), (4, 1, 0));
    }

    #[tokio::test]
    async fn requesters_that_left_give_their_place_back() {
        let pool = Arc::new(Pool::new(HasherLimits::new(1).with_queue(1), 0));
        let (open, job) = gate();
        let running = {
            let (pool, job) = (pool.clone(), job.clone());
            tokio::spawn(async move { pool.run(job()).await })
        };
        wait_for(&pool, |s| s.running == 1).await;
        let leaving = {
            let (pool, job) = (pool.clone(), job.clone());
            tokio::spawn(async move { pool.run(job()).await })
        };
        wait_for(&pool, |s| s.queued == 1).await;
        leaving.abort();
        assert!(leaving.await.unwrap_err().is_cancelled());

        // The queue is full of a job nobody waits for: it is dropped rather than this refused.
        let staying = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|_| Ok(7)).await })
        };
        let stats = wait_for(&pool, |s| s.queued == 1 && s.skipped == 1).await;
        assert_eq!(stats.refused, 0);
        open.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(staying.await.unwrap().unwrap(), 7);
        let stats = pool.stats();
        assert_eq!((stats.completed, stats.skipped), (2, 1));
    }

    #[tokio::test]
    async fn a_job_whose_requester_left_is_skipped_before_it_starts() {
        let pool = Arc::new(Pool::new(HasherLimits::new(1), 0));
        let (open, job) = gate();
        let running = {
            let (pool, job) = (pool.clone(), job.clone());
            tokio::spawn(async move { pool.run(job()).await })
        };
        wait_for(&pool, |s| s.running == 1).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let leaving = {
            let (pool, ran) = (pool.clone(), ran.clone());
            tokio::spawn(async move {
                pool.run(move |_| {
                    ran.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                })
                .await
            })
        };
        wait_for(&pool, |s| s.queued == 1).await;
        leaving.abort();
        let _ = leaving.await;
        open.send(()).unwrap();
        running.await.unwrap().unwrap();
        wait_for(&pool, |s| s.queued == 0 && s.running == 0).await;
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(pool.stats().skipped, 1);
    }

    #[tokio::test]
    async fn threads_start_with_the_work_and_end_with_the_pool() {
        const THREADS: usize = 3;
        let pool = Arc::new(Pool::new(HasherLimits::new(THREADS), 0));
        assert_eq!(pool.stats().threads, 0);
        let (open, job) = gate();
        let mut held = JoinSet::new();
        for _ in 0..THREADS * 2 {
            let (pool, job) = (pool.clone(), job.clone());
            held.spawn(async move { pool.run(job()).await });
        }
        let stats = wait_for(&pool, |s| s.running == THREADS).await;
        assert_eq!(stats.threads, THREADS);
        assert_eq!(stats.queued, THREADS);
        for _ in 0..THREADS * 2 {
            open.send(()).unwrap();
        }
        for result in held.join_all().await {
            result.unwrap();
        }
        let stats = pool.stats();
        assert_eq!((stats.threads, stats.max_running), (THREADS, THREADS));

        let shared = Arc::into_inner(pool).unwrap().shared.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.lock().stats.threads > 0 {
            assert!(Instant::now() < deadline, "the threads outlived their pool");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_request_and_keeps_its_thread() {
        let pool = Pool::new(HasherLimits::new(1), 0);
        let failed = pool.run(|_| -> Result<(), PasswordError> { panic!("boom") });
        assert!(matches!(failed.await, Err(PasswordError::TaskFailed)));
        assert_eq!(pool.run(|_| Ok(1)).await.unwrap(), 1);
        assert_eq!(pool.stats().threads, 1);
    }

    #[tokio::test]
    async fn buffers_are_kept_per_thread_and_trimmed_to_the_current_size() {
        const KEEP: usize = 8;
        let pool = Pool::new(HasherLimits::new(1), KEEP);
        pool.run(|memory| {
            memory.resize(KEEP * 4, Block::new());
            Ok(())
        })
        .await
        .unwrap();
        let stats = pool.stats();
        assert_eq!(stats.buffers, 1);
        assert_eq!(stats.buffer_bytes, KEEP * std::mem::size_of::<Block>());
        let kept = pool.run(|memory| Ok(memory.len())).await.unwrap();
        assert_eq!(kept, KEEP);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_nice_10() {
        let ours = thread_nice().unwrap();
        let pool = Pool::new(HasherLimits::new(1), 0);
        let (name, nice) = pool
            .run(|_| {
                Ok((
                    std::thread::current().name().map(str::to_owned),
                    thread_nice(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("axum-users-hash-1"));
        assert_eq!(nice, Some(ours.max(10)));
        assert_eq!(
            thread_nice(),
            Some(ours),
            "only the hashing thread is lowered"
        );
    }
}

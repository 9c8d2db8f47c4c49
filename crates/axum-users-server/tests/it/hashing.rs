//! Clients that hang up in the middle of a login must not lift the hashing bound: the server's
//! threads and resident memory stay within what its hashing threads may hold, and it still
//! answers. Runs at the default Argon2 parameters (m = 19456 KiB), so that memory means something.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

/// Logins in the burst: as many as the security review sent.
const BURST: usize = 30;
/// How long each of those clients waits for its answer before it hangs up.
const PATIENCE: Duration = Duration::from_millis(50);
/// The memory of one Argon2 buffer at the default parameters (m = 19456 KiB).
const BUFFER_KIB: u64 = 19_456;
/// Threads other than the hashing ones that a burst may start: tokio's blocking pool (the file
/// mailer writes through it) and one spare. The database has one connection (so one SQLite
/// worker thread, opened at start-up), and tokio's async workers exist from the start.
const OTHER_THREADS: usize = 2;
/// Resident memory besides the Argon2 buffers that a burst may leave: the hashing threads' stacks
/// and allocator arenas, connection buffers, SQLite's page cache. Less than half a buffer, so a
/// single buffer more than the bound allows fails the test.
const SLACK_KIB: u64 = 8 * 1024;
/// How long the server may take to settle after the burst.
const SETTLE: Duration = Duration::from_secs(5);

/// One line of `/proc/<pid>/status`, as a number (`VmRSS` is in kB).
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads")
}

fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS")
}

/// The server's process: the one running our binary in the server's own folder.
fn server_pid(s: &Server) -> u32 {
    let dir = s.dir.path().canonicalize().unwrap();
    let bin = Path::new(BIN).canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
                && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == bin)
        })
        .expect("the server's process")
}

/// The names of the server's threads (Linux keeps the first 15 bytes), for the failure report.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    names.sort();
    names
}

/// The nice value of each of the server's password hashing threads.
fn hashing_threads_nice(pid: u32) -> Vec<i64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter(|stat| stat.contains("(axum-users-hash)"))
        .filter_map(|stat| {
            let (_, fields) = stat.rsplit_once(')')?;
            fields.split_whitespace().nth(16)?.parse().ok()
        })
        .collect()
}

/// Sends a login over raw TCP, waits [`PATIENCE`], and hangs up before the answer.
fn login_and_hang_up(address: &str, email: &str, password: &str) {
    let body = format!("username={}&password={password}", email.replace('@', "%40"));
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /auth/jwt/login HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(PATIENCE);
}

#[tokio::test]
async fn logins_that_hang_up_do_not_lift_the_hashing_bound() {
    let s = Server::start_with(&[
        ("AXUM_USERS_ARGON2_MEMORY_KIB", "19456"),
        ("AXUM_USERS_ARGON2_ITERATIONS", "2"),
        ("AXUM_USERS_DATABASE_MAX_CONNECTIONS", "1"),
    ]);
    let pid = server_pid(&s);
    // The server runs one hashing thread per core, as seen from the same machine and cgroup.
    let concurrency = std::thread::available_parallelism().map_or(1, |n| n.get());
    let idle_threads = threads(pid);
    let idle_rss = rss_kib(pid);
    let idle_names = thread_names(pid);

    let (email, password) = ("hangup@example.com", "hang-up-password");
    register(&s, email, password).await;
    login(&s, email, password).await;

    let thread_bound = idle_threads + (concurrency + OTHER_THREADS) as u64;
    let rss_bound = idle_rss + concurrency as u64 * BUFFER_KIB + SLACK_KIB;
    let address = s.base.trim_start_matches("http://").to_owned();
    let burst = std::thread::spawn(move || {
        std::thread::scope(|scope| {
            for _ in 0..BURST {
                scope.spawn(|| login_and_hang_up(&address, email, password));
            }
        });
    });
    let mut most_threads = 0;
    while !burst.is_finished() {
        most_threads = most_threads.max(threads(pid));
        std::thread::sleep(Duration::from_millis(5));
    }
    burst.join().unwrap();

    let settled = Instant::now();
    let (mut now_threads, mut now_rss) = (threads(pid), rss_kib(pid));
    while (now_threads > thread_bound || now_rss > rss_bound) && settled.elapsed() < SETTLE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        (now_threads, now_rss) = (threads(pid), rss_kib(pid));
        most_threads = most_threads.max(now_threads);
    }
    let report = format!(
        "threads {idle_threads} idle, {most_threads} at most, {now_threads} now (bound \
         {thread_bound}); RSS {idle_rss} KiB idle, {now_rss} KiB now (bound {rss_bound} KiB); \
         {concurrency} hashing threads; idle {idle_names:?}, now {:?}",
        thread_names(pid)
    );
    eprintln!("{report}");
    assert!(most_threads <= thread_bound, "{report}");
    assert!(now_rss <= rss_bound, "{report}");

    let nice = hashing_threads_nice(pid);
    assert!(
        !nice.is_empty() && nice.len() <= concurrency,
        "hashing threads: {nice:?}; {report}"
    );
    assert!(
        nice.iter().all(|&n| n >= 10),
        "hashing threads' nice: {nice:?}"
    );

    // The server still answers, and correctly.
    login(&s, email, password).await;
    let (status, _) = try_login(&s, email, "not-the-password").await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
}

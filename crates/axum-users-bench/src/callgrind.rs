//! Instructions per request, counted by valgrind's callgrind: a figure that does not move with
//! the machine's load, so a regression shows even when the wall-clock numbers are noisy.
//!
//! The process under test runs under `valgrind --tool=callgrind`; once it answers and has served
//! a warm-up, its counters are zeroed (`callgrind_control --zero`), a fixed number of requests is
//! sent back to back on one keep-alive connection, and the counters are dumped
//! (`callgrind_control --dump`). Both commands reach the process while it is idle in `epoll`, so
//! the dump holds exactly the work of those requests: every thread's, the runtime's included.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;

use crate::load::Conn;
use crate::process::Listening;

/// Whether `valgrind` and `callgrind_control` can be run.
pub fn available() -> bool {
    let runs = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    runs("valgrind", "--version") && runs("callgrind_control", "--version")
}

/// `command` run under callgrind, its profile written into `dir` (`callgrind.<pid>[.<n>]`).
pub fn wrap(command: &Command, dir: &Path) -> Command {
    let mut wrapped = Command::new("valgrind");
    wrapped
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join("callgrind.%p").display()
        ))
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(cwd) = command.get_current_dir() {
        wrapped.current_dir(cwd);
    }
    // The benchmark's commands clear their environment and set every variable they need.
    wrapped.env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    if std::env::var_os("PATH").is_some() && command.get_envs().all(|(k, _)| k != "PATH") {
        wrapped.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    }
    wrapped
}

/// Instructions the process spent per request of `request`, over `count` requests, and the
/// profile they were read from.
///
/// `process` must run under [`wrap`] with the same `dir`. Sends `warmup` requests first
/// (answers must be 200), then counts.
///
/// # Errors
/// When a request fails, `callgrind_control` cannot reach the process, or no dump appears.
pub async fn per_request(
    process: &Listening,
    dir: &Path,
    request: impl Fn() -> http::Request<Full<Bytes>>,
    warmup: usize,
    count: usize,
) -> Result<(f64, PathBuf)> {
    let mut conn = Conn::connect(process.addr).await?;
    send(&mut conn, &request, warmup).await?;
    let before = dumps(dir, process.pid());
    control(process.pid(), "--zero").await?;
    send(&mut conn, &request, count.max(1)).await?;
    control(process.pid(), "--dump").await?;
    // The dump is written by the process itself, after the command returns.
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let fresh: Vec<PathBuf> = dumps(dir, process.pid())
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if let Some(path) = fresh.first()
            && let Ok(text) = std::fs::read_to_string(path)
            && let Some(total) = summary(&text)
        {
            return Ok((total as f64 / count.max(1) as f64, path.clone()));
        }
        if Instant::now() > give_up {
            bail!("no callgrind dump appeared in {}", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(
    conn: &mut Conn,
    request: &impl Fn() -> http::Request<Full<Bytes>>,
    n: usize,
) -> Result<()> {
    for _ in 0..n {
        let reply = conn.send(request()).await?;
        if reply.status != StatusCode::OK {
            bail!(
                "{} under callgrind: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
    }
    Ok(())
}

async fn control(pid: u32, action: &str) -> Result<()> {
    let out = tokio::process::Command::new("callgrind_control")
        .arg(action)
        .arg(pid.to_string())
        .output()
        .await
        .context("cannot run callgrind_control")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {action} {pid}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The dumps of `pid` in `dir` (the profile at exit is `callgrind.<pid>`, dumps add `.<n>`).
fn dumps(dir: &Path, pid: u32) -> Vec<PathBuf> {
    let prefix = format!("callgrind.{pid}.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The instruction total of a callgrind profile (its `summary:` line).
pub fn summary(profile: &str) -> Option<u64> {
    profile
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_a_profile() {
        let profile = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 123456\n\
                       fn=(1) main\n0 5\ntotals: 123456\n";
        assert_eq!(summary(profile), Some(123_456));
        assert_eq!(summary("events: Ir\n"), None);
    }

    #[test]
    fn the_wrapped_command_keeps_program_arguments_and_environment() {
        let mut command = Command::new("/bin/server");
        command
            .arg("--flag")
            .env_clear()
            .env("AXUM_USERS_BIND", "127.0.0.1:0")
            .env("PATH", "/usr/bin");
        let wrapped = wrap(&command, Path::new("/tmp/x"));
        assert_eq!(wrapped.get_program(), "valgrind");
        let args: Vec<_> = wrapped.get_args().collect();
        assert_eq!(args[0], "--tool=callgrind");
        assert_eq!(args[1], "--callgrind-out-file=/tmp/x/callgrind.%p");
        assert_eq!(&args[2..], ["/bin/server", "--flag"]);
        let envs: Vec<_> = wrapped.get_envs().collect();
        assert!(envs.contains(&("AXUM_USERS_BIND".as_ref(), Some("127.0.0.1:0".as_ref()))));
        assert!(envs.contains(&("PATH".as_ref(), Some("/usr/bin".as_ref()))));
    }
}

//! Child processes that serve HTTP (the server and the floor): started, found by the
//! `listening on http://ADDR` line on stderr, measured through `/proc`, stopped on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running child process that listens on loopback.
pub struct Listening {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// When it was spawned.
    pub spawned: Instant,
    log: Arc<Mutex<Vec<String>>>,
}

impl Listening {
    /// Spawns `command` and waits (at most 60 s) for its `listening on http://ADDR` line.
    ///
    /// # Errors
    /// When it cannot be spawned, exits, or never says where it listens (its log is included).
    pub fn start(mut command: Command, what: &str) -> Result<Self> {
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {what} ({command:?})"))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
                // Keep the last 200 lines: enough to show why it failed.
                if let Ok(mut lines) = lines.lock() {
                    if lines.len() == 200 {
                        lines.remove(0);
                    }
                    lines.push(line);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
                bail!("{what} did not start; its log:\n{log}");
            }
        };
        if !addr.ip().is_loopback() {
            let _ = child.kill();
            bail!("{what} listens on {addr}, not on loopback: set it to 127.0.0.1:0");
        }
        Ok(Self {
            child,
            addr,
            spawned,
            log,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM` of `/proc/PID/status`).
    ///
    /// # Errors
    /// When `/proc` cannot be read (not Linux, or the process is gone).
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("cannot read /proc/PID/status (the memory figures need Linux)")?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss), Some(hwm)) => Ok((rss, hwm)),
            _ => bail!("no VmRSS in /proc/{}/status", self.pid()),
        }
    }

    /// Its anonymous resident memory in KiB (`RssAnon`: the heap and stacks, without the pages
    /// of the executable that `VmRSS` also counts); 0 where `/proc` cannot be read.
    pub fn anon_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("RssAnon:"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    /// The last lines it wrote on stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Kills it and waits for it to exit.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.kill();
    }
}

/// CPU time (user + system) that process `pid` has used so far, from `/proc/PID/stat`; `None`
/// where `/proc` cannot be read. The CPU a scenario costs the process under test does not depend
/// on what else the machine runs, so ratios of it hold on a busy machine too.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces: state is the first.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every architecture it exports to users.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Sets every thread of process `pid` whose name starts with `prefix` to nice `nice` (with
/// `renice`, which lowers a nice value only as root); how many there were.
///
/// # Errors
/// When `/proc` cannot be read, no such thread exists, or `renice` fails.
pub fn renice_threads(pid: u32, prefix: &str, nice: i32) -> Result<usize> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("cannot list the threads of {pid}"))?;
    let mut ids = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(prefix) {
            ids.push(task.file_name().to_string_lossy().into_owned());
        }
    }
    if ids.is_empty() {
        bail!("process {pid} has no thread named {prefix}*");
    }
    let status = Command::new("renice")
        .arg("-n")
        .arg(nice.to_string())
        .arg("-p")
        .args(&ids)
        .stdout(Stdio::null())
        .status()
        .context("cannot run renice")?;
    if !status.success() {
        bail!("renice -n {nice} of threads {ids:?} failed ({status})");
    }
    Ok(ids.len())
}

/// The address of a `... listening on http://127.0.0.1:PORT` log line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    let addr = rest
        .split(|c: char| c.is_whitespace() || c == '"' || c == '/')
        .next()?;
    addr.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_log_lines() {
        assert_eq!(
            listening_addr(
                "2026-11-01T05:00:00Z  INFO axum_users_server: axum-users listening on http://127.0.0.1:4321 elapsed_ms=3"
            ),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        assert_eq!(
            listening_addr("floor listening on http://127.0.0.1:9"),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(listening_addr("nothing here"), None);
    }

    #[test]
    fn reads_cpu_time_of_this_process() {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        assert!(cpu_time(std::process::id()).is_some());
        assert!(cpu_time(u32::MAX).is_none());
    }

    #[test]
    fn a_child_that_never_listens_is_reported_with_its_log() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo boom >&2; exit 3"]);
        let err = Listening::start(command, "a test child").err().unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("did not start") && text.contains("boom"),
            "{text}"
        );
    }
}

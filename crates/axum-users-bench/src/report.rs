//! The results of a run as Markdown: the machine, the table of scenarios, and the targets.

use std::fmt::Write;
use std::time::Duration;

use crate::stats::Summary;

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Concurrent connections (0 for in-process measurements).
    pub connections: usize,
    /// Throughput and latency.
    pub summary: Summary,
    /// CPU microseconds the process under test spent per request (per iteration for reset).
    pub cpu_us: Option<f64>,
    /// A ratio or remark.
    pub note: String,
}

/// Everything one database's suite measured.
#[derive(Debug, Clone, Default)]
pub struct SuiteReport {
    /// `SQLite` or `PostgreSQL`.
    pub database: String,
    /// Users added before the scenarios (`--users`), and how.
    pub users: u64,
    /// The fill's figures, when users were added.
    pub filled: Option<crate::fill::Filled>,
    /// The table.
    pub rows: Vec<Row>,
    /// Resident memory (KiB): idle after a fresh start, after the login storm, after all the
    /// load, idle after a restart on the existing database.
    pub rss_fresh_idle_kib: u64,
    /// After the login storm.
    pub rss_after_login_kib: u64,
    /// After every scenario; with the peak (`VmHWM`).
    pub rss_after_load_kib: (u64, u64),
    /// Idle after a restart on the existing database.
    pub rss_restart_idle_kib: u64,
    /// The anonymous part of it (`RssAnon`: heap and stacks, not the executable's pages).
    pub anon_restart_idle_kib: u64,
    /// Spawn to first `200` of `GET /users/me`, on the existing database, each start.
    pub starts: Vec<Duration>,
    /// Spawn to first `200` on a new database (schema created).
    pub fresh_start: Duration,
    /// Instructions per request counted by callgrind: `(what, instructions)`.
    pub instructions: Vec<(String, f64)>,
    /// Why there are no instruction counts, when there are none.
    pub instructions_note: String,
    /// The targets, each checked in this run.
    pub targets: Vec<Target>,
}

/// One target of issue #17 (or of the issues whose routes it measures): a ratio measured in
/// this run against its goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What is compared with what.
    pub what: String,
    /// The ratio (or value) as shown: `93%`, `+1.2%`, `1.8x`, `13.8 MiB`; `–` when not measured.
    pub ratio: String,
    /// The goal, as shown: `>= 90%`.
    pub goal: String,
    /// The figures the ratio comes from.
    pub detail: String,
    /// Met or not; `None` when it could not be measured in this run.
    pub pass: Option<bool>,
}

impl Target {
    /// `ratio` (a fraction) must be at least `goal` (a fraction).
    pub fn at_least(what: &str, ratio: Option<f64>, goal: f64, detail: String) -> Self {
        Self {
            what: what.into(),
            ratio: ratio.map_or("–".into(), pct),
            goal: format!(">= {}", pct(goal)),
            detail,
            pass: ratio.map(|r| r >= goal),
        }
    }

    /// `cost` (a fraction: 0.02 is 2% dearer) must be at most `goal`.
    pub fn cost_at_most(what: &str, cost: Option<f64>, goal: f64, detail: String) -> Self {
        Self {
            what: what.into(),
            ratio: cost.map_or("–".into(), |c| format!("{:+.1}%", c * 100.0)),
            goal: format!("<= +{:.0}%", goal * 100.0),
            detail,
            pass: cost.map(|c| c <= goal),
        }
    }

    /// `times` (a multiple) must be at most `goal`.
    pub fn times_at_most(what: &str, times: Option<f64>, goal: f64, detail: String) -> Self {
        Self {
            what: what.into(),
            ratio: times.map_or("–".into(), |t| format!("{t:.2}x")),
            goal: format!("<= {goal}x"),
            detail,
            pass: times.map(|t| t <= goal),
        }
    }

    /// `value` (in `unit`) must be at most `goal`.
    pub fn value_at_most(
        what: &str,
        value: Option<f64>,
        goal: f64,
        unit: &str,
        detail: String,
    ) -> Self {
        Self {
            what: what.into(),
            ratio: value.map_or("–".into(), |v| format!("{v:.1} {unit}")),
            goal: format!("<= {goal} {unit}"),
            detail,
            pass: value.map(|v| v <= goal),
        }
    }

    /// `PASS`, `MISS`, or `–` (not measured).
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "**MISS**",
            None => "–",
        }
    }
}

/// A fraction as a whole percentage: 0.934 -> "93%".
pub fn pct(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// The machine the run is on, read from `/proc`.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` in GiB.
    pub memory_gib: f64,
}

impl Machine {
    /// Reads the machine's description (unknown fields stay empty).
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: memory_kib / 1024.0 / 1024.0,
        }
    }
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` writes them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The scenarios whose cost should not grow with the number of users.
const GROWTH_ROWS: &[&str] = &[
    "GET /users/me, JWT bearer",
    "POST /auth/jwt/login",
    "POST /auth/register",
    "POST /auth/forgot-password",
    "GET /users?limit=50",
    "GET /users?is_superuser=true&limit=50",
];

/// Each database's suites side by side by the number of users added: the throughput of the
/// scenarios that must stay flat, and the ratio of the largest fill to the smallest (target:
/// within 10%).
pub fn render_growth(suites: &[SuiteReport]) -> String {
    let mut out = String::new();
    // The suites run database after database for each fill (SQLite, PostgreSQL, SQLite, ...):
    // each database once, in the order it first ran.
    let mut databases: Vec<&str> = Vec::new();
    for suite in suites {
        if !databases.contains(&suite.database.as_str()) {
            databases.push(&suite.database);
        }
    }
    for database in databases {
        let mut runs: Vec<&SuiteReport> =
            suites.iter().filter(|s| s.database == database).collect();
        runs.sort_by_key(|s| s.users);
        let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
            continue;
        };
        let _ = writeln!(out, "### {database}: cost as the users grow\n");
        let _ = write!(out, "| scenario |");
        for run in &runs {
            let _ = write!(out, " req/s at {} users |", thousands(run.users as f64));
        }
        let _ = writeln!(out, " largest vs smallest | goal | |");
        let _ = writeln!(out, "|---|{}---:|---|---|", "---:|".repeat(runs.len()));
        let rate = |run: &SuiteReport, name: &str| {
            run.rows
                .iter()
                .find(|r| r.name.starts_with(name))
                .map(|r| r.summary.per_second)
        };
        for name in GROWTH_ROWS {
            let _ = write!(out, "| {name} |");
            for run in &runs {
                let _ = write!(
                    out,
                    " {} |",
                    rate(run, name).map_or("–".into(), |r| format!("{r:.1}"))
                );
            }
            let ratio = match (rate(first, name), rate(last, name)) {
                (Some(a), Some(b)) if a > 0.0 => Some(b / a),
                _ => None,
            };
            let target = Target::at_least(name, ratio, 0.9, String::new());
            let _ = writeln!(
                out,
                " {} | {} | {} |",
                target.ratio,
                target.goal,
                target.verdict()
            );
        }
        let _ = write!(out, "| database bytes per user |");
        for run in &runs {
            let _ = write!(
                out,
                " {} |",
                run.filled
                    .map_or("–".into(), |f| format!("{:.0}", f.bytes_per_user))
            );
        }
        let _ = writeln!(out, " | | |\n");
    }
    out
}

/// A count with thin separators: 123456.7 -> "123,457".
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Renders one suite as Markdown.
pub fn render(suite: &SuiteReport) -> String {
    let mut out = String::new();
    if suite.users > 0 {
        let _ = writeln!(
            out,
            "### {}, {} users added\n",
            suite.database,
            thousands(suite.users as f64)
        );
    } else {
        let _ = writeln!(out, "### {}\n", suite.database);
    }
    if let Some(filled) = suite.filled {
        let _ = writeln!(
            out,
            "Filled in {:.1} s ({:.0} users/s); the database grew by {:.0} bytes per user.\n",
            filled.seconds,
            filled.users as f64 / filled.seconds.max(1e-9),
            filled.bytes_per_user
        );
    }
    let _ = writeln!(
        out,
        "| scenario | conns | req/s | p50 ms | p99 ms | max ms | ok | errors | CPU µs/req | note |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in &suite.rows {
        let s = row.summary;
        let conns = if row.connections == 0 {
            "–".to_owned()
        } else {
            row.connections.to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} |",
            row.name,
            conns,
            s.per_second,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.requests,
            s.errors,
            row.cpu_us.map_or("–".into(), |us| format!("{us:.0}")),
            row.note
        );
    }
    let mut starts = suite.starts.clone();
    let median = crate::stats::median(&mut starts);
    let max = starts.iter().max().copied().unwrap_or_default();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Resident memory (VmRSS): {} idle after the first start, {} after the login storm, \
         {} after all the load (peak {}), {} idle after a restart on the existing database \
         ({} of it anonymous, RssAnon; the rest is pages of the executable).",
        mib(suite.rss_fresh_idle_kib),
        mib(suite.rss_after_login_kib),
        mib(suite.rss_after_load_kib.0),
        mib(suite.rss_after_load_kib.1),
        mib(suite.rss_restart_idle_kib),
        mib(suite.anon_restart_idle_kib),
    );
    let _ = writeln!(
        out,
        "Start to first 200 (`GET /users/me`): {} on a new database (schema created); on the \
         existing database, median {} and slowest {} of {} starts.",
        ms(suite.fresh_start),
        ms(median),
        ms(max),
        suite.starts.len()
    );
    if let Some((_, reference)) = suite.instructions.first() {
        let _ = write!(out, "Instructions per request (callgrind, one connection):");
        for (i, (what, ir)) in suite.instructions.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            let _ = write!(out, "{sep}{what} {}", thousands(*ir));
            if i > 0 && *reference > 0.0 {
                let _ = write!(out, " ({:.2}x the floor)", ir / reference);
            }
        }
        let _ = writeln!(out, ".");
    } else if !suite.instructions_note.is_empty() {
        let _ = writeln!(
            out,
            "Instructions per request: {}.",
            suite.instructions_note
        );
    }
    let _ = writeln!(out, "\n| target | ratio | goal | | measured |");
    let _ = writeln!(out, "|---|---:|---|---|---|");
    for t in &suite.targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            t.what,
            t.ratio,
            t.goal,
            t.verdict(),
            t.detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_memory_and_targets() {
        let summary = Summary {
            requests: 10,
            errors: 1,
            per_second: 5.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            max_ms: 3.0,
        };
        let suite = SuiteReport {
            database: "SQLite".into(),
            rows: vec![Row {
                name: "GET /users/me".into(),
                connections: 32,
                summary,
                cpu_us: Some(41.4),
                note: "80% of the floor".into(),
            }],
            rss_fresh_idle_kib: 10 * 1024,
            starts: vec![Duration::from_millis(20), Duration::from_millis(30)],
            targets: vec![
                Target::at_least("login", Some(0.951), 0.95, "56 vs 59/s".into()),
                Target::times_at_most("p99", Some(2.5), 2.0, String::new()),
                Target::cost_at_most("metrics", None, 0.03, "not counted".into()),
            ],
            instructions: vec![("floor".into(), 100_000.0), ("me".into(), 150_000.4)],
            ..SuiteReport::default()
        };
        let text = render(&suite);
        assert!(
            text.contains(
                "| GET /users/me | 32 | 5.0 | 1.00 | 2.00 | 3.0 | 10 | 1 | 41 | 80% of the floor |"
            ),
            "{text}"
        );
        assert!(text.contains("10.0 MiB idle"), "{text}");
        assert!(
            text.contains("median 20.0 ms and slowest 30.0 ms of 2 starts"),
            "{text}"
        );
        assert!(
            text.contains("| login | 95% | >= 95% | PASS | 56 vs 59/s |"),
            "{text}"
        );
        assert!(
            text.contains("| p99 | 2.50x | <= 2x | **MISS** |"),
            "{text}"
        );
        assert!(
            text.contains("| metrics | – | <= +3% | – | not counted |"),
            "{text}"
        );
        assert!(
            text.contains("floor 100,000; me 150,000 (1.50x the floor)."),
            "{text}"
        );
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn sets_the_fills_side_by_side() {
        let run = |users: u64, me: f64| SuiteReport {
            database: "SQLite".into(),
            users,
            filled: Some(crate::fill::Filled {
                users,
                seconds: 1.0,
                bytes_per_user: 300.0,
            }),
            rows: vec![Row {
                name: "GET /users/me, JWT bearer (revocable)".into(),
                connections: 32,
                summary: Summary {
                    requests: 1,
                    errors: 0,
                    per_second: me,
                    p50_ms: 1.0,
                    p99_ms: 1.0,
                    max_ms: 1.0,
                },
                cpu_us: None,
                note: String::new(),
            }],
            ..SuiteReport::default()
        };
        let text = render_growth(&[run(1_000_000, 850.0), run(1_000, 1000.0)]);
        assert_eq!(
            text.matches("### SQLite: cost as the users grow").count(),
            1
        );
        assert!(
            text.contains(
                "| GET /users/me, JWT bearer | 1000.0 | 850.0 | 85% | >= 90% | **MISS** |"
            ),
            "{text}"
        );
        assert!(
            text.contains("req/s at 1,000 users | req/s at 1,000,000 users"),
            "{text}"
        );
        assert!(
            text.contains("| database bytes per user | 300 | 300 | | | |"),
            "{text}"
        );
        assert!(
            text.contains("| POST /auth/jwt/login | – | – | – | >= 90% | – |"),
            "{text}"
        );
    }

    #[test]
    fn one_growth_table_per_database_when_the_suites_interleave() {
        let run = |database: &str, users: u64| SuiteReport {
            database: database.into(),
            users,
            ..SuiteReport::default()
        };
        // The order the bench runs them in: every database for the first fill, then the next.
        let text = render_growth(&[
            run("SQLite", 1_000),
            run("PostgreSQL", 1_000),
            run("SQLite", 1_000_000),
            run("PostgreSQL", 1_000_000),
        ]);
        assert_eq!(
            text.matches("### SQLite: cost as the users grow").count(),
            1
        );
        assert_eq!(
            text.matches("### PostgreSQL: cost as the users grow")
                .count(),
            1
        );
        assert!(text.find("### SQLite").unwrap() < text.find("### PostgreSQL").unwrap());
    }

    #[test]
    fn reads_the_machine() {
        let m = Machine::read();
        assert!(m.cpus >= 1);
        assert!(!load_average().is_empty());
    }
}

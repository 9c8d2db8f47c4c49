//! The targets one suite checks: issue #17's, and those of the issues whose routes it measures
//! (#11 sessions, #12 abuse defences, #14 second factors, #16 metrics), each a ratio of two
//! figures of the same run.

use std::time::Duration;

use crate::report::{SuiteReport, Target, pct};
use crate::stats::Summary;

/// Labels of the instruction counts, as the report shows them and the targets find them.
pub mod counted {
    /// The floor.
    pub const FLOOR: &str = "floor: bare axum + sqlx, same read + JSON";
    /// `/users/me` with the default (revocable) JWT.
    pub const ME: &str = "GET /users/me, JWT bearer (revocable)";
    /// `/users/me` with `jwt_revocable` off.
    pub const STATELESS: &str = "GET /users/me, stateless JWT";
    /// With Prometheus metrics on.
    pub const METRICS: &str = "the same with metrics on";
    /// With the rate limits off.
    pub const NO_LIMITS: &str = "the same with the rate limits off";
}

/// A scenario's throughput and the CPU per request of the process under test.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figure {
    /// Throughput and latency.
    pub summary: Summary,
    /// CPU per request (per iteration for multi-step scenarios).
    pub cpu: Option<Duration>,
}

impl Figure {
    /// A figure from a scenario's first step.
    pub fn of(outcome: &crate::load::Outcome) -> Self {
        Self {
            summary: outcome.steps[0].1,
            cpu: outcome.cpu_per_iteration,
        }
    }
}

/// What the targets are about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// The floor.
    pub floor: Figure,
    /// `/users/me`, revocable JWT (the default).
    pub me: Figure,
    /// `/users/me`, stateless JWT.
    pub stateless: Figure,
    /// `/users/me` with metrics on.
    pub metered: Figure,
    /// `POST /auth/jwt/refresh`.
    pub refresh: Figure,
    /// `POST /auth/jwt/login`.
    pub login: Figure,
    /// A sign-in with TOTP, both steps (CPU per sign-in).
    pub totp: Figure,
    /// Raw Argon2id verifications per second: the mean of the two measurements.
    pub raw_rate: f64,
    /// The two measurements: right before and right after the login scenario.
    pub raw_before_after: (f64, f64),
    /// CPU per raw verification.
    pub raw_cpu: Option<Duration>,
    /// `/users/me` during the storm.
    pub me_storm: Summary,
    /// Logins during the storm.
    pub login_storm: Summary,
}

/// Goal of `POST /auth/jwt/refresh` against the floor: a refresh is a read, a
/// compare-and-swap write in a transaction, a rotated-token row and a new JWT, so about three
/// reads' worth of work and one serialised write on SQLite.
pub const REFRESH_GOAL: f64 = 0.25;
/// Goal of a TOTP sign-in's CPU against a password login's: the code step (mfa token, AES-GCM
/// secret, HMAC, the step written, a session) must not add more than a tenth to the hash.
pub const TOTP_GOAL: f64 = 1.10;

/// Every target of one suite.
pub fn check(options: &crate::Options, report: &SuiteReport, m: &Measured) -> Vec<Target> {
    let postgres = report.database == "PostgreSQL";
    let per_cpu =
        |reference: Option<Duration>, measured: Option<Duration>| match (reference, measured) {
            (Some(r), Some(m)) if !m.is_zero() => Some(r.as_secs_f64() / m.as_secs_f64()),
            _ => None,
        };
    let rate = |s: Summary, of: f64| s.per_second / of.max(1e-9);
    let vs_floor = |f: Figure| {
        format!(
            "per CPU second; wall clock {}: {:.0} vs {:.0} req/s; CPU {} vs {} µs/req",
            pct(rate(f.summary, m.floor.summary.per_second)),
            f.summary.per_second,
            m.floor.summary.per_second,
            micros(f.cpu),
            micros(m.floor.cpu)
        )
    };
    let hashing = |s: Summary| {
        format!(
            "{:.1} vs {:.1}/s (raw Argon2id, server idle: the mean of {:.1} before and {:.1} after the login scenario)",
            s.per_second, m.raw_rate, m.raw_before_after.0, m.raw_before_after.1
        )
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let storm_note = if options.argon2_memory_kib == 19_456 && options.login_duration >= 30.0 {
        ""
    } else {
        " (the goal is for a 30 s storm at m=19456)"
    };

    let mut targets = vec![
        Target::at_least(
            "GET /users/me, stateless JWT, vs the floor",
            per_cpu(m.floor.cpu, m.stateless.cpu),
            if postgres { 0.8 } else { 0.9 },
            vs_floor(m.stateless),
        ),
        Target::at_least(
            "GET /users/me, revocable JWT (the default), vs the floor (#11)",
            per_cpu(m.floor.cpu, m.me.cpu),
            0.75,
            vs_floor(m.me),
        ),
        Target::at_least(
            "POST /auth/jwt/refresh vs the floor (#11)",
            per_cpu(m.floor.cpu, m.refresh.cpu),
            REFRESH_GOAL,
            vs_floor(m.refresh),
        ),
        Target::at_least(
            "login vs the hashing limit (rate limits on, #12's 90% included)",
            Some(rate(m.login.summary, m.raw_rate)),
            0.95,
            format!(
                "{}; per CPU second {}",
                hashing(m.login.summary),
                per_cpu(m.raw_cpu, m.login.cpu).map_or("–".into(), pct)
            ),
        ),
        Target::times_at_most(
            "CPU of a TOTP sign-in (both steps) vs a password login (#14)",
            per_cpu(m.totp.cpu, m.login.cpu),
            TOTP_GOAL,
            format!(
                "{} vs {} µs; {} sign-ins",
                micros(m.totp.cpu),
                micros(m.login.cpu),
                m.totp.summary.requests
            ),
        ),
        Target::at_least(
            "GET /users/me during a login storm vs calm",
            Some(rate(m.me_storm, m.me.summary.per_second)),
            0.75,
            format!(
                "{:.0} vs {:.0} req/s",
                m.me_storm.per_second, m.me.summary.per_second
            ),
        ),
        Target::times_at_most(
            "p99 of GET /users/me during a login storm vs calm",
            Some(m.me_storm.p99_ms / m.me.summary.p99_ms.max(1e-9)),
            2.0,
            format!("{:.2} vs {:.2} ms", m.me_storm.p99_ms, m.me.summary.p99_ms),
        ),
        Target::at_least(
            "logins during the storm vs the hashing limit",
            Some(rate(m.login_storm, m.raw_rate)),
            0.4,
            hashing(m.login_storm),
        ),
        Target::value_at_most(
            "resident memory, idle (the larger of after the first start and after a restart)",
            Some(mib(report
                .rss_fresh_idle_kib
                .max(report.rss_restart_idle_kib))),
            15.0,
            "MiB",
            format!(
                "VmRSS {:.1} and {:.1} MiB; RssAnon after the restart {:.1} MiB",
                mib(report.rss_fresh_idle_kib),
                mib(report.rss_restart_idle_kib),
                mib(report.anon_restart_idle_kib)
            ),
        ),
        Target::value_at_most(
            "resident memory after the login storm",
            Some(mib(report.rss_after_login_kib)),
            80.0,
            "MiB",
            format!("after {} s of logins{storm_note}", options.login_duration),
        ),
        Target::value_at_most(
            "start to first 200 on an existing database (slowest start)",
            report.starts.iter().max().map(|d| d.as_secs_f64() * 1000.0),
            200.0,
            "ms",
            format!("{} starts", report.starts.len()),
        ),
        Target::cost_at_most(
            "metrics on vs off, CPU per GET /users/me (wall clock, #16)",
            per_cpu(m.metered.cpu, m.me.cpu).map(|r| r - 1.0),
            0.03,
            format!("{} vs {} µs/req", micros(m.metered.cpu), micros(m.me.cpu)),
        ),
    ];
    let ir = |what: &str| {
        report
            .instructions
            .iter()
            .find(|(w, _)| w == what)
            .map(|(_, ir)| *ir)
            .filter(|ir| *ir > 0.0)
    };
    let cost = |on: Option<f64>, off: Option<f64>| on.zip(off).map(|(on, off)| on / off - 1.0);
    let counts = |on: Option<f64>, off: Option<f64>| match on.zip(off) {
        Some((on, off)) => format!("{on:.0} vs {off:.0} instructions per request"),
        None if report.instructions_note.is_empty() => "not counted".into(),
        None => report.instructions_note.clone(),
    };
    let (me, metrics, no_limits) = (
        ir(counted::ME),
        ir(counted::METRICS),
        ir(counted::NO_LIMITS),
    );
    targets.push(Target::cost_at_most(
        "metrics on vs off, GET /users/me instructions per request (callgrind, #16)",
        cost(metrics, me),
        0.03,
        counts(metrics, me),
    ));
    targets.push(Target::cost_at_most(
        "rate limits on vs off, GET /users/me instructions per request (callgrind, #12)",
        cost(me, no_limits),
        0.05,
        counts(me, no_limits),
    ));
    targets
}

fn micros(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(per_second: f64, cpu_us: u64) -> Figure {
        Figure {
            summary: Summary {
                requests: 100,
                errors: 0,
                per_second,
                p50_ms: 1.0,
                p99_ms: 2.0,
                max_ms: 3.0,
            },
            cpu: Some(Duration::from_micros(cpu_us)),
        }
    }

    #[test]
    fn each_target_is_a_ratio_of_this_run() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: crate::Options,
        }
        let options = Cli::parse_from(["bench"]).options;
        let report = SuiteReport {
            database: "SQLite".into(),
            rss_fresh_idle_kib: 14 * 1024,
            rss_restart_idle_kib: 16 * 1024,
            rss_after_login_kib: 60 * 1024,
            starts: vec![Duration::from_millis(20)],
            instructions: vec![
                (counted::ME.into(), 100_000.0),
                (counted::METRICS.into(), 102_000.0),
                (counted::NO_LIMITS.into(), 99_000.0),
            ],
            ..SuiteReport::default()
        };
        let mut storm = figure(800.0, 0).summary;
        storm.p99_ms = 5.0;
        let measured = Measured {
            floor: figure(1000.0, 90),
            me: figure(900.0, 110),
            stateless: figure(950.0, 95),
            metered: figure(880.0, 112),
            refresh: figure(300.0, 300),
            login: figure(57.0, 35_000),
            totp: figure(5.0, 36_000),
            raw_rate: 59.0,
            raw_before_after: (55.0, 63.0),
            raw_cpu: Some(Duration::from_micros(34_000)),
            me_storm: storm,
            login_storm: figure(30.0, 0).summary,
        };
        let targets = check(&options, &report, &measured);
        let find = |what: &str| targets.iter().find(|t| t.what.starts_with(what)).unwrap();
        let stateless = find("GET /users/me, stateless");
        assert_eq!(
            (stateless.ratio.as_str(), stateless.pass),
            ("95%", Some(true))
        );
        assert_eq!(stateless.goal, ">= 90%");
        assert_eq!(find("GET /users/me, revocable").ratio, "82%");
        let login = find("login vs");
        assert_eq!((login.ratio.as_str(), login.pass), ("97%", Some(true)));
        assert!(
            login
                .detail
                .contains("the mean of 55.0 before and 63.0 after"),
            "{}",
            login.detail
        );
        assert_eq!(find("POST /auth/jwt/refresh").ratio, "30%");
        assert_eq!(find("CPU of a TOTP").ratio, "1.03x");
        assert_eq!(find("p99").pass, Some(false), "5 ms against 2 ms is 2.5x");
        assert_eq!(find("resident memory, idle").pass, Some(false), "16 MiB");
        assert_eq!(find("metrics on vs off, GET").ratio, "+2.0%");
        assert_eq!(
            find("metrics on vs off, CPU").ratio,
            "+1.8%",
            "112 vs 110 µs"
        );
        assert_eq!(find("rate limits").ratio, "+1.0%");
        assert!(targets.iter().all(|t| t.pass.is_some()));
    }
}

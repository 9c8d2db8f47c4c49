//! `axum-users-bench`: the load benchmark of axum-users-server (see `docs/benchmarks.md`).

use std::process::ExitCode;

use axum_users_bench::{Options, bench, floor};
use clap::{Parser, Subcommand};

/// Load benchmark of axum-users-server: every route's requests per second and p50/p99 latency,
/// against a floor measured in the same run (a bare axum handler doing the same SQLite read) and
/// the raw Argon2id verification rate; plus the server's resident memory and start time.
///
/// Run it in release mode: `cargo run --release -p axum-users-bench`. It builds the release
/// server first (`cargo build --release -p axum-users-server`). Progress goes to stderr, the
/// Markdown report to stdout. Traffic goes only to 127.0.0.1.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    options: Options,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the floor (used by the benchmark itself, in a process of its own).
    #[command(hide = true)]
    Floor {
        /// Database to read.
        #[arg(long)]
        database_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Floor { database_url }) => floor::serve(&database_url),
        None => bench(cli.options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["axum-users-bench", "--duration", "1", "--no-build"]);
        assert_eq!(cli.options.duration, 1.0);
        assert_eq!(cli.options.login_duration, 30.0);
        assert!(cli.options.no_build);
        assert_eq!(cli.options.load(0).connections, 1);
    }
}

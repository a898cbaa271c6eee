//! `kingpin`: the admin command line of kingpin's config core — versioned
//! configs, managed lists, maps, mapped lists and JSON documents, decider
//! values, metaconfigs and dependencies — and `kingpin register`, which
//! keeps a service instance in its serverset while its health check passes.
//!
//! Backends are picked by `--coordinator`/`--blobstore`, then
//! `KINGPIN_COORDINATOR`/`KINGPIN_BLOBSTORE`, then the TOML config file
//! (`--config`, `KINGPIN_CONFIG`, or `$XDG_CONFIG_HOME/kingpin/config.toml`),
//! and otherwise the embedded SQLite + local-directory stack in
//! `$KINGPIN_HOME/.kingpin/` or `./.kingpin/` (see [`settings`]).
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | other failure (backend errors) |
//! | 2 | usage error (clap's own, or e.g. a KEY without its VALUE) |
//! | 3 | not found (`NotFound`) |
//! | 4 | conflict (`BadVersion`, `AlreadyExists`, `NotEmpty`) |
//! | 5 | unavailable, try again (`Unavailable`, `SessionExpired`) |
//! | 6 | invalid input (`InvalidArgument`, `TooLarge`, a bad `--type` item, bad JSON) |
//! | 7 | unauthorized (`Unauthorized`) |
//!
//! `kingpin register` runs until SIGTERM or SIGINT and exits 0 once it has
//! left its serverset. Every command logs to stderr through `tracing`
//! (warnings by default, `-v` for more, `RUST_LOG` to choose; see
//! [`logging`]).
//!
//! `kingpin lock` and `kingpin elect` run a command (no shell) while a lock
//! or leadership is held and exit with the command's status (128+N when a
//! signal N killed it), printing nothing more; 4 when `lock --timeout`
//! passed without the lock, 5 when the hold was lost and the command
//! stopped.
//!
//! Errors go to stderr as `kingpin: <kind>: <message>`, or with `--json`
//! as `{"error":{"kind":"not_found","message":"..."}}`. Names and values
//! are validated before any backend is opened, so invalid input writes
//! (and creates) nothing.

mod backends;
mod cli;
mod commands;
mod content;
mod failure;
mod health_checks;
mod items;
mod logging;
mod output;
mod settings;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command};
use crate::commands::Context;
use crate::output::Output;
use crate::settings::Settings;

fn main() -> ExitCode {
    // clap prints help and usage errors itself (usage errors exit with 2).
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let out = Output::new(cli.global.json, cli.global.quiet);
    let chattiness = match cli.command {
        Command::Register(_)
        | Command::Lock(_)
        | Command::Elect(_)
        | Command::Dev { .. }
        | Command::Console(_) => logging::Chattiness::Activity,
        _ => logging::Chattiness::Warnings,
    };
    logging::init(
        chattiness,
        cli.global.verbose,
        cli.global.quiet,
        cli.global.json,
    );
    let result = match cli.command {
        // Completions need no settings, so a broken config file cannot
        // break them.
        Command::Completions { shell } => commands::print_completions(shell, out),
        Command::ManPages { dir } => commands::write_man_pages(&dir, out),
        command => run(command, &cli.global, &matches, out),
    };
    match result {
        Ok(()) => ExitCode::from(failure::SUCCESS),
        Err(err) => {
            failure::report(&err, out.is_json());
            ExitCode::from(failure::exit_code(&err))
        }
    }
}

/// Resolves the settings and runs `command` on a Tokio runtime, closing
/// the coordinator afterwards whatever the outcome.
fn run(
    command: Command,
    global: &cli::GlobalArgs,
    matches: &clap::ArgMatches,
    out: Output,
) -> Result<()> {
    let settings = Settings::resolve(global, matches)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let ctx = Context::new(settings, out);
        let result = commands::run(command, &ctx).await;
        ctx.backends.close().await;
        result
    });
    // Backends may leave blocking work (a SQLite heartbeat) behind; do not
    // wait long for it on the way out.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

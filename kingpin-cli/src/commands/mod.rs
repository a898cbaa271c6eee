//! The commands. Each checks its names and values first, then opens the
//! backends it needs through [`Context`], so invalid input never touches
//! (or creates) anything.

mod acl;
mod backends;
mod backup;
mod config;
mod console;
mod decider;
mod dep;
mod dev;
mod elect;
pub mod environment;
mod held_command;
mod json;
mod list;
mod lock;
mod map;
mod mapped_list;
mod metaconfig;
mod register;
mod serverset;

use anyhow::{Context as _, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use kingpin::kingpin_api::{ConfigName, ConfigRecord, ConfigStore, Error};
use serde_json::{json, Value};

use crate::backends::Backends;
use crate::cli::{Cli, Command};
use crate::output::Output;
use crate::settings::Settings;

/// What every command works with.
pub struct Context {
    /// The resolved settings.
    pub settings: Settings,
    /// The backends, opened on first use.
    pub backends: Backends,
    /// Where results go.
    pub out: Output,
}

impl Context {
    /// A context; nothing is opened yet.
    pub fn new(settings: Settings, out: Output) -> Self {
        Context {
            backends: Backends::new(settings.clone()),
            settings,
            out,
        }
    }

    /// Who makes changes.
    pub fn author(&self) -> &str {
        &self.settings.author.value
    }

    /// The config store, opening both backends.
    pub async fn store(&self) -> Result<ConfigStore> {
        self.backends.config_store().await
    }
}

/// Runs `command`.
pub async fn run(command: Command, ctx: &Context) -> Result<()> {
    match command {
        Command::Config(command) => config::run(command, ctx).await,
        Command::List(command) => list::run(command, ctx).await,
        Command::Map(command) => map::run(command, ctx).await,
        Command::MappedList(command) => mapped_list::run(command, ctx).await,
        Command::Json(command) => json::run(command, ctx).await,
        Command::Decider(command) => decider::run(command, ctx).await,
        Command::Metaconfig(command) => metaconfig::run(command, ctx).await,
        Command::Dep(command) => dep::run(command, ctx).await,
        Command::Env(command) => environment::run(command, ctx).await,
        Command::Acl(command) => acl::run(command, ctx).await,
        Command::Serverset(command) => serverset::run(command, ctx).await,
        Command::Register(args) => register::run(args, ctx).await,
        Command::Lock(args) => lock::run(args, ctx).await,
        Command::Elect(args) => elect::run(args, ctx).await,
        Command::Backends => backends::run(ctx),
        Command::Backup { file } => backup::backup(ctx, &file).await,
        Command::Restore {
            file,
            allow_non_empty,
            dry_run,
        } => {
            let options = kingpin_backup::RestoreOptions {
                allow_non_empty,
                dry_run,
            };
            backup::restore(ctx, &file, options).await
        }
        Command::Dev {
            admin_addr,
            console_addr,
        } => dev::run(admin_addr, &console_addr, ctx).await,
        Command::Console(args) => console::run(args, ctx).await,
        Command::Completions { shell } => print_completions(shell, ctx.out),
        Command::ManPages { dir } => write_man_pages(&dir, ctx.out),
    }
}

/// Writes kingpin(1) and a page per visible command into `dir`.
pub fn write_man_pages(dir: &std::path::Path, out: Output) -> Result<()> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    // Without the `help` subcommand's pages (clap_mangen disables it).
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    out.done(
        format!("man pages written into {}", dir.display()),
        json!({ "dir": dir }),
    )
}

/// Prints the completion script for `shell`.
pub fn print_completions(shell: Shell, out: Output) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kingpin", &mut script);
    out.raw(&script)
}

/// A config name, checked before any I/O.
fn config_name(name: &str) -> Result<ConfigName, Error> {
    ConfigName::parse(name)
}

/// `NotFound` for a config that was never written (exit 3).
fn missing(name: &ConfigName) -> Error {
    Error::new(
        kingpin::kingpin_api::ErrorKind::NotFound,
        format!("config {name} does not exist"),
    )
}

/// Fails with [`missing`] unless `name` has been written. In the API a
/// managed config that was never written reads as empty (KingPin's
/// semantics, so a first `add` needs no `create`), but on the command line
/// a mistyped name must not look like an empty list: reading it exits 3,
/// as `config get` does.
async fn require_existing(ctx: &Context, name: &ConfigName) -> Result<()> {
    match ctx.store().await?.record(name).await? {
        Some(_) => Ok(()),
        None => Err(missing(name).into()),
    }
}

/// A version record as JSON, with the config's name.
fn record_json(name: &ConfigName, record: &ConfigRecord) -> Value {
    json!({
        "name": name.as_str(),
        "version": record.version,
        "sha256": record.sha256,
        "size": record.size,
        "author": record.author,
        "message": record.message,
        "timestamp_ms": record.timestamp_ms,
    })
}

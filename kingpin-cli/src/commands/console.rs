//! `kingpin console`: serve the web console, or hash a password for its
//! users file.

use std::io::BufRead as _;

use anyhow::{bail, Context as _, Result};
use kingpin_console::{Console, ConsoleSettings};
use serde_json::json;

use super::Context;
use crate::cli::{ConsoleArgs, ConsoleCommand};

/// Runs `kingpin console`.
pub async fn run(args: ConsoleArgs, ctx: &Context) -> Result<()> {
    match args.command {
        Some(ConsoleCommand::HashPassword) => hash_password(ctx),
        None => serve(args, ctx).await,
    }
}

/// Reads one line (the password) from stdin and prints its hash; the
/// password itself is never printed or logged.
fn hash_password(ctx: &Context) -> Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!(kingpin::kingpin_api::Error::invalid(
            "no password on stdin (try: read -rs PW && printf '%s\\n' \"$PW\" | kingpin console hash-password)"
        ));
    }
    let hash = kingpin_console::hash_password(password)?;
    ctx.out.done(hash.clone(), json!({ "hash": hash }))
}

async fn serve(args: ConsoleArgs, ctx: &Context) -> Result<()> {
    let Some(path) = &args.settings else {
        bail!(kingpin::kingpin_api::Error::invalid(
            "kingpin console needs --settings FILE naming how users sign in (users_file, or proxy_header with trusted_proxies) and their grants; `kingpin dev` runs the console signed in as you"
        ));
    };
    let mut settings = ConsoleSettings::from_file(path)?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    let listen = settings.listen;
    let console = Console::new(
        ctx.backends.coordinator().await?,
        ctx.backends.blob_store().await?,
        settings,
    )?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    ctx.out.done(
        format!("kingpin console: http://{addr}/"),
        json!({ "console": format!("http://{addr}/") }),
    )?;
    tokio::select! {
        served = console.serve(listener) => served.context("the console server stopped")?,
        signal = shutdown_signal() => signal.context("cannot listen for signals")?,
    }
    Ok(())
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

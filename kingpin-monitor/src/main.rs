//! `kingpin-monitor`: keeps this host's subscribed configs and serversets in
//! local files. See the crate documentation and `--help`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use kingpin_monitor::{Monitor, MonitorSettings};

/// Syncs the configs and serversets a dependency reaches into local files.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The TOML settings file (coordinator, blobstore, dependency,
    /// config_dir, serverset_dir, admin_addr, reconcile_interval, hooks).
    #[arg(
        long,
        env = "KINGPIN_MONITOR_CONFIG",
        required_unless_present = "man_page"
    )]
    config: Option<PathBuf>,
    /// Write the man page, kingpin-monitor(1), into DIR and exit (for
    /// packaging).
    #[arg(long, value_name = "DIR", hide = true, exclusive = true)]
    man_page: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(dir) = args.man_page {
        return clap_mangen::generate_to(Args::command(), &dir)
            .with_context(|| format!("cannot write the man page into {}", dir.display()));
    }
    let Some(config) = args.config else {
        anyhow::bail!("--config is required");
    };
    let settings = MonitorSettings::from_file(&config)?;
    tracing::info!(dependency = %settings.dependency, config_dir = %settings.config_dir.display(), "starting");
    let monitor = Monitor::start(settings).await?;
    if let Some(addr) = monitor.admin_addr() {
        tracing::info!(%addr, "admin server listening");
    }
    shutdown_signal()
        .await
        .context("cannot listen for signals")?;
    tracing::info!("stopping");
    monitor.stop();
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}

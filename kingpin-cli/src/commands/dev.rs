//! `kingpin dev`: the whole stack on one machine, in the foreground.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use kingpin::kingpin_api::metaconfig::MetaConfigManager;
use kingpin::kingpin_api::ConfigName;
use kingpin_console::{Console, ConsoleSettings};
use kingpin_monitor::{Monitor, MonitorSettings};
use serde_json::json;

use super::Context;

/// The dependency `kingpin dev`'s monitor subscribes to.
const DEV_DEPENDENCY: &str = "dev.dep";

/// Runs the monitor on the configured (by default embedded) backends until
/// Ctrl-C, after printing how to use it.
pub async fn run(admin_addr: SocketAddr, console_addr: &str, ctx: &Context) -> Result<()> {
    let dir: PathBuf = match &ctx.settings.embedded_dir {
        Some(dir) => dir.clone(),
        None => crate::settings::embedded_home()?.join(".kingpin"),
    };
    let dependency = ConfigName::parse(DEV_DEPENDENCY)?;
    MetaConfigManager::new(ctx.backends.coordinator().await?)
        .create_dependency(&dependency)
        .await?;
    let mut settings = MonitorSettings::new(
        &ctx.settings.coordinator.value,
        &ctx.settings.blobstore.value,
        dependency,
    );
    settings.config_dir = dir.join("var").join("config");
    settings.serverset_dir = dir.join("var").join("serverset");
    settings.admin_addr = Some(admin_addr);
    settings.reconcile_interval = Duration::from_secs(30);
    settings.reconcile_jitter = Duration::from_secs(5);
    // The console's "who has which version" shows this host.
    settings.report_status = true;
    settings.status_interval = Duration::from_secs(2);
    let config_dir = settings.config_dir.clone();
    let monitor = Monitor::start(settings).await?;
    let admin = monitor.admin_addr().unwrap_or(admin_addr);
    let console = match console_addr {
        "off" | "" => None,
        addr => {
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--console-addr {addr:?} is not an address"))?;
            let mut console_settings = ConsoleSettings::local(ctx.author());
            console_settings.catalog_refresh = Duration::from_secs(2);
            console_settings.status_refresh = Duration::from_secs(2);
            let console = Console::new(
                ctx.backends.coordinator().await?,
                ctx.backends.blob_store().await?,
                console_settings,
            )?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot bind the console to {addr}"))?;
            let bound = listener.local_addr()?;
            let task = tokio::spawn(async move {
                if let Err(e) = console.serve(listener).await {
                    tracing::error!(error = %e, "the console stopped");
                }
            });
            Some((bound, task))
        }
    };
    let console_line = match &console {
        Some((addr, _)) => format!("http://{addr}/  (signed in as {})", ctx.author()),
        None => "off".to_owned(),
    };
    let name = "config.manageddata.demo.greetings";
    let text = format!(
        "kingpin dev: running the embedded stack in {dir}
  coordinator  SQLite, blobs in local files (both under {dir})
  monitor      subscribed to {DEV_DEPENDENCY}; files in {config_dir}
  admin        http://{admin}/admin/healthcheck  (also /config, /metrics)
  console      {console_line}

From a second terminal, in this directory:
  kingpin metaconfig create-config {name}
  kingpin dep add {DEV_DEPENDENCY} {name}
  kingpin list add {name} hello world
  cat {file}

Ctrl-C stops it; the files stay.",
        dir = dir.display(),
        config_dir = config_dir.display(),
        file = config_dir.join(name).display(),
    );
    ctx.out.done(
        text,
        json!({
            "dir": dir,
            "dependency": DEV_DEPENDENCY,
            "config_dir": config_dir,
            "admin": format!("http://{admin}"),
            "console": console.as_ref().map(|(addr, _)| format!("http://{addr}/")),
        }),
    )?;
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    monitor.stop();
    if let Some((_, task)) = console {
        task.abort();
    }
    Ok(())
}

//! Soak: the fault loop on real 3-node clusters for as long as asked.
//!
//! On each cluster: clients read, compare-and-set and `update` one config
//! (recorded, see `config_history`), writers add unique items to a managed
//! list, and two monitors (one on a client node the network can cut off)
//! sync both configs to files; meanwhile faults are injected in rotation
//! (leader `kill -9` and restart, leader pause and resume, the leader
//! partitioned into a minority, a client partitioned into a minority, each
//! healed). Each fault is one segment of the config's history, checked for
//! linearizability when it ends; at the end every acknowledged add must be
//! in the list exactly once, and both monitors' files must converge to the
//! final versions, never torn. A table sums it up; the exit code is 1 if
//! anything was found.
//!
//! `scripts/soak --duration 10m --cluster zookeeper|etcd|both` (or
//! `cargo bench -p kingpin-monitor --bench soak -- --duration 10m`). Under
//! `cargo test` it runs a 20-second smoke on etcd.

mod list_writers;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use kingpin_api::managed::ManagedList;
use kingpin_api::metaconfig::MetaConfig;
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore};
use kingpin_conformance_tests::cluster::{ClientRuntime, Cluster, ClusterKind, Fault, Place};
use kingpin_conformance_tests::config_history::{HistoryCounts, Recording, VersionedConfig};
use kingpin_conformance_tests::linearizability::check;
use kingpin_conformance_tests::torn_files::TornFileReader;
use kingpin_monitor::{Monitor, MonitorSettings};
use list_writers::ListWriters;
use report::{Report, ReportTable};

/// Sessions (leases) expire this long after their client goes silent.
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Zookeeper,
    Etcd,
    Both,
}

/// The soak's settings (see the module docs).
#[derive(Debug, Parser)]
#[command(about = "Soak kingpin on real 3-node clusters under rotating faults")]
struct Args {
    /// How long to run on each cluster (`90s`, `10m`).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Which cluster(s), one after the other.
    #[arg(long, value_enum, default_value = "both")]
    cluster: Which,
    /// How long each fault lasts before it is undone.
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Quiet time before and after each fault.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    quiet: Duration,
    /// Clients on the recorded config (the last on the cut-off node).
    #[arg(long, default_value_t = 4)]
    config_clients: usize,
    /// Writers adding to the managed list (the last on the cut-off node).
    #[arg(long, default_value_t = 4)]
    list_writers: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    /// What `cargo test` runs: 20 seconds on etcd, short faults so that
    /// each kind is injected once.
    fn smoke() -> Args {
        Args {
            duration: Duration::from_secs(20),
            cluster: Which::Etcd,
            hold: Duration::from_secs(2),
            quiet: Duration::from_secs(1),
            config_clients: 3,
            list_writers: 2,
            bench: false,
        }
    }

    fn kinds(&self) -> Vec<ClusterKind> {
        match self.cluster {
            Which::Zookeeper => vec![ClusterKind::ZooKeeper],
            Which::Etcd => vec![ClusterKind::Etcd],
            Which::Both => vec![ClusterKind::ZooKeeper, ClusterKind::Etcd],
        }
    }
}

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).expect("a valid constant name")
}

fn who() -> ChangeInfo {
    ChangeInfo::new("soak", "soak")
}

/// A store for the recorded config: short timeouts, as the linearizability
/// test uses, so that operations of unknown outcome stay rare.
async fn recording_store(place: &Place) -> kingpin_api::Result<ConfigStore> {
    Ok(place
        .store()
        .await?
        .with_resolve_timeout(Duration::from_secs(5))
        .with_unavailable_retry(Duration::from_secs(10)))
}

/// Opens what `open` opens on `client`'s runtime: its connections come
/// from the client node.
async fn on_client<T: Send + 'static>(
    client: &ClientRuntime,
    place: &Arc<Place>,
    open: impl FnOnce(Arc<Place>) -> futures::future::BoxFuture<'static, T> + Send + 'static,
) -> T {
    let place = place.clone();
    client.run(async move { open(place).await }).await
}

fn monitor_settings(place: &Place, dependency: &ConfigName, out: PathBuf) -> MonitorSettings {
    let mut settings =
        MonitorSettings::new(&place.coordinator_url, &place.blob_url, dependency.clone());
    settings.config_dir = out.join("config");
    settings.serverset_dir = out.join("serverset");
    settings.admin_addr = None;
    settings
}

async fn soak(kind: ClusterKind, args: &Args) -> anyhow::Result<Option<Report>> {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "soak").await else {
        return Ok(None);
    };
    let place = Arc::new(Place::new(&cluster, SESSION_TIMEOUT)?);
    let client = ClientRuntime::new(&cluster.add_client("soak").map_err(anyhow::Error::msg)?)
        .map_err(anyhow::Error::msg)?;
    let (register, list_name, dependency) = (
        name("config.soak.register"),
        name("config.manageddata.soak.items"),
        name("soak.dep"),
    );
    let host_store = place.store().await?;
    host_store
        .write(&list_name, Bytes::from_static(b"[]"), &who())
        .await?;
    host_store
        .write(&register, Bytes::from_static(b"start;"), &who())
        .await?;
    place
        .subscribe(
            &dependency,
            vec![
                MetaConfig::config(register.clone())?,
                MetaConfig::config(list_name.clone())?,
            ],
        )
        .await?;

    let outs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let host_monitor =
        Monitor::start(monitor_settings(&place, &dependency, outs[0].path().into())).await?;
    let client_monitor = {
        let settings = monitor_settings(&place, &dependency, outs[1].path().into());
        client.run(Monitor::start(settings)).await?
    };
    let monitors = [host_monitor, client_monitor];
    let mut readers = Vec::new();
    for (monitor, out) in monitors.iter().zip(&outs) {
        let list = list_name.clone();
        tokio::time::timeout(
            Duration::from_secs(60),
            monitor
                .state()
                .wait_for(|s| s.entry(&list).is_some_and(|e| e.version == Some(1))),
        )
        .await
        .context("a monitor's first sync")?;
        readers.push(TornFileReader::start(
            out.path().join("config").join(list_name.as_str()),
        ));
    }

    let mut writers = ListWriters::default();
    for writer in 0..args.list_writers {
        let list = if writer + 1 == args.list_writers {
            let list_name = list_name.clone();
            on_client(&client, &place, move |place| {
                Box::pin(async move { place.store().await.map(|s| ManagedList::new(s, list_name)) })
            })
            .await?
        } else {
            ManagedList::new(place.store().await?, list_name.clone())
        };
        if writer + 1 == args.list_writers {
            writers.start_on(&client, writer, list);
        } else {
            writers.start(writer, list);
        }
    }

    let mut report = Report::new(kind);
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < args.duration {
        let fault = Fault::ROTATION[round % Fault::ROTATION.len()];
        round += 1;
        let initial = format!("seg{round};");
        let at = host_store
            .write(&register, Bytes::from(initial.clone()), &who())
            .await
            .context("resetting the recorded config")?;
        let mut recording = Recording::new(register.clone());
        for c in 0..args.config_clients {
            let task = if c + 1 == args.config_clients {
                let store = on_client(&client, &place, |place| {
                    Box::pin(async move { recording_store(&place).await })
                })
                .await?;
                client.spawn(recording.client(c, store, false))
            } else {
                tokio::spawn(recording.client(c, recording_store(&place).await?, false))
            };
            recording.add(task);
        }
        tokio::time::sleep(args.quiet).await;
        let episode = cluster
            .run_episode(fault, client.node(), args.hold)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{kind:?}: {fault:?}"))?;
        tokio::time::sleep(args.quiet).await;
        let finished = recording.finish(&host_store).await?;
        let model = VersionedConfig::starting_at(at.version, &initial);
        let counts = HistoryCounts::of(&finished.history);
        let checking = Instant::now();
        let history = finished.history;
        let result = tokio::task::spawn_blocking(move || check(&model, &history)).await?;
        println!(
            "{kind:?} #{round} {:>5.0}s {}: {}; {counts}; checked in {:.1?}: {}",
            started.elapsed().as_secs_f64(),
            fault.label(),
            episode.description,
            checking.elapsed(),
            match &result {
                Ok(()) => "linearizable".to_string(),
                Err(e) => e.to_string(),
            }
        );
        report.add_segment(&episode, counts, &finished.clients, &result);
    }

    let adds = writers.finish().await?;
    let final_list = host_store
        .read(&list_name)
        .await?
        .context("the list exists")?;
    let items: Vec<String> = serde_json::from_slice(&final_list.content)?;
    report.add_list(&adds, &items);
    let final_register = host_store
        .read(&register)
        .await?
        .context("the config exists")?;
    for (monitor, out) in monitors.iter().zip(&outs) {
        let finals = [(&list_name, &final_list), (&register, &final_register)];
        let converged = tokio::time::timeout(
            Duration::from_secs(60),
            monitor.state().wait_for(|s| {
                finals.iter().all(|(name, config)| {
                    s.entry(name).and_then(|e| e.version) == Some(config.record.version)
                })
            }),
        )
        .await
        .is_ok();
        let files_match = finals.iter().all(|(name, config)| {
            std::fs::read(out.path().join("config").join(name.as_str()))
                .is_ok_and(|file| file == config.content)
        });
        report.add_monitor(converged && files_match);
    }
    for reader in readers {
        report.add_file_reads(reader.finish().await);
    }
    report.elapsed = started.elapsed();
    drop(monitors);
    Ok(Some(report))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    // Under `cargo test` the arguments are the test runner's, not ours.
    let args = if bench { Args::parse() } else { Args::smoke() };
    println!(
        "soak ({} run): {:?} per cluster, faults held {:?}, {:?} quiet around each; \
         {} config clients, {} list writers",
        if bench { "full" } else { "smoke" },
        args.duration,
        args.hold,
        args.quiet,
        args.config_clients,
        args.list_writers
    );
    let mut table = ReportTable::default();
    for kind in args.kinds() {
        match soak(kind, &args).await? {
            Some(report) => table.push(report),
            None => println!("{kind:?}: skipped"),
        }
    }
    println!("\n{table}");
    let anomalies = table.anomalies();
    if anomalies > 0 {
        bail!("{anomalies} anomalies found");
    }
    Ok(())
}

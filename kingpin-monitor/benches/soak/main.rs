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
use kingpin_conformance_tests::config_history::{
    read_settled, ConfigOperation, HistoryCounts, Recording, VersionedConfig,
};
use kingpin_conformance_tests::linearizability::{check, CheckError, Violation};
use kingpin_conformance_tests::torn_files::TornFileReader;
use kingpin_monitor::{Monitor, MonitorSettings};
use list_writers::{Adds, ListWriters};
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

/// The names the soak works on.
struct Names {
    register: ConfigName,
    list: ConfigName,
    dependency: ConfigName,
}

impl Names {
    fn new() -> Self {
        Names {
            register: name("config.soak.register"),
            list: name("config.manageddata.soak.items"),
            dependency: name("soak.dep"),
        }
    }
}

/// One cluster's soak: the cluster, a place on it, a client node that the
/// client partitions cut off, and a store on the host.
struct Soak<'a> {
    args: &'a Args,
    cluster: Cluster,
    place: Arc<Place>,
    client: ClientRuntime,
    host_store: ConfigStore,
    names: Names,
}

/// The monitors, their output directories and the torn-file readers on
/// their list files.
struct Monitors {
    running: Vec<Monitor>,
    outs: Vec<tempfile::TempDir>,
    readers: Vec<TornFileReader>,
}

impl<'a> Soak<'a> {
    /// Starts a cluster and writes the first versions, or `None` when the
    /// run opted out of clusters.
    async fn start(kind: ClusterKind, args: &'a Args) -> anyhow::Result<Option<Soak<'a>>> {
        let Some(cluster) = Cluster::for_test(kind, 3, "soak").await else {
            return Ok(None);
        };
        let place = Arc::new(Place::new(&cluster, SESSION_TIMEOUT)?);
        let node = cluster.add_client("soak").map_err(anyhow::Error::msg)?;
        let client = ClientRuntime::new(&node).map_err(anyhow::Error::msg)?;
        let names = Names::new();
        let host_store = place.store().await?;
        host_store
            .write(&names.list, Bytes::from_static(b"[]"), &who())
            .await?;
        host_store
            .write(&names.register, Bytes::from_static(b"start;"), &who())
            .await?;
        let metaconfigs = vec![
            MetaConfig::config(names.register.clone())?,
            MetaConfig::config(names.list.clone())?,
        ];
        place.subscribe(&names.dependency, metaconfigs).await?;
        Ok(Some(Soak {
            args,
            cluster,
            place,
            client,
            host_store,
            names,
        }))
    }

    /// A store on the host or, for `on_client`, opened on the client
    /// node's runtime (every connection comes from there). `recording`:
    /// the short timeouts the linearizability test uses, so that
    /// operations of unknown outcome stay rare.
    async fn store(&self, on_client: bool, recording: bool) -> anyhow::Result<ConfigStore> {
        let place = self.place.clone();
        let open = async move { place.store().await };
        let store = if on_client {
            self.client.run(open).await?
        } else {
            open.await?
        };
        Ok(if recording {
            store
                .with_resolve_timeout(Duration::from_secs(5))
                .with_unavailable_retry(Duration::from_secs(10))
        } else {
            store
        })
    }

    fn monitor_settings(&self, out: PathBuf) -> MonitorSettings {
        let mut settings = MonitorSettings::new(
            &self.place.coordinator_url,
            &self.place.blob_url,
            self.names.dependency.clone(),
        );
        settings.config_dir = out.join("config");
        settings.serverset_dir = out.join("serverset");
        settings.admin_addr = None;
        settings
    }

    /// A monitor on the host and one on the client node, synced.
    async fn start_monitors(&self) -> anyhow::Result<Monitors> {
        let outs = vec![tempfile::tempdir()?, tempfile::tempdir()?];
        let on_host = Monitor::start(self.monitor_settings(outs[0].path().into())).await?;
        let settings = self.monitor_settings(outs[1].path().into());
        let on_client = self.client.run(Monitor::start(settings)).await?;
        let running = vec![on_host, on_client];
        let mut readers = Vec::new();
        for (monitor, out) in running.iter().zip(&outs) {
            let list = &self.names.list;
            tokio::time::timeout(
                Duration::from_secs(60),
                monitor
                    .state()
                    .wait_for(|s| s.entry(list).is_some_and(|e| e.version == Some(1))),
            )
            .await
            .context("a monitor's first sync")?;
            readers.push(TornFileReader::start(
                out.path().join("config").join(list.as_str()),
            ));
        }
        Ok(Monitors {
            running,
            outs,
            readers,
        })
    }

    /// The list writers, the last on the client node.
    async fn start_writers(&self) -> anyhow::Result<ListWriters> {
        let mut writers = ListWriters::default();
        for writer in 0..self.args.list_writers {
            let on_client = writer + 1 == self.args.list_writers;
            let list =
                ManagedList::new(self.store(on_client, false).await?, self.names.list.clone());
            if on_client {
                writers.start_on(&self.client, writer, list);
            } else {
                writers.start(writer, list);
            }
        }
        Ok(writers)
    }

    /// One fault's segment: the recorded config starts afresh, its clients
    /// run through the fault, and the history is checked.
    async fn segment(
        &mut self,
        round: usize,
        report: &mut Report,
        since: Instant,
    ) -> anyhow::Result<()> {
        let kind = self.cluster.kind();
        let fault = Fault::ROTATION[round % Fault::ROTATION.len()];
        let initial = format!("seg{round};");
        let at = self
            .host_store
            .write(&self.names.register, Bytes::from(initial.clone()), &who())
            .await
            .context("resetting the recorded config")?;
        let mut recording = Recording::new(self.names.register.clone());
        for c in 0..self.args.config_clients {
            let on_client = c + 1 == self.args.config_clients;
            let run = recording.client(c, self.store(on_client, true).await?, false);
            recording.add(if on_client {
                self.client.spawn(run)
            } else {
                tokio::spawn(run)
            });
        }
        tokio::time::sleep(self.args.quiet).await;
        let episode = self
            .cluster
            .run_episode(fault, self.client.node(), self.args.hold)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{kind:?}: {fault:?}"))?;
        tokio::time::sleep(self.args.quiet).await;
        let finished = recording.finish(&self.host_store).await?;
        let model = VersionedConfig::starting_at(at.version, &initial);
        let counts = HistoryCounts::of(&finished.history);
        let checking = Instant::now();
        let history = finished.history;
        let (result, history) = tokio::task::spawn_blocking(move || {
            let result = check(&model, &history);
            (result, history)
        })
        .await?;
        if let Err(CheckError::NotLinearizable(violation)) = &result {
            explain(kind, round, &history, violation)?;
        }
        println!(
            "{kind:?} #{} {:>5.0}s {}: {}; {counts}; checked in {:.1?}: {}",
            round + 1,
            since.elapsed().as_secs_f64(),
            fault.label(),
            episode.description,
            checking.elapsed(),
            match &result {
                Ok(()) => "linearizable".to_string(),
                Err(e) => e.to_string(),
            }
        );
        report.add_segment(&episode, counts, &finished.clients, &result);
        Ok(())
    }

    /// The final list against the acknowledged adds, and each monitor's
    /// files against the final versions.
    async fn verify(
        &self,
        adds: &Adds,
        monitors: Monitors,
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let read = |name: &ConfigName| {
            let (store, name) = (self.host_store.clone(), name.clone());
            async move {
                read_settled(&store, &name)
                    .await?
                    .context("the config exists")
            }
        };
        let final_list = read(&self.names.list).await?;
        let items: Vec<String> = serde_json::from_slice(&final_list.content)?;
        report.add_list(adds, &items);
        let final_register = read(&self.names.register).await?;
        let finals = [
            (&self.names.list, &final_list),
            (&self.names.register, &final_register),
        ];
        for (monitor, out) in monitors.running.iter().zip(&monitors.outs) {
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
        for reader in monitors.readers {
            report.add_file_reads(reader.finish().await);
        }
        Ok(())
    }
}

/// Prints the operations no order could place next, and writes the whole
/// history to a file for a closer look.
fn explain(
    kind: ClusterKind,
    round: usize,
    history: &[ConfigOperation],
    violation: &Violation,
) -> anyhow::Result<()> {
    for &i in &violation.stuck_at {
        println!("  stuck: #{i} {:?}", history[i]);
    }
    let file = std::env::temp_dir().join(format!(
        "kingpin-soak-{kind:?}-{}-{}.txt",
        round + 1,
        std::process::id()
    ));
    let mut text = String::new();
    for (i, operation) in history.iter().enumerate() {
        text.push_str(&format!("#{i} {operation:?}\n"));
    }
    std::fs::write(&file, text)?;
    println!("  history: {}", file.display());
    Ok(())
}

async fn soak(kind: ClusterKind, args: &Args) -> anyhow::Result<Option<Report>> {
    let Some(mut soak) = Soak::start(kind, args).await? else {
        return Ok(None);
    };
    let monitors = soak.start_monitors().await?;
    let writers = soak.start_writers().await?;
    let mut report = Report::new(kind);
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < args.duration {
        soak.segment(round, &mut report, started).await?;
        round += 1;
    }
    report.elapsed = started.elapsed();
    let adds = writers.finish().await?;
    soak.verify(&adds, monitors, &mut report).await?;
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
    let mut failed = Vec::new();
    for kind in args.kinds() {
        match soak(kind, &args).await {
            Ok(Some(report)) => table.push(report),
            Ok(None) => println!("{kind:?}: skipped"),
            // The harness or the soak's own bookkeeping gave up: say so
            // and go on with the next cluster.
            Err(e) => {
                println!("{kind:?}: the soak stopped: {e:#}");
                failed.push(kind);
            }
        }
    }
    println!("\n{table}");
    let anomalies = table.anomalies();
    if anomalies > 0 || !failed.is_empty() {
        bail!("{anomalies} anomalies found; soak stopped early on {failed:?}");
    }
    Ok(())
}

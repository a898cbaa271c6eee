//! The product's guarantees on real 3-node clusters (ZooKeeper and etcd)
//! while the cluster loses its leader or a client is partitioned: no lost
//! or doubled update, no torn file, last good files during the outage,
//! ephemeral membership through a leader change and gone after expiry, no
//! stale write accepted from behind a paused member. Each case prints
//! what it observed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::discovery::{Member, ServerSet};
use kingpin_client::Endpoint;
use kingpin_api::managed::ManagedList;
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore, Coordinator, ErrorKind};
use kingpin_conformance_tests::cluster::{ClientRuntime, Cluster, ClusterKind};
use kingpin_conformance_tests::unique_namespace;
use kingpin_monitor::{Monitor, MonitorSettings, MonitorState};

/// Sessions expire 4 s after their client goes silent.
const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// Generous: a failing wait means the behaviour is missing, not slow.
const WAIT: Duration = Duration::from_secs(60);

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).unwrap()
}

fn who() -> ChangeInfo {
    ChangeInfo::new("test", "cluster fault test")
}

/// One test's place on a cluster: a namespace on the coordinator and a
/// blob directory (local files: the faults are the coordinator's).
struct Place {
    coordinator_url: String,
    blob_url: String,
    _blobs: tempfile::TempDir,
}

impl Place {
    fn new(cluster: &Cluster) -> Place {
        let blobs = tempfile::tempdir().unwrap();
        let options = match cluster.kind() {
            ClusterKind::ZooKeeper => format!(
                "session_timeout={}s&connection_timeout=1s",
                SESSION_TIMEOUT.as_secs()
            ),
            ClusterKind::Etcd => format!("lease_ttl={}s", SESSION_TIMEOUT.as_secs()),
        };
        Place {
            coordinator_url: cluster.url(&unique_namespace(), &options),
            blob_url: format!("file://{}", blobs.path().display()),
            _blobs: blobs,
        }
    }

    async fn coordinator(&self) -> Arc<dyn Coordinator> {
        kingpin::open_coordinator(&self.coordinator_url)
            .await
            .unwrap()
    }

    /// A store on a session of its own that rides through elections.
    async fn store(&self) -> ConfigStore {
        ConfigStore::new(
            self.coordinator().await,
            kingpin::open_blob_store(&self.blob_url).await.unwrap(),
        )
        .with_unavailable_retry(Duration::from_secs(30))
    }

    fn monitor_settings(&self, dependency: &str, out: &Path) -> MonitorSettings {
        let mut settings =
            MonitorSettings::new(&self.coordinator_url, &self.blob_url, name(dependency));
        settings.config_dir = out.join("config");
        settings.serverset_dir = out.join("serverset");
        settings.admin_addr = None;
        settings.host = Some("cluster-test-host".into());
        settings
    }

    /// Subscribes `dependency` to `metaconfigs`.
    async fn subscribe(&self, dependency: &str, metaconfigs: Vec<MetaConfig>) {
        let manager = MetaConfigManager::new(self.coordinator().await);
        manager.create_dependency(&name(dependency)).await.unwrap();
        for metaconfig in metaconfigs {
            manager.create(&metaconfig).await.unwrap();
            manager
                .add_to_dependency(&name(dependency), &metaconfig.name)
                .await
                .unwrap();
        }
    }
}

async fn wait_for(state: &MonitorState, what: &str, condition: impl FnMut(&MonitorState) -> bool) {
    tokio::time::timeout(WAIT, state.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", state.health()));
}

/// Reads `file` every few milliseconds until stopped: how many reads, and
/// how many found something that is not a whole JSON list (a torn file).
struct FileReader {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl FileReader {
    fn start(file: PathBuf) -> FileReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut reads, mut torn) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                if let Ok(bytes) = std::fs::read(&file) {
                    reads += 1;
                    if serde_json::from_slice::<Vec<String>>(&bytes).is_err() {
                        torn += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (reads, torn)
        });
        FileReader { stop, task }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// 8 clients add 200 items each to one managed list while the leader is
/// killed with `kill -9`: every add succeeds, exactly once, and two
/// monitors' files converge to the final version, never torn.
async fn leader_killed_during_concurrent_adds(kind: ClusterKind, writers: usize, adds: usize) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "leader_killed_during_adds").await else {
        return;
    };
    let place = Place::new(&cluster);
    let list_name = name("config.manageddata.fault.items");
    let first = place.store().await;
    first
        .write(&list_name, Bytes::from_static(b"[]"), &who())
        .await
        .unwrap();
    place
        .subscribe("fault.dep", vec![MetaConfig::config(list_name.clone()).unwrap()])
        .await;
    let outs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut monitors = Vec::new();
    let mut readers = Vec::new();
    for out in &outs {
        let monitor = Monitor::start(place.monitor_settings("fault.dep", out.path()))
            .await
            .unwrap();
        wait_for(monitor.state(), "the first sync", |s| {
            s.entry(&list_name).is_some_and(|e| e.version == Some(1))
        })
        .await;
        readers.push(FileReader::start(
            out.path().join("config").join(list_name.as_str()),
        ));
        monitors.push(monitor);
    }

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = place.store().await;
        let list = ManagedList::<String>::new(store, list_name.clone());
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut failures = Vec::new();
            for i in 0..adds {
                let item = format!("w{writer}-{i}");
                match list.add(item.clone()).await {
                    Ok(_) => {
                        acked.push(item);
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(format!("{item}: {e}")),
                }
            }
            (acked, failures)
        }));
    }
    // Kill the leader a third of the way in.
    let total = writers * adds;
    while acknowledged.load(Ordering::Relaxed) < total / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = cluster.leader().await.unwrap();
    let at = acknowledged.load(Ordering::Relaxed);
    let killed = Instant::now();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    let election = killed.elapsed();

    let mut acked = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        let (a, f) = task.await.unwrap();
        acked.extend(a);
        failures.extend(f);
    }
    let writing = started.elapsed();
    let final_config = first.read(&list_name).await.unwrap().unwrap();
    let items: Vec<String> = serde_json::from_slice(&final_config.content).unwrap();
    let unique: HashSet<&String> = items.iter().collect();
    let missing: Vec<&String> = acked.iter().filter(|i| !unique.contains(i)).collect();
    for monitor in &monitors {
        wait_for(monitor.state(), "the final version on disk", |s| {
            s.entry(&list_name)
                .is_some_and(|e| e.version == Some(final_config.record.version))
        })
        .await;
    }
    for out in &outs {
        let file = std::fs::read(out.path().join("config").join(list_name.as_str())).unwrap();
        assert_eq!(file, final_config.content, "the monitor's file is the final version");
    }
    let mut reads = 0;
    let mut torn = 0;
    for reader in readers {
        let (r, t) = reader.finish().await;
        reads += r;
        torn += t;
    }
    println!(
        "{kind:?}: {writers} writers x {adds} adds, leader m{} killed after {at} acks, m{} led {election:?} later; \
         {} acknowledged, {} failed in {writing:?}; final version {}, {} items ({} distinct), {} acknowledged missing; \
         2 monitors converged; {reads} file reads, {torn} torn",
        leader + 1,
        next + 1,
        acked.len(),
        failures.len(),
        final_config.record.version,
        items.len(),
        unique.len(),
        missing.len(),
    );
    assert!(failures.is_empty(), "every add succeeds: {failures:?}");
    assert_eq!(acked.len(), total);
    assert_eq!(items.len(), total, "no add lost, none applied twice");
    assert_eq!(unique.len(), total);
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert_eq!(torn, 0, "no torn file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_leader_killed_during_concurrent_adds() {
    leader_killed_during_concurrent_adds(ClusterKind::ZooKeeper, 8, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_leader_killed_during_concurrent_adds() {
    leader_killed_during_concurrent_adds(ClusterKind::Etcd, 8, 200).await;
}

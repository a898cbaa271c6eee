//! The propagation benchmarks' rounds, shared by `propagation` (one
//! ZooKeeper server) and `cluster_propagation` (a 3-node ensemble beside a
//! single node): N monitors or N bare watchers on one config, K writes, and
//! for each write and each instance the time from the write's start (and
//! from its acknowledgement) until the instance had the new version.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator, WatchKind};
use kingpin_conformance_tests::latency::Latencies;
use kingpin_conformance_tests::unique_name_component;
use kingpin_monitor::{Monitor, MonitorSettings};

pub fn report(what: &str, samples: Vec<Duration>) -> Latencies {
    let samples = Latencies::new(samples);
    println!("{what:<34} {}", samples.summary_ms());
    samples
}

/// Output directories of N "hosts": on tmpfs when there is one, since N
/// real hosts do not share one disk's fsync queue.
pub fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Where a benchmark runs: the coordinator URL the monitors and watchers
/// connect to, the blob store, and the writer's store and session (which
/// may be on another member).
pub struct Setup {
    /// What monitors and bare watchers connect to.
    pub zk_url: String,
    /// The blob store's URL, for the monitors' settings.
    pub blobstore_url: String,
    /// The blob store, shared by the monitors.
    pub blobs: Arc<dyn BlobStore>,
    /// The writer.
    pub store: ConfigStore,
    /// The writer's session, for metaconfigs.
    pub coordinator: Arc<dyn Coordinator>,
}

/// Latencies of every instance in every round, measured from the write's
/// start and from its acknowledgement.
#[derive(Default)]
pub struct Samples {
    /// From the start of the write.
    pub from_start: Vec<Duration>,
    /// From the writer's acknowledgement.
    pub from_ack: Vec<Duration>,
}

impl Samples {
    /// One write's round: when each instance had the new version, for a
    /// write that started at `started` and was acknowledged at `acked`.
    pub fn add_round(&mut self, seen: &[Instant], started: Instant, acked: Instant) {
        self.from_start
            .extend(seen.iter().map(|t| t.saturating_duration_since(started)));
        self.from_ack
            .extend(seen.iter().map(|t| t.saturating_duration_since(acked)));
    }
}

pub async fn writes_to(
    setup: &Setup,
    name: &ConfigName,
    k: usize,
    mut wait_all: impl FnMut(u64) -> tokio::sync::oneshot::Receiver<Vec<Instant>>,
) -> Samples {
    let mut samples = Samples::default();
    for round in 1..=k {
        let version = setup
            .store
            .record(name)
            .await
            .unwrap()
            .map_or(1, |(r, _)| r.version + 1);
        let seen = wait_all(version);
        let content = Bytes::from(format!("[{round}]"));
        let started = Instant::now();
        setup
            .store
            .write(name, content, &ChangeInfo::new("bench", "round"))
            .await
            .unwrap();
        let acked = Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(60), seen)
            .await
            .expect("every instance saw the version within 60 s")
            .expect("the waiters report");
        samples.add_round(&seen, started, acked);
    }
    samples
}

/// N monitors; returns the start → rename and ack → rename latencies.
pub async fn monitors(setup: &Setup, n: usize, k: usize) -> Samples {
    let name = ConfigName::parse(&format!("config.bench.m{}", unique_name_component())).unwrap();
    let dep = ConfigName::parse(&format!("bench{}.dep", unique_name_component())).unwrap();
    let manager = MetaConfigManager::new(setup.coordinator.clone());
    manager
        .create(&MetaConfig::config(name.clone()).unwrap())
        .await
        .unwrap();
    manager.create_dependency(&dep).await.unwrap();
    manager.add_to_dependency(&dep, &name).await.unwrap();
    setup
        .store
        .write(
            &name,
            Bytes::from_static(b"[0]"),
            &ChangeInfo::new("bench", "init"),
        )
        .await
        .unwrap();
    let base = tempfile::tempdir_in(scratch_base()).unwrap();
    let mut running = Vec::with_capacity(n);
    for i in 0..n {
        let mut settings = MonitorSettings::new(&setup.zk_url, &setup.blobstore_url, dep.clone());
        settings.config_dir = base.path().join(format!("host{i}/config"));
        settings.serverset_dir = base.path().join(format!("host{i}/serverset"));
        settings.admin_addr = None;
        running.push(
            Monitor::start_with_blob_store(settings, setup.blobs.clone())
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    for monitor in &running {
        let name = name.clone();
        tokio::time::timeout(
            Duration::from_secs(120),
            monitor
                .state()
                .wait_for(|s| s.entry(&name).and_then(|e| e.version) == Some(1)),
        )
        .await
        .expect("every monitor synced the first version");
    }
    println!(
        "{n} monitors started and synced in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let states: Vec<_> = running.iter().map(|m| m.state().clone()).collect();
    let samples = writes_to(setup, &name, k, |version| {
        wait_for_version(&states, &name, version)
    })
    .await;
    drop(running);
    samples
}

/// Waits, on a task per monitor, until each has `name` at `version` or
/// later; the instants they got there.
pub fn wait_for_version(
    states: &[Arc<kingpin_monitor::MonitorState>],
    name: &ConfigName,
    version: u64,
) -> tokio::sync::oneshot::Receiver<Vec<Instant>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let waits: Vec<_> = states
        .iter()
        .map(|state| {
            let (state, name) = (state.clone(), name.clone());
            tokio::spawn(async move {
                state
                    .wait_for(|s| s.entry(&name).and_then(|e| e.version).unwrap_or(0) >= version)
                    .await;
                Instant::now()
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut seen = Vec::with_capacity(waits.len());
        for wait in waits {
            seen.push(wait.await.expect("waiter"));
        }
        let _ = tx.send(seen);
    });
    rx
}

/// N bare watchers on their own sessions; returns start → notification
/// and ack → notification.
pub async fn bare_watchers(setup: &Setup, n: usize, k: usize) -> Samples {
    let name = ConfigName::parse(&format!("config.bench.w{}", unique_name_component())).unwrap();
    setup
        .store
        .write(
            &name,
            Bytes::from_static(b"[0]"),
            &ChangeInfo::new("bench", "init"),
        )
        .await
        .unwrap();
    let mut sessions = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let session = kingpin::open_coordinator(&setup.zk_url).await.unwrap();
        streams.push(
            session
                .watch(name.node_path(), WatchKind::Data)
                .await
                .unwrap(),
        );
        sessions.push(session);
    }
    let streams = Arc::new(tokio::sync::Mutex::new(streams));
    let samples = writes_to(setup, &name, k, |_| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let streams = streams.clone();
        tokio::spawn(async move {
            let mut streams = streams.lock().await;
            let waits = futures::future::join_all(streams.iter_mut().map(|s| async move {
                s.next().await;
                Instant::now()
            }));
            let _ = tx.send(waits.await);
        });
        rx
    })
    .await;
    for session in sessions {
        let _ = session.close().await;
    }
    samples
}

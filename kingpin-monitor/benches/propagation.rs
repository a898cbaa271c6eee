//! Propagation benchmark: N monitors in one process, each with its own
//! ZooKeeper session and output directory, subscribed to one dependency;
//! a writer updates a config K times. The headline is the time from the
//! start of each write (before its blob is put) to each monitor's file
//! rename (p50, p99, max over N×K), beside N bare watchers that only note
//! when the notification arrives (the floor), measured the same way. The
//! time from the writer's acknowledgement is shown too, but it is not a
//! propagation figure: the acknowledgement comes after the history record
//! is written, and under load most monitors have renamed their files by
//! then, so it reads near 0. Then the `kingpin-monitor` binary's RSS and
//! idle CPU with 100 subscriptions.
//!
//! `cargo bench -p kingpin-monitor --bench propagation` (N=1000, K=20;
//! `KINGPIN_BENCH_N`, `KINGPIN_BENCH_K` override) uses the servers named by
//! `KINGPIN_TEST_ZK` and `KINGPIN_TEST_S3` or starts its own. Under
//! `cargo test` it runs N=5, K=3 as a smoke test.

mod propagation_rounds;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::environment::{content_of, EnvPath, Environments, HostId, ServiceName};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore};
use kingpin_conformance_tests::endpoints::{bench_endpoint, bench_s3};
use kingpin_conformance_tests::latency::env_number;
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_name_component, unique_namespace, unique_suffix};
use kingpin_monitor::{Monitor, MonitorSettings};
use propagation_rounds::{
    bare_watchers, monitors, report, scratch_base, wait_for_version, Samples, Setup,
};

/// N monitors on a service's environments (/ → /prod → /prod/east), each
/// host associated with /prod/east; K writes to the root. A root write
/// commits the three views with it, so each round is the leaf view's next
/// version.
async fn environment_monitors(setup: &Setup, n: usize, k: usize) -> Samples {
    let service = ServiceName::parse(&format!("bench{}", unique_name_component())).unwrap();
    let envs = Environments::new(setup.store.clone());
    let change = ChangeInfo::new("bench", "init");
    let content = |value| content_of("bench", value).unwrap();
    let (prod, leaf) = (
        EnvPath::parse("/prod").unwrap(),
        EnvPath::parse("/prod/east").unwrap(),
    );
    let root = content(serde_json::json!({"round": 0, "db": {"pool": 5}}));
    envs.create(&service, &EnvPath::root(), root, &change)
        .await
        .unwrap();
    let pool = content(serde_json::json!({"db": {"pool": 10}}));
    envs.create(&service, &prod, pool, &change).await.unwrap();
    let region = content(serde_json::json!({"region": "east"}));
    envs.create(&service, &leaf, region, &change).await.unwrap();
    let hosts: Vec<HostId> = (0..n)
        .map(|i| HostId::parse(&format!("host{i}.bench.example")).unwrap())
        .collect();
    envs.associate_many(&service, &hosts, &leaf).await.unwrap();
    let metaconfig = MetaConfig::environment(service.as_str()).unwrap();
    let dep = ConfigName::parse(&format!("benchenv{}.dep", unique_name_component())).unwrap();
    let manager = MetaConfigManager::new(setup.coordinator.clone());
    manager.create(&metaconfig).await.unwrap();
    manager.create_dependency(&dep).await.unwrap();
    manager
        .add_to_dependency(&dep, &metaconfig.name)
        .await
        .unwrap();
    let base = tempfile::tempdir_in(scratch_base()).unwrap();
    let mut running = Vec::with_capacity(n);
    for (i, host) in hosts.iter().enumerate() {
        let mut settings = MonitorSettings::new(&setup.zk_url, &setup.blobstore_url, dep.clone());
        settings.config_dir = base.path().join(format!("host{i}/config"));
        settings.serverset_dir = base.path().join(format!("host{i}/serverset"));
        settings.admin_addr = None;
        settings.host = Some(host.to_string());
        running.push(
            Monitor::start_with_blob_store(settings, setup.blobs.clone())
                .await
                .unwrap(),
        );
    }
    let states: Vec<_> = running.iter().map(|m| m.state().clone()).collect();
    let started = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(120),
        wait_for_version(&states, &metaconfig.name, 1),
    )
    .await
    .expect("every monitor synced the first view within 120 s")
    .expect("the waiters report");
    println!(
        "{n} environment monitors started and synced in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut samples = Samples::default();
    for round in 1..=k {
        let view = envs.view(&service, &leaf).await.unwrap().unwrap();
        let seen = wait_for_version(&states, &metaconfig.name, view.record.version + 1);
        let root = content(serde_json::json!({"round": round, "db": {"pool": 5}}));
        let started = Instant::now();
        envs.set(
            &service,
            &EnvPath::root(),
            root,
            &ChangeInfo::new("bench", "round"),
            None,
        )
        .await
        .unwrap();
        let acked = Instant::now();
        let seen = tokio::time::timeout(Duration::from_secs(60), seen)
            .await
            .expect("every monitor wrote the view within 60 s")
            .expect("the waiters report");
        samples.add_round(&seen, started, acked);
    }
    drop(running);
    samples
}

/// The monitor binary with `count` subscriptions: RSS once synced, and CPU
/// used over `idle` with nothing changing.
async fn footprint(setup: &Setup, count: usize, idle: Duration) {
    let run = unique_name_component();
    let dep = ConfigName::parse(&format!("foot{run}.dep")).unwrap();
    let manager = MetaConfigManager::new(setup.coordinator.clone());
    manager.create_dependency(&dep).await.unwrap();
    for i in 0..count {
        let name = ConfigName::parse(&format!("config.foot.r{run}.c{i}")).unwrap();
        setup
            .store
            .write(
                &name,
                Bytes::from(format!("[{i}]")),
                &ChangeInfo::new("bench", "init"),
            )
            .await
            .unwrap();
        manager
            .create(&MetaConfig::config(name.clone()).unwrap())
            .await
            .unwrap();
        manager.add_to_dependency(&dep, &name).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("monitor.toml");
    std::fs::write(
        &settings,
        format!(
            "coordinator = \"{}\"\nblobstore = \"{}\"\ndependency = \"{dep}\"\nconfig_dir = \"{}\"\nserverset_dir = \"{}\"\nadmin_addr = \"off\"\n",
            setup.zk_url,
            setup.blobstore_url,
            dir.path().join("config").display(),
            dir.path().join("serverset").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kingpin-monitor"))
        .arg("--config")
        .arg(&settings)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("the monitor binary");
    let config_dir = dir.path().join("config");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Another process: its files are polled.
    // Config files only: the version stamps are in a directory beside them.
    let files = || {
        std::fs::read_dir(&config_dir).map_or(0, |d| {
            d.filter(|e| e.as_ref().is_ok_and(|e| e.path().is_file()))
                .count()
        })
    };
    while files() < count {
        assert!(
            Instant::now() < deadline,
            "the monitor did not sync {count} configs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id();
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    };
    let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    let before = cpu(pid);
    tokio::time::sleep(idle).await;
    let used = cpu(pid) - before;
    println!(
        "monitor binary, {count} subscriptions: RSS {:.1} MiB, idle CPU {:.2}% of one core over {:.0} s",
        rss_kib as f64 / 1024.0,
        used / idle.as_secs_f64() * 100.0,
        idle.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, k, subscriptions, idle) = if full {
        (
            env_number("KINGPIN_BENCH_N", 1000),
            env_number("KINGPIN_BENCH_K", 20),
            100,
            Duration::from_secs(30),
        )
    } else {
        (5, 3, 5, Duration::from_secs(1))
    };
    let mut servers = Vec::new();
    let zk = bench_endpoint(ServerKind::ZooKeeper, &mut servers).await;
    let (s3, credentials) = bench_s3(&mut servers).await;
    std::env::set_var("AWS_ACCESS_KEY_ID", &credentials.access_key);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &credentials.secret_key);
    let prefix = unique_suffix();
    let sdk = aws_sdk_store(&s3, &credentials, "kingpin-bench", &prefix).await;
    let blobs: Arc<dyn BlobStore> = Arc::new(sdk);
    let zk_url = format!("zk://{zk}{}", unique_namespace());
    let coordinator = kingpin::open_coordinator(&zk_url).await.unwrap();
    let setup = Setup {
        blobstore_url: format!(
            "s3://kingpin-bench/{prefix}?endpoint={s3}&region=us-east-1&path_style=true&conditional_put=if-none-match"
        ),
        store: ConfigStore::new(coordinator.clone(), blobs.clone()),
        zk_url,
        blobs,
        coordinator,
    };
    println!(
        "propagation benchmark ({} run; N={n}, K={k}; ZooKeeper {zk}, S3 {s3}; output on {})",
        if full { "full" } else { "smoke" },
        scratch_base().display()
    );
    let floor = bare_watchers(&setup, n, k).await;
    let monitored = monitors(&setup, n, k).await;
    let environments = environment_monitors(&setup, n, k).await;
    println!("\nfrom the start of each write:");
    let floor_start = report("bare watchers: notified", floor.from_start);
    let monitored_start = report("monitors: file renamed", monitored.from_start);
    println!(
        "monitor / floor: p50 {:.2}x, p99 {:.2}x",
        monitored_start.percentile_us(50.0) / floor_start.percentile_us(50.0).max(1.0),
        monitored_start.percentile_us(99.0) / floor_start.percentile_us(99.0).max(1.0),
    );
    let environments_start = report("environment views: renamed", environments.from_start);
    println!(
        "environment view / plain config: p50 {:.2}x, p99 {:.2}x, max {:.2}x (target: within 1.5x)",
        environments_start.percentile_us(50.0) / monitored_start.percentile_us(50.0).max(1.0),
        environments_start.percentile_us(99.0) / monitored_start.percentile_us(99.0).max(1.0),
        environments_start.max_us() / monitored_start.max_us().max(1.0),
    );
    // `ConfigStore::write` acknowledges after its history record, a blob
    // put made after the compare-and-set: watchers are often notified, and
    // files renamed, before the writer hears back.
    println!("\nfrom the writer's acknowledgement (not a propagation figure; see above):");
    report("bare watchers: notified", floor.from_ack);
    report("monitors: file renamed", monitored.from_ack);
    report("environment views: renamed", environments.from_ack);
    footprint(&setup, subscriptions, idle).await;
}

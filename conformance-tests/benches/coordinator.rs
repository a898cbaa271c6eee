//! Coordinator benchmark: compare-and-set throughput and latency, get
//! latency, and watch-notification latency, on memory, SQLite, ZooKeeper and
//! etcd; and SQLite's watch latency across processes.
//!
//! `cargo bench -p kingpin-conformance-tests --bench coordinator` uses the
//! servers named by `KINGPIN_TEST_ZK` / `KINGPIN_TEST_ETCD`, or starts its
//! own on loopback. Under `cargo test` it runs a few iterations only, as a
//! smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kingpin_api::{Coordinator, CreateMode, MemoryServer, NodePath, WatchEvent, WatchKind};
use kingpin_conformance_tests::endpoints::bench_endpoint;
use kingpin_conformance_tests::latency::Latencies;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use kingpin_etcd::{EtcdConfig, EtcdCoordinator};
use kingpin_sqlite::{SqliteConfig, SqliteCoordinator};
use kingpin_zookeeper::{ZooKeeperConfig, ZooKeeperCoordinator};

/// Iterations per measurement (full run / smoke run).
struct Sizes {
    sequential: usize,
    concurrent_tasks: usize,
    per_task: usize,
    watch: usize,
}

const FULL: Sizes = Sizes {
    sequential: 2000,
    concurrent_tasks: 16,
    per_task: 250,
    watch: 500,
};
const SMOKE: Sizes = Sizes {
    sequential: 20,
    concurrent_tasks: 4,
    per_task: 5,
    watch: 5,
};

type Connect = Box<dyn Fn() -> futures::future::BoxFuture<'static, Arc<dyn Coordinator>>>;

fn report(backend: &str, what: &str, samples: Vec<Duration>, elapsed: Duration) {
    let samples = Latencies::new(samples);
    let ops = samples.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{backend:<10} {what:<28} n={:<6} {ops:>9.0} ops/s   p50={:>9.1} µs   p99={:>9.1} µs   max={:>9.1} µs",
        samples.len(),
        samples.percentile_us(50.0),
        samples.percentile_us(99.0),
        samples.max_us(),
    );
}

async fn cas_increment(c: &dyn Coordinator, path: &NodePath) -> u32 {
    let mut conflicts = 0;
    loop {
        let node = c.get(path).await.expect("get");
        let n: u64 = std::str::from_utf8(&node.data).unwrap().parse().unwrap();
        match c
            .set(
                path,
                (n + 1).to_string().as_bytes(),
                Some(node.stat.version),
            )
            .await
        {
            Ok(_) => return conflicts,
            Err(e) if e.kind() == kingpin_api::ErrorKind::BadVersion => conflicts += 1,
            Err(e) => panic!("cas: {e}"),
        }
    }
}

async fn bench_backend(backend: &str, connect: Connect, sizes: &Sizes) {
    let c = connect().await;

    // Compare-and-set, one client: each sample is one set with a version.
    let path = NodePath::parse("/bench/cas").unwrap();
    c.create(&path, b"0", CreateMode::Persistent).await.unwrap();
    let mut version = 0;
    let mut samples = Vec::with_capacity(sizes.sequential);
    let start = Instant::now();
    for i in 0..sizes.sequential {
        let t = Instant::now();
        version = c
            .set(&path, i.to_string().as_bytes(), Some(version))
            .await
            .unwrap()
            .version;
        samples.push(t.elapsed());
    }
    report(backend, "cas set, 1 client", samples, start.elapsed());

    // Compare-and-set increments (get + set) from many sessions, each on its
    // own node: throughput without conflicts.
    let mut tasks = Vec::new();
    let start = Instant::now();
    for t in 0..sizes.concurrent_tasks {
        let session = connect().await;
        let path = NodePath::parse(&format!("/bench/counter-{t}")).unwrap();
        session
            .create(&path, b"0", CreateMode::Persistent)
            .await
            .unwrap();
        let n = sizes.per_task;
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                cas_increment(&*session, &path).await;
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    report(
        backend,
        &format!("cas get+set, {} sessions", sizes.concurrent_tasks),
        samples,
        start.elapsed(),
    );

    // Get latency.
    let mut samples = Vec::with_capacity(sizes.sequential);
    let start = Instant::now();
    for _ in 0..sizes.sequential {
        let t = Instant::now();
        c.get(&path).await.unwrap();
        samples.push(t.elapsed());
    }
    report(backend, "get", samples, start.elapsed());

    // Watch notification: from issuing a set until another session's watch
    // yields Changed.
    let watcher = connect().await;
    let watched = NodePath::parse("/bench/watched").unwrap();
    c.create(&watched, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let mut stream = watcher.watch(&watched, WatchKind::Data).await.unwrap();
    let mut samples = Vec::with_capacity(sizes.watch);
    let start = Instant::now();
    for i in 0..sizes.watch {
        let t = Instant::now();
        c.set(&watched, i.to_string().as_bytes(), None)
            .await
            .unwrap();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("watch event within 10 s")
                .expect("stream open");
            if event == WatchEvent::Changed {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    report(
        backend,
        "set -> watcher sees Changed",
        samples,
        start.elapsed(),
    );
}

/// Another OS process writes its clock into a node; this one watches and
/// measures from that timestamp to the moment the watch yields `Changed`.
async fn sqlite_cross_process(db: &std::path::Path, count: usize) {
    let watcher = SqliteCoordinator::connect(SqliteConfig::new(db))
        .await
        .unwrap();
    let path = NodePath::parse("/bench/cross-process").unwrap();
    watcher
        .create(&path, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let mut stream = watcher.watch(&path, WatchKind::Data).await.unwrap();
    let mut peer = tokio::process::Command::new(env!("CARGO_BIN_EXE_kingpin-sqlite-peer"))
        .args([
            db.to_str().unwrap(),
            "stamp",
            "/bench/cross-process",
            &count.to_string(),
            "15",
        ])
        .spawn()
        .expect("start the writer process");
    // Writes are spaced wider than the poll interval, so each is seen on
    // its own; one that is not (coalesced) simply yields no sample.
    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    let mut last = Vec::new();
    let mut writer_done = false;
    loop {
        let quiet = if writer_done {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(10)
        };
        let event = tokio::select! {
            event = tokio::time::timeout(quiet, stream.next()) => match event {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(_) if writer_done => break,
                Err(_) => panic!("no watch event for 10 s while the writer runs"),
            },
            status = peer.wait(), if !writer_done => {
                assert!(status.unwrap().success(), "the writer process failed");
                writer_done = true;
                continue;
            }
        };
        let seen = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        if event != WatchEvent::Changed {
            continue;
        }
        let data = watcher.get(&path).await.unwrap().data;
        if data == last || data == b"0" {
            continue;
        }
        let written: u128 = std::str::from_utf8(&data).unwrap().parse().unwrap();
        samples.push(Duration::from_nanos(seen.saturating_sub(written) as u64));
        last = data;
    }
    report(
        "sqlite",
        "cross-process set -> Changed",
        samples,
        start.elapsed(),
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { &FULL } else { &SMOKE };
    let mut servers = Vec::new();
    let zk = bench_endpoint(ServerKind::ZooKeeper, &mut servers).await;
    let etcd = bench_endpoint(ServerKind::Etcd, &mut servers).await;
    println!(
        "coordinator benchmark ({} run; ZooKeeper {zk}, etcd {etcd})",
        if full { "full" } else { "smoke" }
    );

    let memory = MemoryServer::new();
    bench_backend(
        "memory",
        Box::new(move || {
            let server = memory.clone();
            Box::pin(async move { Arc::new(server.connect()) as Arc<dyn Coordinator> })
        }),
        sizes,
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("kingpin.db");
    let sqlite_db = db.clone();
    bench_backend(
        "sqlite",
        Box::new(move || {
            let config = SqliteConfig::new(&sqlite_db);
            Box::pin(async move {
                Arc::new(SqliteCoordinator::connect(config).await.unwrap()) as Arc<dyn Coordinator>
            })
        }),
        sizes,
    )
    .await;
    sqlite_cross_process(&db, sizes.watch).await;

    let chroot = unique_namespace();
    bench_backend(
        "zookeeper",
        Box::new(move || {
            let config = ZooKeeperConfig::new([zk.clone()])
                .with_chroot(&chroot)
                .unwrap();
            Box::pin(async move {
                Arc::new(ZooKeeperCoordinator::connect(config).await.unwrap())
                    as Arc<dyn Coordinator>
            })
        }),
        sizes,
    )
    .await;

    let prefix = unique_namespace();
    bench_backend(
        "etcd",
        Box::new(move || {
            let config = EtcdConfig::new([etcd.clone()])
                .with_prefix(&prefix)
                .unwrap();
            Box::pin(async move {
                Arc::new(EtcdCoordinator::connect(config).await.unwrap()) as Arc<dyn Coordinator>
            })
        }),
        sizes,
    )
    .await;
}

//! Config store benchmark: `update` throughput, sequential and from 8
//! concurrent writers (on one config, and on one config each), and `read`
//! latency, on ZooKeeper + S3 (aws-sdk-s3), SQLite + local files, and the
//! in-memory reference pair as the floor.
//!
//! `cargo bench -p kingpin-conformance-tests --bench config` uses the
//! servers named by `KINGPIN_TEST_ZK` and `KINGPIN_TEST_S3` (with its keys)
//! or starts its own. Under `cargo test` it runs a few iterations only.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::{
    BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator, MemoryBlobStore, MemoryServer,
};
use kingpin_conformance_tests::endpoints::{bench_endpoint, bench_s3};
use kingpin_conformance_tests::latency::Latencies;
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_name_component, unique_namespace, unique_suffix};

type Connect = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Coordinator>> + Send>>>;

struct Sizes {
    sequential: usize,
    writers: usize,
    per_writer: usize,
    reads: usize,
}

const FULL: Sizes = Sizes {
    sequential: 500,
    writers: 8,
    per_writer: 100,
    reads: 500,
};
const SMOKE: Sizes = Sizes {
    sequential: 5,
    writers: 8,
    per_writer: 2,
    reads: 5,
};

fn report(backend: &str, what: &str, samples: Vec<Duration>, elapsed: Duration) {
    let samples = Latencies::new(samples);
    println!(
        "{backend:<12} {what:<34} n={:<5} {:>8.0} ops/s   p50={:>9.1} µs   p99={:>9.1} µs   max={:>9.1} µs",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        samples.percentile_us(50.0),
        samples.percentile_us(99.0),
        samples.max_us(),
    );
}

fn who() -> ChangeInfo {
    ChangeInfo::new("bench", "increment")
}

/// One read-modify-write of a counter config: what every managed structure
/// does per change.
async fn increment(store: &ConfigStore, name: &ConfigName) {
    store
        .update(name, &who(), |current| {
            let n: u64 = match current {
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                None => 0,
            };
            Ok(Some(Bytes::from((n + 1).to_string())))
        })
        .await
        .expect("update");
}

async fn counter(store: &ConfigStore, name: &ConfigName) -> u64 {
    let config = store.read(name).await.expect("read").expect("exists");
    std::str::from_utf8(&config.content)
        .expect("utf-8")
        .parse()
        .expect("a number")
}

/// `writers` concurrent writers, each on its own session, doing
/// `per_writer` updates of `names[writer % names.len()]`.
async fn concurrent(
    connect: &Connect,
    blobs: &Arc<dyn BlobStore>,
    names: &[ConfigName],
    sizes: &Sizes,
) -> (Vec<Duration>, Duration) {
    let mut stores = Vec::new();
    for _ in 0..sizes.writers {
        stores.push(ConfigStore::new(connect().await, blobs.clone()));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (writer, store) in stores.into_iter().enumerate() {
        let name = names[writer % names.len()].clone();
        let per_writer = sizes.per_writer;
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_writer);
            for _ in 0..per_writer {
                let t = Instant::now();
                increment(&store, &name).await;
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("writer"));
    }
    (samples, start.elapsed())
}

async fn bench_pair(label: &str, connect: Connect, blobs: Arc<dyn BlobStore>, sizes: &Sizes) {
    let run = unique_name_component();
    let name = |what: &str| ConfigName::parse(&format!("config.bench.r{run}.{what}")).unwrap();

    let store = ConfigStore::new(connect().await, blobs.clone());
    let sequential = name("sequential");
    let mut samples = Vec::with_capacity(sizes.sequential);
    let start = Instant::now();
    for _ in 0..sizes.sequential {
        let t = Instant::now();
        increment(&store, &sequential).await;
        samples.push(t.elapsed());
    }
    report(label, "update, 1 writer", samples, start.elapsed());

    let shared = name("shared");
    let (samples, elapsed) =
        concurrent(&connect, &blobs, std::slice::from_ref(&shared), sizes).await;
    report(
        label,
        &format!("update, {} writers, 1 config", sizes.writers),
        samples,
        elapsed,
    );
    assert_eq!(
        counter(&store, &shared).await,
        (sizes.writers * sizes.per_writer) as u64,
        "no update lost"
    );

    let own: Vec<ConfigName> = (0..sizes.writers)
        .map(|w| name(&format!("own{w}")))
        .collect();
    let (samples, elapsed) = concurrent(&connect, &blobs, &own, sizes).await;
    report(
        label,
        &format!("update, {} writers, own configs", sizes.writers),
        samples,
        elapsed,
    );

    // A fresh store: nothing cached from the writes above.
    let reader = ConfigStore::new(connect().await, blobs.clone());
    let mut samples = Vec::with_capacity(sizes.reads);
    let start = Instant::now();
    for _ in 0..sizes.reads {
        let t = Instant::now();
        reader
            .read(&sequential)
            .await
            .expect("read")
            .expect("exists");
        samples.push(t.elapsed());
    }
    report(
        label,
        "read (record + verified blob)",
        samples,
        start.elapsed(),
    );

    let mut samples = Vec::with_capacity(sizes.reads);
    let start = Instant::now();
    for _ in 0..sizes.reads {
        let t = Instant::now();
        reader
            .record(&sequential)
            .await
            .expect("record")
            .expect("exists");
        samples.push(t.elapsed());
    }
    report(label, "record only (coordinator)", samples, start.elapsed());
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { &FULL } else { &SMOKE };
    let mut servers = Vec::new();
    let zk = bench_endpoint(ServerKind::ZooKeeper, &mut servers).await;
    let (s3, credentials) = bench_s3(&mut servers).await;
    println!(
        "config benchmark ({} run; ZooKeeper {zk}, S3 {s3})",
        if full { "full" } else { "smoke" }
    );

    let memory = MemoryServer::new();
    bench_pair(
        "memory",
        Box::new(move || {
            let server = memory.clone();
            Box::pin(async move { Arc::new(server.connect()) as Arc<dyn Coordinator> })
        }),
        Arc::new(MemoryBlobStore::new()),
        sizes,
    )
    .await;

    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("kingpin.db").display());
    let files = kingpin::open_blob_store(&format!("file://{}/blobs", dir.path().display()))
        .await
        .expect("local blob store");
    bench_pair(
        "sqlite+file",
        Box::new(move || {
            let url = db.clone();
            Box::pin(async move { kingpin::open_coordinator(&url).await.expect("sqlite") })
        }),
        files,
        sizes,
    )
    .await;

    let zk_url = format!("zk://{zk}{}", unique_namespace());
    let sdk = aws_sdk_store(&s3, &credentials, "kingpin-bench", &unique_suffix()).await;
    bench_pair(
        "zk+s3",
        Box::new(move || {
            let url = zk_url.clone();
            Box::pin(async move { kingpin::open_coordinator(&url).await.expect("zookeeper") })
        }),
        Arc::new(sdk),
        sizes,
    )
    .await;
}

//! Blob store benchmark: put and get of 1 KiB and 1 MiB objects on every
//! backend: the in-memory reference, object_store's memory and local file
//! system, and an S3-compatible server through aws-sdk-s3 and through
//! object_store.
//!
//! `cargo bench -p kingpin-conformance-tests --bench blob` uses the S3 server
//! named by `KINGPIN_TEST_S3` (with its keys), or starts its own s3s-fs.
//! Under `cargo test` it runs a few iterations only, as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::{BlobKey, BlobStore, MemoryBlobStore};
use kingpin_conformance_tests::endpoints::bench_s3;
use kingpin_conformance_tests::latency::Latencies;
use kingpin_conformance_tests::s3::{aws_sdk_store, object_store_s3};
use kingpin_conformance_tests::unique_suffix;
use kingpin_object_store::ObjectStoreBlobStore;

fn report(backend: &str, what: &str, size: usize, samples: Vec<Duration>, elapsed: Duration) {
    let samples = Latencies::new(samples);
    let ops = samples.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{backend:<18} {what:<10} n={:<5} {ops:>8.0} ops/s {:>8.1} MiB/s   p50={:>9.1} µs   p99={:>9.1} µs",
        samples.len(),
        ops * size as f64 / (1024.0 * 1024.0),
        samples.percentile_us(50.0),
        samples.percentile_us(99.0),
    );
}

async fn bench_store(backend: &str, store: &dyn BlobStore, size: usize, count: usize) {
    let data = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let run = unique_suffix();
    let keys: Vec<BlobKey> = (0..count)
        .map(|i| BlobKey::parse(&format!("bench/{run}/{size}/{i:06}")).unwrap())
        .collect();
    let label = if size >= 1024 * 1024 { "1MiB" } else { "1KiB" };

    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    for key in &keys {
        let t = Instant::now();
        store.put_if_absent(key, data.clone()).await.expect("put");
        samples.push(t.elapsed());
    }
    report(
        backend,
        &format!("put {label}"),
        size,
        samples,
        start.elapsed(),
    );

    let mut samples = Vec::with_capacity(count);
    let start = Instant::now();
    for key in &keys {
        let t = Instant::now();
        let got = store.get(key).await.expect("get");
        assert_eq!(got.len(), size);
        samples.push(t.elapsed());
    }
    report(
        backend,
        &format!("get {label}"),
        size,
        samples,
        start.elapsed(),
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (small, large) = if full { (1000, 100) } else { (5, 2) };
    let mut servers = Vec::new();
    let (endpoint, credentials) = bench_s3(&mut servers).await;
    println!(
        "blob benchmark ({} run; S3 server {endpoint})",
        if full { "full" } else { "smoke" }
    );

    let dir = tempfile::tempdir().unwrap();
    let sdk = aws_sdk_store(&endpoint, &credentials, "kingpin-bench", "sdk").await;
    let os_s3 = object_store_s3(&endpoint, &credentials, "kingpin-bench", 4);
    let stores: Vec<(&str, Arc<dyn BlobStore>)> = vec![
        ("memory (reference)", Arc::new(MemoryBlobStore::new())),
        (
            "object_store mem",
            Arc::new(ObjectStoreBlobStore::from_url("memory://").await.unwrap()),
        ),
        (
            "local fs",
            Arc::new(
                ObjectStoreBlobStore::from_url(&format!("file://{}/blobs", dir.path().display()))
                    .await
                    .unwrap(),
            ),
        ),
        ("s3 (aws-sdk)", Arc::new(sdk)),
        (
            "s3 (object_store)",
            Arc::new(ObjectStoreBlobStore::new(os_s3, "os", "s3 via object_store").unwrap()),
        ),
    ];
    for (name, store) in &stores {
        bench_store(name, store.as_ref(), 1024, small).await;
        bench_store(name, store.as_ref(), 1024 * 1024, large).await;
    }
}

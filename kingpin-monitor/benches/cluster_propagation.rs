//! Propagation on a 3-node ZooKeeper ensemble beside a single node, in the
//! same run and measured the same way as the `propagation` benchmark: N
//! monitors (and N bare watchers, the floor) on one config, K writes, and
//! for each write and each instance the time from the start of the write
//! (before its blob is put) until the monitor's file was renamed to the new
//! version (or the watcher was notified); p50, p99, max over N×K.
//!
//! Both servers run in the cluster harness (each member a ZooKeeper in its
//! own network namespace, same settings), so the only difference is the
//! ensemble. On the ensemble the monitors connect to one follower and the
//! writer to the other, as a fleet's hosts and an operator's CLI would: a
//! write goes follower → leader → quorum → the monitors' follower. The
//! blob store is the S3 server of the `propagation` benchmark.
//!
//! `cargo bench -p kingpin-monitor --bench cluster_propagation` (N=200,
//! K=20; `KINGPIN_BENCH_N`, `KINGPIN_BENCH_K` override). Needs root, `ip`,
//! `nft` and ZooKeeper, as the cluster tests do. Under `cargo test` it runs
//! N=3, K=3 as a smoke test.

mod propagation_rounds;

use std::sync::Arc;

use kingpin_api::{BlobStore, ConfigStore};
use kingpin_conformance_tests::cluster::{Cluster, ClusterKind};
use kingpin_conformance_tests::endpoints::bench_s3;
use kingpin_conformance_tests::latency::{env_number, Latencies};
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use propagation_rounds::{bare_watchers, monitors, report, Setup};

/// A setup whose monitors and watchers connect to `monitor_url` and whose
/// writer connects to `writer_url`.
async fn setup(
    monitor_url: String,
    writer_url: &str,
    blobstore_url: &str,
    blobs: &Arc<dyn BlobStore>,
) -> Setup {
    let coordinator = kingpin::open_coordinator(writer_url)
        .await
        .expect("the writer's session");
    Setup {
        zk_url: monitor_url,
        blobstore_url: blobstore_url.to_owned(),
        blobs: blobs.clone(),
        store: ConfigStore::new(coordinator.clone(), blobs.clone()),
        coordinator,
    }
}

/// The floor and the monitors on `setup`.
async fn measure(label: &str, setup: &Setup, n: usize, k: usize) -> (Latencies, Latencies) {
    let floor = bare_watchers(setup, n, k).await;
    let monitored = monitors(setup, n, k).await;
    println!("\n{label}, from the start of each write:");
    (
        report("  bare watchers: notified", floor.from_start),
        report("  monitors: file renamed", monitored.from_start),
    )
}

fn ratio(what: &str, ensemble: &Latencies, single: &Latencies) {
    println!(
        "3-node / single node, {what}: p50 {:.2}x, p99 {:.2}x, max {:.2}x",
        ensemble.percentile_us(50.0) / single.percentile_us(50.0).max(1.0),
        ensemble.percentile_us(99.0) / single.percentile_us(99.0).max(1.0),
        ensemble.max_us() / single.max_us().max(1.0),
    );
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, k) = if full {
        (
            env_number("KINGPIN_BENCH_N", 200),
            env_number("KINGPIN_BENCH_K", 20),
        )
    } else {
        (3, 3)
    };
    let test = "cluster_propagation";
    let Some(single) = Cluster::for_test(ClusterKind::ZooKeeper, 1, test).await else {
        return;
    };
    let Some(ensemble) = Cluster::for_test(ClusterKind::ZooKeeper, 3, test).await else {
        return;
    };
    let mut servers = Vec::new();
    let (s3, credentials) = bench_s3(&mut servers).await;
    std::env::set_var("AWS_ACCESS_KEY_ID", &credentials.access_key);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &credentials.secret_key);
    let prefix = unique_suffix();
    let blobs: Arc<dyn BlobStore> =
        Arc::new(aws_sdk_store(&s3, &credentials, "kingpin-bench", &prefix).await);
    let blobstore_url = format!(
        "s3://kingpin-bench/{prefix}?endpoint={s3}&region=us-east-1&path_style=true&conditional_put=if-none-match"
    );

    let leader = ensemble.leader().await.expect("the ensemble has a leader");
    let followers: Vec<usize> = (0..ensemble.size()).filter(|&i| i != leader).collect();
    let (monitor_member, writer_member) = (followers[0], followers[1]);
    println!(
        "propagation on ZooKeeper, 3-node ensemble beside a single node ({} run; N={n}, K={k}; S3 {s3}); \
         ensemble: monitors on follower m{}, writer on follower m{}, m{} leads",
        if full { "full" } else { "smoke" },
        monitor_member + 1,
        writer_member + 1,
        leader + 1
    );

    let namespace = unique_namespace();
    let single_url = single.url(&namespace, "");
    let single_setup = setup(single_url.clone(), &single_url, &blobstore_url, &blobs).await;
    let (single_floor, single_monitors) = measure("single node", &single_setup, n, k).await;
    let namespace = unique_namespace();
    let ensemble_setup = setup(
        ensemble.url_for(&[monitor_member], &namespace, ""),
        &ensemble.url_for(&[writer_member], &namespace, ""),
        &blobstore_url,
        &blobs,
    )
    .await;
    let (ensemble_floor, ensemble_monitors) =
        measure("3-node ensemble", &ensemble_setup, n, k).await;
    println!();
    ratio("bare watchers", &ensemble_floor, &single_floor);
    ratio("monitors", &ensemble_monitors, &single_monitors);
}

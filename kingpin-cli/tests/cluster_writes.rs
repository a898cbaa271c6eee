//! `kingpin list add` as a new user runs it against a 3-node ensemble: 8
//! writer processes at a time, 50 adds each, while the leader is killed
//! with `kill -9`. Every add must succeed (a write whose reply the
//! election lost is resolved by its write id, not failed), exactly once.
//! Prints the election, the adds' latencies and any failure's exit code
//! and stderr.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kingpin_conformance_tests::cluster::{Cluster, ClusterKind};
use kingpin_conformance_tests::unique_namespace;

const WRITERS: usize = 8;
const ADDS: usize = 50;
const LIST: &str = "config.manageddata.cluster.items";
/// How many times the list is read back at the end.
const READS: usize = 5;

/// One `kingpin` invocation's outcome.
#[derive(Debug)]
struct Run {
    item: String,
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

/// `kingpin` with the cluster's coordinator and a local blob directory,
/// and nothing from the environment that could pick other backends.
fn kingpin(home: &Path, coordinator: &str, blobs: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
    command
        .arg("--coordinator")
        .arg(coordinator)
        .arg("--blobstore")
        .arg(blobs)
        .args(args)
        .current_dir(home)
        .env("KINGPIN_HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .env("USER", "cluster-writer")
        .env_remove("KINGPIN_CONFIG")
        .env_remove("KINGPIN_AUTHOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn cli_adds_ride_through_a_leader_kill(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "cli_adds_through_leader_kill").await else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let blob_dir = tempfile::tempdir().unwrap();
    let coordinator = cluster.url(&unique_namespace(), "");
    let blobs = format!("file://{}", blob_dir.path().display());

    let (done_tx, done_rx) = mpsc::channel::<Run>();
    let started = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (home, coordinator, blobs) =
            (home.path().to_owned(), coordinator.clone(), blobs.clone());
        let done = done_tx.clone();
        writers.push(std::thread::spawn(move || {
            for i in 0..ADDS {
                let item = format!("w{writer}-{i}");
                let began = Instant::now();
                let output = kingpin(&home, &coordinator, &blobs, &["list", "add", LIST, &item])
                    .output()
                    .expect("kingpin runs");
                let run = Run {
                    item,
                    code: output.status.code(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    took: began.elapsed(),
                };
                if done.send(run).is_err() {
                    return;
                }
            }
        }));
    }
    drop(done_tx);

    // Kill the leader a third of the way in.
    let total = WRITERS * ADDS;
    let mut runs = Vec::new();
    while runs.len() < total / 3 {
        runs.push(done_rx.recv().expect("the writers run"));
    }
    let at = runs.len();
    let leader = cluster.leader().await.unwrap();
    let killed = Instant::now();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    let election = killed.elapsed();
    let rest = tokio::task::spawn_blocking(move || done_rx.into_iter().collect::<Vec<Run>>())
        .await
        .unwrap();
    runs.extend(rest);
    for writer in writers {
        writer.join().expect("a writer thread");
    }
    let writing = started.elapsed();

    // Read back a few times, with the killed member still down: each
    // process may pick it first, and must find another.
    let mut reads = Vec::new();
    for _ in 0..READS {
        let output = kingpin(home.path(), &coordinator, &blobs, &["list", "get", LIST])
            .output()
            .unwrap();
        assert!(output.status.success(), "list get: {output:?}");
        reads.push(String::from_utf8(output.stdout).unwrap());
    }
    assert!(reads.windows(2).all(|w| w[0] == w[1]), "the reads agree");
    let items: Vec<String> = reads[0].lines().map(str::to_owned).collect();
    let distinct: HashSet<&String> = items.iter().collect();
    let failures: Vec<&Run> = runs.iter().filter(|r| r.code != Some(0)).collect();
    let missing: Vec<&String> = runs
        .iter()
        .filter(|r| r.code == Some(0) && !distinct.contains(&r.item))
        .map(|r| &r.item)
        .collect();
    let mut took: Vec<Duration> = runs.iter().map(|r| r.took).collect();
    took.sort();
    println!(
        "{kind:?}: {WRITERS} writer processes x {ADDS} `kingpin list add`, leader m{} killed \
         after {at} adds, m{} led {election:?} later; {} exit 0, {} failed in {writing:?}; \
         {} items ({} distinct) in {READS} reads with m{} down, {} acknowledged missing; add p50 {:?} p99 {:?} max {:?}",
        leader + 1,
        next + 1,
        runs.len() - failures.len(),
        failures.len(),
        items.len(),
        distinct.len(),
        leader + 1,
        missing.len(),
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took[took.len() - 1],
    );
    for failure in &failures {
        println!(
            "  {} exited {:?} after {:?}: {}",
            failure.item,
            failure.code,
            failure.took,
            failure.stderr.trim()
        );
    }
    assert_eq!(runs.len(), total);
    assert!(failures.is_empty(), "every add exits 0");
    assert_eq!(items.len(), total, "no add lost, none applied twice");
    assert_eq!(distinct.len(), total);
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_cli_adds_ride_through_a_leader_kill() {
    cli_adds_ride_through_a_leader_kill(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_cli_adds_ride_through_a_leader_kill() {
    cli_adds_ride_through_a_leader_kill(ClusterKind::Etcd).await;
}

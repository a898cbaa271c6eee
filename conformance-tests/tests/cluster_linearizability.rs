//! Linearizability of one config on real 3-node clusters: four clients
//! read, compare-and-set and `update` it while the leader is killed with
//! `kill -9` and one client is cut off from every member; the recorded
//! history is checked against a register with a version (see
//! `kingpin_conformance_tests::linearizability`). A deliberately broken
//! writer (read, then write whatever is there, no compare-and-set on what
//! it read) is caught by the same check, so the check can fail.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore};
use kingpin_conformance_tests::cluster::{ClientRuntime, Cluster, ClusterKind};
use kingpin_conformance_tests::config_history::{
    ConfigOperation, HistoryCounts, Input, Output, Recording, VersionedConfig,
};
use kingpin_conformance_tests::linearizability::{check, CheckError};
use kingpin_conformance_tests::unique_namespace;

const CLIENTS: usize = 4;
const INITIAL: &str = "init;";

fn config() -> ConfigName {
    ConfigName::parse("config.lin.register").unwrap()
}

/// Opens a store on `url` (with a file blob store at `blobs`) that rides
/// through elections and short partitions, as the CLI does: operations of
/// unknown outcome stay rare, which keeps the check's search small.
async fn store(url: &str, blobs: &str) -> ConfigStore {
    ConfigStore::new(
        kingpin::open_coordinator(url).await.unwrap(),
        kingpin::open_blob_store(blobs).await.unwrap(),
    )
    .with_resolve_timeout(Duration::from_secs(5))
    .with_unavailable_retry(Duration::from_secs(10))
}

/// A config at version 1 and `CLIENTS` clients on it, the last one in
/// `cut_off`'s namespace.
async fn record(url: &str, blobs: &str, cut_off: &ClientRuntime, broken: bool) -> Recording {
    store(url, blobs)
        .await
        .write(
            &config(),
            Bytes::from_static(INITIAL.as_bytes()),
            &ChangeInfo::new("test", "linearizability"),
        )
        .await
        .unwrap();
    let mut recording = Recording::new(config());
    for client in 0..CLIENTS {
        let task = if client + 1 == CLIENTS {
            // Opened in the namespace: every connection comes from there.
            let (url, blobs) = (url.to_owned(), blobs.to_owned());
            let store = cut_off.run(async move { store(&url, &blobs).await }).await;
            cut_off.spawn(recording.client(client, store, broken))
        } else {
            tokio::spawn(recording.client(client, store(url, blobs).await, broken))
        };
        recording.add(task);
    }
    recording
}

/// Stops the clients, reads the config once more on `url`: the history
/// with that read last, and how many calls the clients made.
async fn finish(recording: Recording, url: &str, blobs: &str) -> (Vec<ConfigOperation>, usize) {
    let reader = store(url, blobs)
        .await
        .with_unavailable_retry(Duration::from_secs(30));
    let finished = recording.finish(&reader).await.unwrap();
    let calls = finished.clients.iter().map(|c| c.calls).sum();
    (finished.history, calls)
}

async fn linearizable_under_faults(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "linearizable_under_faults").await else {
        return;
    };
    let options = match kind {
        ClusterKind::ZooKeeper => "session_timeout=4s&connection_timeout=1s",
        ClusterKind::Etcd => "lease_ttl=4s",
    };
    let url = cluster.url(&unique_namespace(), options);
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", blobs_dir.path().display());
    let cut_off = ClientRuntime::new(&cluster.add_client("lin").unwrap()).unwrap();
    let recording = record(&url, &blobs, &cut_off, false).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster.leader().await.unwrap();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(leader).await.unwrap();
    for m in 0..3 {
        cluster
            .network()
            .block(cut_off.node().addr, cluster.member_addr(m))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.heal().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (history, calls) = finish(recording, &url, &blobs).await;

    let summary = HistoryCounts::of(&history);
    println!("{kind:?}: checking {summary}");
    let checked = Instant::now();
    let result = check(&VersionedConfig::starting_at(1, INITIAL), &history);
    println!(
        "{kind:?}: {CLIENTS} clients, {calls} calls; leader m{} killed (m{} led), restarted; client {} cut off 2 s; {}; \
         checked in {:?}: {}",
        leader + 1,
        next + 1,
        CLIENTS - 1,
        summary,
        checked.elapsed(),
        result.as_ref().map_or_else(ToString::to_string, |()| "linearizable".into()),
    );
    assert!(history.len() > 50, "enough operations to mean something");
    assert_eq!(result, Ok(()), "zero violations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_config_is_linearizable_under_faults() {
    linearizable_under_faults(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_config_is_linearizable_under_faults() {
    linearizable_under_faults(ClusterKind::Etcd).await;
}

/// The broken writer loses updates, and the check says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_modify_write_without_compare_and_set_is_caught() {
    let Some(cluster) = Cluster::for_test(ClusterKind::Etcd, 3, "broken_writer_caught").await
    else {
        return;
    };
    let url = cluster.url(&unique_namespace(), "");
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", blobs_dir.path().display());
    let other = ClientRuntime::new(&cluster.add_client("broken").unwrap()).unwrap();
    let recording = record(&url, &blobs, &other, true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (history, _) = finish(recording, &url, &blobs).await;
    let appended = history
        .iter()
        .filter(|o| matches!(o.input, Input::Append { .. }))
        .count();
    // The last read shows what survived.
    let survived = match history.last().and_then(|o| o.completed.as_ref()) {
        Some((_, Output::Read { content, .. })) => content.matches(';').count() - 1,
        _ => unreachable!("finish ends with a read"),
    };
    let result = check(&VersionedConfig::starting_at(1, INITIAL), &history);
    println!(
        "broken writer: {appended} appends acknowledged, {survived} in the final content; {}",
        result
            .as_ref()
            .map_or_else(ToString::to_string, |()| "linearizable".into()),
    );
    assert!(
        matches!(result, Err(CheckError::NotLinearizable(_))),
        "the checker catches the lost updates"
    );
}

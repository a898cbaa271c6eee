//! The product's guarantees on real 3-node clusters (ZooKeeper and etcd)
//! while the cluster loses its leader or a client is partitioned: no lost
//! or doubled update, no torn file, last good files during the outage,
//! ephemeral membership through a leader change and gone after expiry, no
//! stale write accepted from behind a paused member. Each case prints
//! what it observed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::discovery::{Member, ServerSet};
use kingpin_api::managed::ManagedList;
use kingpin_api::metaconfig::MetaConfig;
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore, ErrorKind};
use kingpin_client::Endpoint;
use kingpin_conformance_tests::cluster::{ClientRuntime, Cluster, ClusterKind, Place};
use kingpin_conformance_tests::config_history::read_settled;
use kingpin_conformance_tests::torn_files::TornFileReader;
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

/// Settings for a monitor of `dependency` in `place`, writing under `out`.
fn monitor_settings(place: &Place, dependency: &str, out: &Path) -> MonitorSettings {
    let mut settings =
        MonitorSettings::new(&place.coordinator_url, &place.blob_url, name(dependency));
    settings.config_dir = out.join("config");
    settings.serverset_dir = out.join("serverset");
    settings.admin_addr = None;
    settings.host = Some("cluster-test-host".into());
    settings
}

async fn wait_for(state: &MonitorState, what: &str, condition: impl FnMut(&MonitorState) -> bool) {
    tokio::time::timeout(WAIT, state.wait_for(condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", state.health()));
}

/// 8 clients add 200 items each to one managed list while the leader is
/// killed with `kill -9`: every add succeeds, exactly once, and two
/// monitors' files converge to the final version, never torn.
async fn leader_killed_during_concurrent_adds(kind: ClusterKind, writers: usize, adds: usize) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "leader_killed_during_adds").await else {
        return;
    };
    let place = Place::new(&cluster, SESSION_TIMEOUT).unwrap();
    let list_name = name("config.manageddata.fault.items");
    let first = place.store().await.unwrap();
    first
        .write(&list_name, Bytes::from_static(b"[]"), &who())
        .await
        .unwrap();
    place
        .subscribe(
            &name("fault.dep"),
            vec![MetaConfig::config(list_name.clone()).unwrap()],
        )
        .await
        .unwrap();
    let outs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut monitors = Vec::new();
    let mut readers = Vec::new();
    for out in &outs {
        let monitor = Monitor::start(monitor_settings(&place, "fault.dep", out.path()))
            .await
            .unwrap();
        wait_for(monitor.state(), "the first sync", |s| {
            s.entry(&list_name).is_some_and(|e| e.version == Some(1))
        })
        .await;
        readers.push(TornFileReader::start(
            out.path().join("config").join(list_name.as_str()),
        ));
        monitors.push(monitor);
    }

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = place.store().await.unwrap();
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
        assert_eq!(
            file, final_config.content,
            "the monitor's file is the final version"
        );
    }
    let mut reads = 0;
    let mut torn = 0;
    for reader in readers {
        let seen = reader.finish().await;
        reads += seen.reads;
        torn += seen.torn;
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

fn list_of(content: &[u8]) -> Vec<String> {
    serde_json::from_slice(content).unwrap()
}

/// A client node (its own namespace and address) that the network can cut
/// off, with a runtime whose sockets all come from it.
fn client_node(cluster: &Cluster, label: &str) -> ClientRuntime {
    let node = cluster.add_client(label).unwrap();
    ClientRuntime::new(&node).unwrap()
}

/// A client partitioned with one member, away from the majority: its
/// writes fail with a retryable error (never a false success), its reads
/// fail too (no stale answer), its monitor keeps the last good file and
/// reports degraded; after the heal it converges and nothing is lost.
async fn minority_partitioned_client(kind: ClusterKind) {
    let Some(cluster) = Cluster::for_test(kind, 3, "minority_partitioned_client").await else {
        return;
    };
    let place = Arc::new(Place::new(&cluster, SESSION_TIMEOUT).unwrap());
    let list_name = name("config.manageddata.fault.part");
    let host = ManagedList::<String>::new(place.store().await.unwrap(), list_name.clone());
    host.add("before".into()).await.unwrap();
    place
        .subscribe(
            &name("part.dep"),
            vec![MetaConfig::config(list_name.clone()).unwrap()],
        )
        .await
        .unwrap();
    let client = client_node(&cluster, "client");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("config").join(list_name.as_str());
    let monitor = {
        let settings = monitor_settings(&place, "part.dep", out.path());
        client.run(Monitor::start(settings)).await.unwrap()
    };
    wait_for(monitor.state(), "the first sync", |s| {
        s.entry(&list_name).is_some_and(|e| e.version == Some(1))
    })
    .await;
    let last_good = std::fs::read(&file).unwrap();
    // The client's writer: no riding through outages here, a short
    // resolve timeout, so that each failure is seen as it is.
    let client_store = {
        let place = place.clone();
        client
            .run(async move {
                ConfigStore::new(
                    place.coordinator().await.unwrap(),
                    kingpin::open_blob_store(&place.blob_url).await.unwrap(),
                )
                .with_resolve_timeout(Duration::from_secs(3))
            })
            .await
    };
    let client_list = ManagedList::<String>::new(client_store.clone(), list_name.clone());

    // The client keeps one member; that member loses the other two.
    let leader = cluster.leader().await.unwrap();
    let minority = (0..3).find(|&i| i != leader).unwrap();
    let majority: Vec<usize> = (0..3).filter(|&i| i != minority).collect();
    let net = cluster.network();
    for &m in &majority {
        net.block(client.node().addr, cluster.member_addr(m))
            .unwrap();
        net.block(cluster.member_addr(minority), cluster.member_addr(m))
            .unwrap();
    }
    let cut = Instant::now();

    let mut write_errors = Vec::new();
    for k in 0..3 {
        let list = client_list.clone();
        let item = format!("during-{k}");
        let started = Instant::now();
        let result = client.run(async move { list.add(item).await }).await;
        match result {
            Ok(_) => panic!("{kind:?}: a write from the minority succeeded (attempt {k})"),
            Err(e) => {
                assert!(e.is_retryable(), "a minority write fails retryably: {e}");
                write_errors.push((e.kind(), started.elapsed()));
            }
        }
    }
    let read = {
        let store = client_store.clone();
        let name = list_name.clone();
        client.run(async move { store.read(&name).await }).await
    };
    let read_error = match read {
        Ok(config) => panic!(
            "{kind:?}: a read from the minority answered (version {:?}) instead of failing",
            config.map(|c| c.record.version)
        ),
        Err(e) => {
            assert!(e.is_retryable(), "a minority read fails retryably: {e}");
            e.kind()
        }
    };
    // The majority goes on, for its clients. (An etcd client that also
    // names the cut-off member keeps sending some requests there, which
    // time out: a majority client names the majority.)
    let majority_list = ManagedList::<String>::new(
        place
            .store_at(&place.url_for(&cluster, &majority))
            .await
            .unwrap(),
        list_name.clone(),
    );
    for k in 0..5 {
        majority_list.add(format!("majority-{k}")).await.unwrap();
    }
    wait_for(monitor.state(), "the monitor to report degraded", |s| {
        !s.health().ready
    })
    .await;
    let degraded = monitor.state().health().reasons;
    assert_eq!(
        std::fs::read(&file).unwrap(),
        last_good,
        "the partitioned monitor keeps the last good file"
    );
    let partitioned_for = cut.elapsed();

    cluster.heal().unwrap();
    let healed = Instant::now();
    // Read back through the majority, waiting out retryable refusals: a
    // session opened on the healed member while it catches up may be
    // refused, and an etcd member back from a partition forces an election
    // ("leader changed"), which is not what this case is about.
    let majority_store = place
        .store_at(&place.url_for(&cluster, &majority))
        .await
        .unwrap();
    let current = read_settled(&majority_store, &list_name)
        .await
        .unwrap()
        .unwrap();
    let expected = list_of(&current.content);
    let final_version = current.record.version;
    wait_for(monitor.state(), "the monitor to converge", |s| {
        s.health().ready
            && s.entry(&list_name)
                .is_some_and(|e| e.version == Some(final_version))
    })
    .await;
    let converged = healed.elapsed();
    assert_eq!(list_of(&std::fs::read(&file).unwrap()), expected);
    let after = {
        let list = ManagedList::<String>::new(
            client_store.with_unavailable_retry(Duration::from_secs(30)),
            list_name.clone(),
        );
        client
            .run(async move {
                list.add("after".into()).await?;
                list.get().await
            })
            .await
            .unwrap()
    };
    let mut want = expected.clone();
    want.push("after".into());
    assert_eq!(after, want, "nothing lost, no failed write applied");
    println!(
        "{kind:?}: client with m{} cut from m{} and m{} for {partitioned_for:?}: writes failed with {write_errors:?}, \
         read failed with {read_error}; 5 majority writes went on; monitor degraded ({degraded:?}) keeping the last good file; \
         after the heal it converged in {converged:?} to version {final_version}, and the client's next write landed",
        minority + 1,
        majority[0] + 1,
        majority[1] + 1,
    );
    drop(monitor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_minority_partitioned_client() {
    minority_partitioned_client(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_minority_partitioned_client() {
    minority_partitioned_client(ClusterKind::Etcd).await;
}

fn serverset_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Ephemeral membership survives a leader change on the same session, and
/// goes when the session expires in a long partition (the membership joins
/// again, on a new session, after the heal).
async fn membership_through_leader_change_and_expiry(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "membership_faults").await else {
        return;
    };
    let place = Arc::new(Place::new(&cluster, SESSION_TIMEOUT).unwrap());
    place
        .subscribe(
            &name("members.dep"),
            vec![MetaConfig::serverset("fault", "prod").unwrap()],
        )
        .await
        .unwrap();
    let host_coordinator = place.coordinator().await.unwrap();
    let steady = ServerSet::new(host_coordinator.clone(), "fault", "prod")
        .unwrap()
        .join(Member::new(Endpoint::new("10.0.0.1", 1)))
        .await
        .unwrap();
    let client = client_node(&cluster, "member");
    let (client_coordinator, mut membership) = {
        let place = place.clone();
        client
            .run(async move {
                let coordinator = place.coordinator().await.unwrap();
                let serverset = ServerSet::new(coordinator.clone(), "fault", "prod").unwrap();
                let membership = serverset
                    .join(Member::new(Endpoint::new("10.0.0.2", 2)))
                    .await
                    .unwrap();
                (coordinator, membership)
            })
            .await
    };
    let out = tempfile::tempdir().unwrap();
    let monitor = Monitor::start(monitor_settings(&place, "members.dep", out.path()))
        .await
        .unwrap();
    let serverset_name = name("discovery.fault.prod");
    let file = out.path().join("serverset").join(serverset_name.as_str());
    wait_for(monitor.state(), "both members in the file", |s| {
        s.entry(&serverset_name)
            .is_some_and(|e| e.members == Some(2))
    })
    .await;
    let session = client_coordinator.session_id();
    let path = membership.path().unwrap();
    let owner = host_coordinator
        .get(&path)
        .await
        .unwrap()
        .stat
        .ephemeral_owner;
    assert_eq!(
        owner, session,
        "the member node belongs to the client's session"
    );

    let leader = cluster.leader().await.unwrap();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    // Through the election: the same node, the same session.
    let node = host_coordinator.get(&path).await.unwrap();
    assert_eq!(
        node.stat.ephemeral_owner, session,
        "same session after the leader change"
    );
    assert_eq!(membership.path(), Some(path.clone()));
    assert_eq!(client_coordinator.session_id(), session);
    assert_eq!(serverset_lines(&file), ["10.0.0.1:1", "10.0.0.2:2"]);
    cluster.restart(leader).await.unwrap();

    // A partition longer than the session: the member goes.
    let cut = Instant::now();
    for m in 0..3 {
        cluster
            .network()
            .block(client.node().addr, cluster.member_addr(m))
            .unwrap();
    }
    wait_for(
        monitor.state(),
        "the expired member to leave the file",
        |s| {
            s.entry(&serverset_name)
                .is_some_and(|e| e.members == Some(1))
        },
    )
    .await;
    let gone_after = cut.elapsed();
    assert!(
        matches!(host_coordinator.get(&path).await, Err(e) if e.kind() == ErrorKind::NotFound),
        "the expired session's node is gone"
    );
    assert_eq!(serverset_lines(&file), ["10.0.0.1:1"]);
    cluster.heal().unwrap();
    let healed = Instant::now();
    let rejoined = tokio::time::timeout(WAIT, membership.changed_from(&path))
        .await
        .expect("the membership joins again after the heal");
    let new_owner = host_coordinator
        .get(&rejoined)
        .await
        .unwrap()
        .stat
        .ephemeral_owner;
    assert_ne!(new_owner, session, "a new session after the expiry");
    wait_for(monitor.state(), "the member back in the file", |s| {
        s.entry(&serverset_name)
            .is_some_and(|e| e.members == Some(2))
    })
    .await;
    println!(
        "{kind:?}: member on session {session:?} kept its node through the leader change (m{} -> m{}); \
         cut off, it left the serverset file after {gone_after:?} (session timeout {SESSION_TIMEOUT:?}); \
         after the heal it joined again on session {new_owner:?} in {:?}",
        leader + 1,
        next + 1,
        healed.elapsed()
    );
    drop(steady);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_membership_through_leader_change_and_expiry() {
    membership_through_leader_change_and_expiry(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_membership_through_leader_change_and_expiry() {
    membership_through_leader_change_and_expiry(ClusterKind::Etcd).await;
}

/// A writer talks only to the leader, which freezes (a GC pause) for
/// longer than the session timeout with the writer's compare-and-set in
/// its socket. The majority elects another leader and moves on; when the
/// old leader wakes up, the stale write is not accepted.
async fn paused_leader_accepts_no_stale_write(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "paused_member").await else {
        return;
    };
    let place = Arc::new(Place::new(&cluster, SESSION_TIMEOUT).unwrap());
    let config = name("config.app.fenced");
    let majority_store = place.store().await.unwrap();
    majority_store
        .write(&config, Bytes::from_static(b"v1"), &who())
        .await
        .unwrap();
    let leader = cluster.leader().await.unwrap();
    let stale_url = cluster.url_for(&[leader], &place.namespace, &place.options);
    let stale_store = ConfigStore::new(
        kingpin::open_coordinator(&stale_url).await.unwrap(),
        kingpin::open_blob_store(&place.blob_url).await.unwrap(),
    )
    .with_resolve_timeout(Duration::from_secs(20));
    let seen = stale_store.read(&config).await.unwrap().unwrap();

    cluster.pause(leader).unwrap();
    let paused = Instant::now();
    let stale_write = {
        let store = stale_store.clone();
        let config = config.clone();
        tokio::spawn(async move {
            store
                .write_if(
                    &config,
                    Bytes::from_static(b"stale"),
                    &who(),
                    Some((&seen.record, seen.node_version)),
                )
                .await
        })
    };
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    for v in 2..=3 {
        majority_store
            .write(&config, Bytes::from(format!("v{v}")), &who())
            .await
            .unwrap();
    }
    // Past the session timeout, then wake the old leader.
    tokio::time::sleep(SESSION_TIMEOUT * 2).await;
    cluster.resume(leader).unwrap();
    let pause = paused.elapsed();
    let outcome = tokio::time::timeout(WAIT, stale_write)
        .await
        .expect("the stale write ends")
        .unwrap();
    let current = majority_store.read(&config).await.unwrap().unwrap();
    let history = majority_store.history(&config).await.unwrap();
    let mut contents = Vec::new();
    for record in &history {
        contents.push(majority_store.content(&config, record).await.unwrap());
    }
    println!(
        "{kind:?}: leader m{} paused {pause:?} with a compare-and-set in its socket; m{} led; \
         the stale write ended with {:?}; current version {} ({:?}); history {:?}",
        leader + 1,
        next + 1,
        outcome
            .as_ref()
            .map(|r| r.version)
            .map_err(|e| e.to_string()),
        current.record.version,
        current.content,
        contents
    );
    assert!(outcome.is_err(), "the stale write is refused");
    assert_eq!(current.content, Bytes::from_static(b"v3"));
    assert!(
        !contents.iter().any(|c| c == &Bytes::from_static(b"stale")),
        "the stale content never became a version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_paused_leader_accepts_no_stale_write() {
    paused_leader_accepts_no_stale_write(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paused_leader_accepts_no_stale_write() {
    paused_leader_accepts_no_stale_write(ClusterKind::Etcd).await;
}

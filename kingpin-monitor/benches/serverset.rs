//! Serverset benchmark: M members join one serverset, each on a session of
//! its own (as M service processes would), while a monitor follows it.
//! Reported: the time from the first join until the monitor's file lists
//! all M, then, L times, the time from one member's `leave` returning until
//! the file no longer lists it (p50, p99, max), with the children-watch
//! notification of a bare watcher as the floor.
//!
//! `cargo bench -p kingpin-monitor --bench serverset` (M=5000, L=50;
//! `KINGPIN_BENCH_MEMBERS`, `KINGPIN_BENCH_LEAVES` override) uses the
//! ZooKeeper named by `KINGPIN_TEST_ZK` or starts its own. Under
//! `cargo test` it runs M=20, L=3 as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kingpin_api::discovery::{Member, Membership, ServerSet};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{ConfigName, Coordinator};
use kingpin_client::Endpoint;
use kingpin_conformance_tests::endpoints::bench_endpoint;
use kingpin_conformance_tests::latency::{env_number, Latencies};
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_name_component, unique_namespace};
use kingpin_monitor::{Monitor, MonitorSettings};

/// Sessions opened and members joined at once.
const CONCURRENCY: usize = 100;

fn report(what: &str, samples: Vec<Duration>) {
    println!("{what:<40} {}", Latencies::new(samples).summary_ms());
}

fn member_endpoint(i: usize) -> Endpoint {
    Endpoint::new(
        format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
        8080,
    )
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (members, leaves) = if full {
        (
            env_number("KINGPIN_BENCH_MEMBERS", 5000),
            env_number("KINGPIN_BENCH_LEAVES", 50),
        )
    } else {
        (20, 3)
    };
    let mut servers = Vec::new();
    let zk = bench_endpoint(ServerKind::ZooKeeper, &mut servers).await;
    // Long sessions: M sessions' heartbeats are not what is measured.
    let zk_url = format!("zk://{zk}{}?session_timeout=30s", unique_namespace());
    let admin = kingpin::open_coordinator(&zk_url).await.unwrap();
    let service = format!("bench{}", unique_name_component());
    let metaconfig = MetaConfig::serverset(&service, "prod").unwrap();
    let dep = ConfigName::parse(&format!("{service}.dep")).unwrap();
    let manager = MetaConfigManager::new(admin.clone());
    manager.create(&metaconfig).await.unwrap();
    manager.create_dependency(&dep).await.unwrap();
    manager
        .add_to_dependency(&dep, &metaconfig.name)
        .await
        .unwrap();
    println!(
        "serverset benchmark ({} run; {members} members on {members} sessions, {leaves} leaves; ZooKeeper {zk})",
        if full { "full" } else { "smoke" }
    );

    let out = tempfile::tempdir().unwrap();
    let blobs = out.path().join("blobs");
    let mut settings =
        MonitorSettings::new(&zk_url, format!("file://{}", blobs.display()), dep.clone());
    settings.config_dir = out.path().join("config");
    settings.serverset_dir = out.path().join("serverset");
    settings.admin_addr = None;
    let monitor = Monitor::start(settings).await.unwrap();
    let state = monitor.state().clone();
    let name = metaconfig.name.clone();
    let listed = move |n: usize| {
        let state = state.clone();
        let name = name.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(300),
                state.wait_for(|s| s.entry(&name).and_then(|e| e.members) == Some(n)),
            )
            .await
            .unwrap_or_else(|_| panic!("the monitor never listed {n} members"));
        }
    };
    listed(0).await;

    let started = Instant::now();
    let joined: Vec<(Arc<dyn Coordinator>, Membership)> = futures::stream::iter(0..members)
        .map(|i| {
            let zk_url = zk_url.clone();
            let service = service.clone();
            async move {
                let session = kingpin::open_coordinator(&zk_url).await.unwrap();
                let serverset = ServerSet::new(session.clone(), &service, "prod").unwrap();
                let membership = serverset
                    .join(Member::new(member_endpoint(i)))
                    .await
                    .unwrap();
                (session, membership)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let all_joined = started.elapsed();
    listed(members).await;
    let all_listed = started.elapsed();
    let file = out
        .path()
        .join("serverset")
        .join(metaconfig.file_name.as_str());
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert_eq!(lines, members, "the file lists every member");
    println!(
        "{members} joins (sessions opened {CONCURRENCY} at a time): all acknowledged in {:.2} s, all in the monitor's file {:.2} s after the first join",
        all_joined.as_secs_f64(),
        all_listed.as_secs_f64()
    );

    // One member leaves at a time; a bare watcher's notification is the
    // floor.
    let reader = ServerSet::new(admin.clone(), &service, "prod").unwrap();
    let mut watch = reader.watch().await.unwrap();
    let mut reacted = Vec::with_capacity(leaves);
    let mut reacted_from_start = Vec::with_capacity(leaves);
    let mut notified = Vec::with_capacity(leaves);
    let mut remaining = joined;
    for _ in 0..leaves.min(members) {
        let (session, membership) = remaining.pop().unwrap();
        let before = remaining.len() + 1;
        let left = Instant::now();
        membership.leave().await.unwrap();
        let acked = Instant::now();
        let notice = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .expect("the watcher is notified");
        assert!(notice.is_some());
        notified.push(Instant::now().saturating_duration_since(left));
        listed(before - 1).await;
        let rewritten = Instant::now();
        reacted.push(rewritten.saturating_duration_since(acked));
        reacted_from_start.push(rewritten.saturating_duration_since(left));
        let _ = session.close().await;
    }
    report("leave acknowledged → file rewritten", reacted);
    report("leave started → file rewritten", reacted_from_start);
    report("leave started → bare watcher notified", notified);
    drop(monitor);
    for (session, membership) in remaining {
        drop(membership);
        let _ = session.close().await;
    }
}

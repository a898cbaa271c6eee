//! Recipe benchmark, on memory, SQLite, ZooKeeper and etcd:
//!
//! - lock handoff: 16 sessions take one lock in turn; the time from a
//!   holder's release to the next holder's acquisition (p50/p99/max), and
//!   acquisitions per second. Each holder takes its next turn at once, so
//!   the queue stays full; every contender stops at its first turn after
//!   the count is reached, so a run makes up to 15 acquisitions more;
//! - the floor under a handoff, in the same run: one session deletes a node
//!   and another, watching it, sees `Deleted` (a release and the
//!   notification of the next in line, without the look at the queue that
//!   follows);
//! - election failover: the leader runs in another process (this binary,
//!   re-run as a peer) and is killed with SIGKILL; the time until a
//!   candidate here leads, against the leader's session timeout.
//!
//! Targets on ZooKeeper: handoff p50 < 5 ms; failover < session timeout +
//! 1 s. `cargo bench -p kingpin-recipes --bench recipes` uses the servers
//! named by `KINGPIN_TEST_ZK` / `KINGPIN_TEST_ETCD`, or starts its own on
//! loopback. Under `cargo test` it runs a few iterations only, as a smoke
//! test.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kingpin_api::{Coordinator, CreateMode, MemoryServer, NodePath, WatchEvent, WatchKind};
use kingpin_conformance_tests::endpoints::bench_endpoint;
use kingpin_conformance_tests::latency::{env_number, Latencies};
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use kingpin_recipes::{Election, Lock};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Set (to a coordinator URL) when this binary runs as the leader to kill.
const PEER_URL_ENV: &str = "KINGPIN_RECIPES_BENCH_PEER_URL";
/// The election the peer campaigns in.
const PEER_PATH_ENV: &str = "KINGPIN_RECIPES_BENCH_PEER_PATH";

/// The killed leader's session timeout (its URL asks for it).
const PEER_SESSION_TIMEOUT: Duration = Duration::from_secs(2);

const CONTENDERS: usize = 16;

/// Iterations per measurement (full run / smoke run).
struct Sizes {
    handoffs: usize,
    floors: usize,
    failovers: usize,
}

const FULL: Sizes = Sizes {
    handoffs: 2000,
    floors: 500,
    failovers: 5,
};
const SMOKE: Sizes = Sizes {
    handoffs: 40,
    floors: 10,
    failovers: 1,
};

/// Opens a session: a fresh one per call.
type Connect = Box<dyn Fn() -> futures::future::BoxFuture<'static, Arc<dyn Coordinator>>>;

fn by_url(url: String) -> Connect {
    Box::new(move || {
        let url = url.clone();
        Box::pin(async move {
            kingpin::open_coordinator(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
        })
    })
}

/// 16 contenders take the lock `handoffs` times in all.
async fn lock_handoff(backend: &str, connect: &Connect, handoffs: usize) -> Latencies {
    #[derive(Default)]
    struct Shared {
        released: Option<Instant>,
        samples: Vec<Duration>,
        acquisitions: usize,
    }
    let path = NodePath::parse(&format!("{}/lock", unique_namespace())).unwrap();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut sessions = Vec::new();
    for _ in 0..CONTENDERS {
        sessions.push(connect().await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for session in &sessions {
        let (lock, shared) = (Lock::new(session.clone(), path.clone()), shared.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let guard = lock.lock().await.expect("the lock");
                let done = {
                    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(released) = s.released.take() {
                        s.samples.push(released.elapsed());
                    }
                    s.acquisitions += 1;
                    let done = s.acquisitions >= handoffs;
                    s.released = Some(Instant::now());
                    done
                };
                guard.release().await.expect("released");
                if done {
                    return;
                }
            }
        }));
    }
    // The first to see the count reached stops; the rest stop as they get
    // their next turn.
    for task in tasks {
        task.await.expect("a contender");
    }
    let elapsed = start.elapsed();
    let (samples, acquisitions) = {
        let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
        (Latencies::new(shared.samples.clone()), shared.acquisitions)
    };
    println!(
        "{backend:<10} lock handoff, {CONTENDERS} contenders   {}   {:>7.0} acquisitions/s",
        samples.summary_ms(),
        acquisitions as f64 / elapsed.as_secs_f64()
    );
    for session in sessions {
        let _ = session.close().await;
    }
    samples
}

/// The floor under a handoff: from a delete in one session until another
/// session's watch on the node yields `Deleted`.
async fn delete_notify_floor(backend: &str, connect: &Connect, rounds: usize) -> Latencies {
    let (writer, watcher) = (connect().await, connect().await);
    let namespace = unique_namespace();
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let path = NodePath::parse(&format!("{namespace}/floor-{round}")).unwrap();
        writer
            .create(&path, b"", CreateMode::Ephemeral)
            .await
            .expect("create");
        let mut events = watcher.watch(&path, WatchKind::Data).await.expect("watch");
        let deleted = Instant::now();
        writer.delete(&path, None).await.expect("delete");
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("a watch event within 10 s")
                .expect("the watch stream is open");
            if event == WatchEvent::Deleted {
                break;
            }
        }
        samples.push(deleted.elapsed());
    }
    let samples = Latencies::new(samples);
    println!(
        "{backend:<10} floor: delete -> watcher sees it  {}",
        samples.summary_ms()
    );
    for session in [writer, watcher] {
        let _ = session.close().await;
    }
    samples
}

/// A leader in another process is killed `failovers` times; how long until
/// a candidate here leads.
async fn election_failover(
    backend: &str,
    connect: &Connect,
    peer_url: &str,
    failovers: usize,
) -> Latencies {
    let mut samples = Vec::new();
    for _ in 0..failovers {
        let path = format!("{}/election", unique_namespace());
        let mut peer = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
            .env(PEER_URL_ENV, peer_url)
            .env(PEER_PATH_ENV, &path)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the peer starts");
        let mut lines = BufReader::new(peer.stdout.take().expect("piped")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        assert!(
            matches!(ready, Ok(Ok(Some(ref line))) if line == "held"),
            "the peer did not lead: {ready:?}"
        );
        let session = connect().await;
        let election = Election::new(session.clone(), NodePath::parse(&path).unwrap());
        let campaign = {
            let election = election.clone();
            tokio::spawn(async move { election.campaign().await })
        };
        while election.candidates().await.expect("candidates").len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peer.start_kill().expect("SIGKILL");
        let killed = Instant::now();
        let _ = peer.wait().await;
        let leadership = campaign.await.expect("campaign").expect("elected");
        samples.push(killed.elapsed());
        leadership.resign().await.expect("resigned");
        let _ = session.close().await;
    }
    let samples = Latencies::new(samples);
    println!(
        "{backend:<10} election failover after SIGKILL   {}   (leader's session timeout {PEER_SESSION_TIMEOUT:?})",
        samples.summary_ms()
    );
    samples
}

/// The leader to kill: campaigns, says `held`, and waits to die.
async fn run_peer(url: &str, path: &str) {
    let coordinator = kingpin::open_coordinator(url)
        .await
        .expect("the peer's session");
    let leadership = Election::new(coordinator, NodePath::parse(path).expect("a path"))
        .campaign()
        .await
        .expect("elected");
    println!("held");
    std::future::pending::<()>().await;
    drop(leadership);
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

#[tokio::main]
async fn main() {
    if let (Ok(url), Ok(path)) = (std::env::var(PEER_URL_ENV), std::env::var(PEER_PATH_ENV)) {
        return run_peer(&url, &path).await;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full { &FULL } else { &SMOKE };
    let handoffs = env_number("KINGPIN_BENCH_HANDOFFS", sizes.handoffs);
    let failovers = env_number("KINGPIN_BENCH_FAILOVERS", sizes.failovers);
    let floors = env_number("KINGPIN_BENCH_FLOORS", sizes.floors);
    let mut servers = Vec::new();
    let zk = bench_endpoint(ServerKind::ZooKeeper, &mut servers).await;
    let etcd = bench_endpoint(ServerKind::Etcd, &mut servers).await;
    println!(
        "recipe benchmark ({} run; ZooKeeper {zk}, etcd {etcd})",
        if full { "full" } else { "smoke" }
    );

    let memory = MemoryServer::new();
    let memory: Connect = Box::new(move || {
        let server = memory.clone();
        Box::pin(async move { Arc::new(server.connect()) as Arc<dyn Coordinator> })
    });
    delete_notify_floor("memory", &memory, floors).await;
    lock_handoff("memory", &memory, handoffs).await;
    println!("memory     election failover: n/a (one process)");

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!(
        "sqlite://{}?session_timeout={}s",
        dir.path().join("kingpin.db").display(),
        PEER_SESSION_TIMEOUT.as_secs()
    );
    let sqlite_connect = by_url(sqlite.clone());
    delete_notify_floor("sqlite", &sqlite_connect, floors).await;
    lock_handoff("sqlite", &sqlite_connect, handoffs).await;
    election_failover("sqlite", &sqlite_connect, &sqlite, failovers).await;

    let chroot = unique_namespace();
    let zk_connect = by_url(format!("zk://{zk}{chroot}"));
    let zk_peer = format!(
        "zk://{zk}{chroot}?session_timeout={}s",
        PEER_SESSION_TIMEOUT.as_secs()
    );
    let floor = delete_notify_floor("zookeeper", &zk_connect, floors).await;
    let handoff = lock_handoff("zookeeper", &zk_connect, handoffs).await;
    let failover = election_failover("zookeeper", &zk_connect, &zk_peer, failovers).await;
    let p50_ms = handoff.percentile_us(50.0) / 1000.0;
    let failover_bound = PEER_SESSION_TIMEOUT + Duration::from_secs(1);
    println!(
        "zookeeper  targets: handoff p50 {p50_ms:.1} ms < 5 ms: {} (floor p50 {:.1} ms); failover max {:.0} ms < {} ms: {}",
        verdict(p50_ms < 5.0),
        floor.percentile_us(50.0) / 1000.0,
        failover.max_us() / 1000.0,
        failover_bound.as_millis(),
        verdict(failover.max_us() / 1e6 < failover_bound.as_secs_f64()),
    );

    let prefix = unique_namespace();
    let etcd_connect = by_url(format!("etcd://{etcd}{prefix}"));
    let etcd_peer = format!(
        "etcd://{etcd}{prefix}?lease_ttl={}s",
        PEER_SESSION_TIMEOUT.as_secs()
    );
    delete_notify_floor("etcd", &etcd_connect, floors).await;
    lock_handoff("etcd", &etcd_connect, handoffs).await;
    election_failover("etcd", &etcd_connect, &etcd_peer, failovers).await;
}

//! Sessions of separate OS processes share a namespace: this test binary
//! runs itself again as a peer process holding an ephemeral node, kills it
//! with SIGKILL, and a session of this process sees the node reaped once
//! the peer's session runs out, and gets told by its watch.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{Coordinator, CreateMode, NodePath, WatchEvent, WatchKind};
use kingpin_conformance_tests::harness::run_case;

/// Tells the peer test which server and schema to use.
const PEER_ENV: &str = "KINGPIN_POSTGRES_PEER";
const MEMBER: &str = "/members/peer";

/// The peer: holds an ephemeral node until killed. Runs only when the
/// test below starts it (ignored otherwise).
#[test]
#[ignore = "the peer process of a_killed_processes_ephemeral_node_is_reaped"]
fn peer_holds_an_ephemeral_node() {
    let Ok(target) = std::env::var(PEER_ENV) else {
        return;
    };
    let (endpoint, schema) = target.split_once(' ').expect("endpoint and schema");
    run_case(async {
        let session = support::open(endpoint, schema).await;
        let path = NodePath::parse(MEMBER).unwrap();
        session
            .create(&path, b"peer", CreateMode::Ephemeral)
            .await
            .unwrap();
        println!("ready {}", session.session_id().unwrap());
        // Until SIGKILL: the session's heartbeat keeps the node.
        std::future::pending::<()>().await;
    });
}

/// The peer dies with the test, whatever happens.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_processes_ephemeral_node_is_reaped() {
    let Some(endpoint) = support::shared_server("a_killed_processes_ephemeral_node_is_reaped")
    else {
        return;
    };
    let schema = support::fresh_schema();
    let mut peer = Peer(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "peer_holds_an_ephemeral_node", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(PEER_ENV, format!("{endpoint} {schema}"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = peer.0.stdout.take().unwrap();
    let peer_session: u64 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // The test harness may print on the same line first.
        .find_map(|line| line.rsplit_once("ready ")?.1.trim().parse().ok())
        .expect("the peer process reports its session");

    run_case(async {
        let observer = support::open(&endpoint, &schema).await;
        let path = NodePath::parse(MEMBER).unwrap();
        let node = observer.get(&path).await.expect("the peer's node");
        assert_eq!(node.stat.ephemeral_owner, Some(peer_session));
        assert_ne!(observer.session_id(), Some(peer_session));
        let mut watch = observer.watch(&path, WatchKind::Data).await.unwrap();

        peer.0.kill().unwrap();
        peer.0.wait().unwrap();
        // The peer's session runs out after its timeout; the observer's
        // next heartbeat (a third of its own) reaps it.
        let bound = support::SESSION_TIMEOUT * 2 + Duration::from_secs(5);
        let event = tokio::time::timeout(bound, watch.next())
            .await
            .expect("the reaped node is reported in time");
        assert_eq!(event, Some(WatchEvent::Deleted));
        assert!(observer.exists(&path).await.unwrap().is_none());
        observer.close().await.unwrap();
    });
}

//! An etcd cluster member: its flags, naming every peer, and the probes
//! (`/health` is true only with a leader; `/metrics` says who leads).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use super::netns::{Network, Node};
use super::probe;

/// The command that runs member `index` in its namespace. Heartbeats every
/// 100 ms and elections after 1 s, etcd's defaults: a lost leader is
/// replaced within a couple of seconds.
pub(super) fn command(
    network: &Network,
    node: &Node,
    dir: &Path,
    index: usize,
    peers: &[Ipv4Addr],
    token: &str,
) -> Command {
    let client = format!("http://{}:2379", node.addr);
    let peer = format!("http://{}:2380", node.addr);
    let initial: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, addr)| format!("m{}=http://{addr}:2380", i + 1))
        .collect();
    let mut command = network.command_in(node, "etcd");
    command
        .arg(format!("--name=m{}", index + 1))
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster={}", initial.join(",")))
        .arg("--initial-cluster-state=new")
        .arg(format!("--initial-cluster-token={token}"))
        .arg("--heartbeat-interval=100")
        .arg("--election-timeout=1000")
        .arg("--log-level=warn");
    command
}

/// Whether the member is healthy (it has a leader and answers).
pub(super) async fn serves(addr: SocketAddr) -> bool {
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    probe(addr, request.as_bytes())
        .await
        .is_some_and(|reply| reply.contains("\"health\":\"true\""))
}

/// Whether the member is the leader.
pub(super) async fn is_leader(addr: SocketAddr) -> bool {
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    probe(addr, request.as_bytes())
        .await
        .is_some_and(|reply| reply.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
}

//! A ZooKeeper ensemble member: `zoo.cfg` naming every peer, `myid`, and
//! the probes (`srvr` says whether it serves and whether it leads).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use super::netns::{Network, Node};
use super::probe;

/// Debian's `zookeeper` package, unless `KINGPIN_ZOOKEEPER_CLASSPATH` says
/// otherwise (as for the single servers).
const CLASSPATH: &str = "/etc/zookeeper/conf_example:/usr/share/java/zookeeper.jar";

fn classpath() -> String {
    std::env::var("KINGPIN_ZOOKEEPER_CLASSPATH").unwrap_or_else(|_| CLASSPATH.to_owned())
}

pub(super) fn available() -> bool {
    super::netns::which("java").is_some()
        && classpath()
            .split(':')
            .any(|p| p.ends_with(".jar") && Path::new(p).exists())
}

/// The command that runs member `index` (0-based; `myid` is index + 1) in
/// its namespace. A tick of 500 ms: a follower gives up on a silent leader
/// after syncLimit ticks (2 s), sessions may be as short as 2 ticks.
pub(super) fn command(
    network: &Network,
    node: &Node,
    dir: &Path,
    index: usize,
    peers: &[Ipv4Addr],
) -> Result<Command, String> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    std::fs::write(data.join("myid"), format!("{}\n", index + 1)).map_err(|e| e.to_string())?;
    let mut config = format!(
        "tickTime=500\ninitLimit=20\nsyncLimit=4\ndataDir={}\nclientPort=2181\n\
         clientPortAddress={}\nadmin.enableServer=false\nminSessionTimeout=1000\n\
         maxSessionTimeout=60000\nmaxClientCnxns=0\n4lw.commands.whitelist=ruok,srvr,mntr\n",
        data.display(),
        node.addr
    );
    for (i, peer) in peers.iter().enumerate() {
        config.push_str(&format!("server.{}={peer}:2888:3888\n", i + 1));
    }
    let file = dir.join("zoo.cfg");
    std::fs::write(&file, config).map_err(|e| e.to_string())?;
    let mut command = network.command_in(node, "java");
    command
        .arg("-Xmx192m")
        .arg("-XX:+UseSerialGC")
        .arg("-Dzookeeper.admin.enableServer=false")
        .arg("-cp")
        .arg(classpath())
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(file);
    Ok(command)
}

async fn mode(addr: SocketAddr) -> Option<String> {
    let reply = probe(addr, b"srvr").await?;
    reply
        .lines()
        .find_map(|line| line.strip_prefix("Mode: "))
        .map(|mode| mode.trim().to_owned())
}

/// Whether the member is in a quorum and serves clients (a cluster of
/// one runs standalone).
pub(super) async fn serves(addr: SocketAddr) -> bool {
    matches!(
        mode(addr).await.as_deref(),
        Some("leader" | "follower" | "standalone")
    )
}

/// Whether the member is the leader (a standalone server leads itself).
pub(super) async fn is_leader(addr: SocketAddr) -> bool {
    matches!(mode(addr).await.as_deref(), Some("leader" | "standalone"))
}

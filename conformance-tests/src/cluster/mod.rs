//! Real 3-node clusters on this machine: a ZooKeeper ensemble or an etcd
//! cluster, each member a process with its own data directory in its own
//! network namespace (see [`netns`]), which a test can kill, stop, restart,
//! pause, and cut off from its peers or its clients.
//!
//! ```no_run
//! # async fn f() -> Result<(), String> {
//! use kingpin_conformance_tests::cluster::{Cluster, ClusterKind};
//! let mut cluster = Cluster::start(ClusterKind::ZooKeeper, 3).await?;
//! let leader = cluster.leader().await?;
//! cluster.kill(leader)?;                 // kill -9
//! cluster.wait_for_new_leader(leader).await?;
//! cluster.restart(leader).await?;
//! # Ok(()) }
//! ```

pub mod client_runtime;
mod etcd;
pub mod fault_rotation;
pub mod netns;
pub mod place;
mod zookeeper;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use client_runtime::ClientRuntime;
pub use fault_rotation::{Episode, Fault};
pub use netns::{skip_netns, NetError, Network, Node, SKIP_NETNS_ENV};
pub use place::Place;

use crate::harness::skip;

/// How long a cluster may take to start, or to elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Which coordinator the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// An Apache ZooKeeper ensemble.
    ZooKeeper,
    /// An etcd cluster.
    Etcd,
}

impl ClusterKind {
    /// The coordinator URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            ClusterKind::ZooKeeper => "zk",
            ClusterKind::Etcd => "etcd",
        }
    }

    /// The port clients connect to on every member.
    fn client_port(self) -> u16 {
        match self {
            ClusterKind::ZooKeeper => 2181,
            ClusterKind::Etcd => 2379,
        }
    }
}

/// One member: its namespace, data directory and process.
#[derive(Debug)]
struct Member {
    node: Node,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// A running cluster. Dropping it kills every member, deletes the
/// namespaces and the bridge, and removes the data directories.
#[derive(Debug)]
pub struct Cluster {
    kind: ClusterKind,
    members: Vec<Member>,
    network: Network,
    // Held for its Drop: the members' data directories go last.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Whether this machine has the server binaries for `kind`.
    pub fn available(kind: ClusterKind) -> bool {
        match kind {
            ClusterKind::ZooKeeper => zookeeper::available(),
            ClusterKind::Etcd => netns::which("etcd").is_some(),
        }
    }

    /// For a test: a cluster of `size`, or `None` when the run opted out
    /// ([`SKIP_NETNS_ENV`] where namespaces cannot be made, or
    /// `KINGPIN_TEST_SKIP_EXTERNAL` where the servers are not installed).
    /// Anything else that stops a cluster from starting fails the test.
    pub async fn for_test(kind: ClusterKind, size: usize, test: &str) -> Option<Cluster> {
        if !Self::available(kind) {
            if crate::endpoints::skip_external() {
                skip(&format!("{kind:?} cluster"), test, "servers not installed");
                return None;
            }
            panic!("{test} needs the {kind:?} server binaries (see scripts/test)");
        }
        match Self::start(kind, size).await {
            Ok(cluster) => Some(cluster),
            Err(e) if skip_netns() => {
                skip(
                    &format!("{kind:?} cluster"),
                    test,
                    &format!("{e}; {SKIP_NETNS_ENV}=1"),
                );
                None
            }
            Err(e) => panic!(
                "{test}: cannot start a {kind:?} cluster: {e}. Partition tests need root, \
                 `ip` and `nft`; opt out explicitly with {SKIP_NETNS_ENV}=1"
            ),
        }
    }

    /// Starts `size` members, each in its own namespace, and waits until
    /// every one serves and there is a leader.
    pub async fn start(kind: ClusterKind, size: usize) -> Result<Cluster, String> {
        let network = Network::create()?;
        let base = std::env::var_os("KINGPIN_TEST_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("kingpin-cluster-")
            .tempdir_in(&base)
            .map_err(|e| e.to_string())?;
        let mut members = Vec::new();
        for i in 1..=size {
            let node = network.add_node(&format!("m{i}"))?;
            let member_dir = dir.path().join(format!("m{i}"));
            std::fs::create_dir_all(&member_dir).map_err(|e| e.to_string())?;
            members.push(Member {
                node,
                dir: member_dir,
                child: None,
                paused: false,
            });
        }
        let mut cluster = Cluster {
            kind,
            members,
            network,
            _dir: dir,
        };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// The coordinator.
    pub fn kind(&self) -> ClusterKind {
        self.kind
    }

    /// The network the members (and any client nodes) are on.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Member `i`'s address.
    pub fn member_addr(&self, i: usize) -> Ipv4Addr {
        self.members[i].node.addr
    }

    /// `host:port` of every member's client port.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.size()).map(|i| self.endpoint(i)).collect()
    }

    /// `host:port` of member `i`'s client port.
    pub fn endpoint(&self, i: usize) -> String {
        format!("{}:{}", self.member_addr(i), self.kind.client_port())
    }

    /// A coordinator URL naming every member, under `namespace` (a
    /// chroot or key prefix such as `/test-1`), with `options` appended
    /// (`session_timeout=4s`, ...).
    pub fn url(&self, namespace: &str, options: &str) -> String {
        let mut url = format!(
            "{}://{}{namespace}",
            self.kind.scheme(),
            self.endpoints().join(",")
        );
        if !options.is_empty() {
            url.push('?');
            url.push_str(options);
        }
        url
    }

    /// A coordinator URL naming only the members in `members`: a client
    /// that cannot fail over to the others.
    pub fn url_for(&self, members: &[usize], namespace: &str, options: &str) -> String {
        let hosts: Vec<String> = members.iter().map(|&i| self.endpoint(i)).collect();
        let mut url = format!("{}://{}{namespace}", self.kind.scheme(), hosts.join(","));
        if !options.is_empty() {
            url.push('?');
            url.push_str(options);
        }
        url
    }

    /// Adds a client node to the network: a namespace of its own, for a
    /// [`ClientRuntime`] or a process that the network can cut off.
    pub fn add_client(&self, label: &str) -> Result<Node, NetError> {
        self.network.add_node(label)
    }

    /// Member `i`'s process id while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let member = &self.members[i];
        let peers: Vec<Ipv4Addr> = self.members.iter().map(|m| m.node.addr).collect();
        let mut command = match self.kind {
            ClusterKind::ZooKeeper => {
                zookeeper::command(&self.network, &member.node, &member.dir, i, &peers)?
            }
            ClusterKind::Etcd => etcd::command(
                &self.network,
                &member.node,
                &member.dir,
                i,
                &peers,
                &format!("kingpin-{}", self.network.id()),
            ),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member.dir.join("server.log"))
            .map_err(|e| e.to_string())?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot start member {}: {e}", i + 1))?;
        let member = &mut self.members[i];
        member.child = Some(child);
        member.paused = false;
        Ok(())
    }

    /// `kill -9` member `i` and waits until it is gone.
    pub fn kill(&mut self, i: usize) -> Result<(), String> {
        let member = &mut self.members[i];
        let mut child = member
            .child
            .take()
            .ok_or_else(|| format!("member {} is not running", i + 1))?;
        child.kill().map_err(|e| e.to_string())?;
        child.wait().map_err(|e| e.to_string())?;
        member.paused = false;
        Ok(())
    }

    /// Stops member `i` cleanly (SIGTERM) and waits until it is gone.
    pub fn stop(&mut self, i: usize) -> Result<(), String> {
        let member = &mut self.members[i];
        let mut child = member
            .child
            .take()
            .ok_or_else(|| format!("member {} is not running", i + 1))?;
        if member.paused {
            signal(child.id(), libc::SIGCONT)?;
        }
        signal(child.id(), libc::SIGTERM)?;
        child.wait().map_err(|e| e.to_string())?;
        member.paused = false;
        Ok(())
    }

    /// Starts member `i` again on its data and waits until it serves.
    pub async fn restart(&mut self, i: usize) -> Result<(), String> {
        if self.members[i].child.is_some() {
            return Err(format!("member {} is still running", i + 1));
        }
        self.spawn(i)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.member_serves(i).await {
            self.check_alive(i)?;
            if Instant::now() > deadline {
                return Err(format!(
                    "member {} did not serve again within {READY_TIMEOUT:?}",
                    i + 1
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Freezes member `i` (SIGSTOP), as a long GC pause would: its sockets
    /// stay open, nothing answers.
    pub fn pause(&mut self, i: usize) -> Result<(), String> {
        let pid = self.pid(i).ok_or("not running")?;
        signal(pid, libc::SIGSTOP)?;
        self.members[i].paused = true;
        wait_for_state(pid, true)
    }

    /// Lets a paused member run again (SIGCONT).
    pub fn resume(&mut self, i: usize) -> Result<(), String> {
        let pid = self.pid(i).ok_or("not running")?;
        signal(pid, libc::SIGCONT)?;
        self.members[i].paused = false;
        wait_for_state(pid, false)
    }

    /// Cuts member `i` off from the other members, the host and every
    /// client node.
    pub fn isolate(&self, i: usize) -> Result<(), NetError> {
        self.network.isolate(self.member_addr(i))
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<(), NetError> {
        self.network.heal()
    }

    /// The leader's index, waiting (up to 90 s) until there is exactly one
    /// among the members that answer.
    pub async fn leader(&self) -> Result<usize, String> {
        self.wait_for_leader(|_| true).await
    }

    /// Waits until a member other than `old` leads, and returns it.
    pub async fn wait_for_new_leader(&self, old: usize) -> Result<usize, String> {
        self.wait_for_leader(|i| i != old).await
    }

    async fn wait_for_leader(&self, accept: impl Fn(usize) -> bool) -> Result<usize, String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let mut leaders = Vec::new();
            for i in 0..self.size() {
                if self.members[i].child.is_some()
                    && !self.members[i].paused
                    && self.is_leader(i).await
                {
                    leaders.push(i);
                }
            }
            if let [leader] = leaders[..] {
                if accept(leader) {
                    return Ok(leader);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no single leader within {READY_TIMEOUT:?} (leading: {leaders:?})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn is_leader(&self, i: usize) -> bool {
        let addr = self.client_socket(i);
        match self.kind {
            ClusterKind::ZooKeeper => zookeeper::is_leader(addr).await,
            ClusterKind::Etcd => etcd::is_leader(addr).await,
        }
    }

    /// Whether member `i` serves clients (ZooKeeper: in the quorum; etcd:
    /// healthy, which needs a leader).
    pub async fn member_serves(&self, i: usize) -> bool {
        let addr = self.client_socket(i);
        match self.kind {
            ClusterKind::ZooKeeper => zookeeper::serves(addr).await,
            ClusterKind::Etcd => etcd::serves(addr).await,
        }
    }

    fn client_socket(&self, i: usize) -> SocketAddr {
        (self.member_addr(i), self.kind.client_port()).into()
    }

    /// Waits until every running member serves and one leads.
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for i in 0..self.size() {
            if self.members[i].child.is_none() {
                continue;
            }
            while !self.member_serves(i).await {
                self.check_alive(i)?;
                if Instant::now() > deadline {
                    return Err(format!(
                        "member {} of the {:?} cluster not ready within {READY_TIMEOUT:?}:\n{}",
                        i + 1,
                        self.kind,
                        self.log_tail(i)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.leader().await.map(|_| ())
    }

    fn check_alive(&mut self, i: usize) -> Result<(), String> {
        if let Some(child) = self.members[i].child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.members[i].child = None;
                return Err(format!(
                    "member {} exited with {status}:\n{}",
                    i + 1,
                    self.log_tail(i)
                ));
            }
        }
        Ok(())
    }

    /// The last lines of member `i`'s log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let log =
            std::fs::read_to_string(self.members[i].dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Then `network` drops: namespaces, veths and the bridge go; then
        // `dir`, the data directories.
    }
}

fn signal(pid: u32, signal: libc::c_int) -> Result<(), String> {
    // SAFETY: kill(2) on a child process of ours that has not been waited
    // for, so its pid cannot have been reused.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot signal {pid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Waits until every thread of `pid` is stopped (or none is): a signal
/// reaches a many-threaded process (a JVM) some time after `kill` returns.
fn wait_for_state(pid: u32, stopped: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let states: Vec<bool> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map_err(|e| e.to_string())?
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
            .filter_map(|stat| {
                // The state follows the command name in parentheses.
                let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(state == 'T' || state == 't')
            })
            .collect();
        if !states.is_empty() && states.iter().all(|&s| s == stopped) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("process {pid} did not reach stopped={stopped}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `request` to `addr` and returns everything it answers, or `None`
/// after 2 s without an answer (a partitioned or paused member).
pub(crate) async fn probe(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(request).await.ok()?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.ok()?;
        Some(String::from_utf8_lossy(&reply).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

//! A private network on this machine: one bridge, and one network namespace
//! per node (a cluster member or a client), each with its own address on a
//! veth pair plugged into the bridge. The test process itself stays in the
//! host namespace and reaches every node through the bridge's address.
//!
//! Partitions are real packet loss: each node namespace has an nftables
//! table whose `blocked` set of addresses is dropped on input and output.
//! Blocking `a` from `b` adds `b` to `a`'s set (and `a` to `b`'s): packets
//! vanish, nothing answers with a reset or a refusal, so TCP connections
//! hang and time out exactly as across a broken switch. nftables sets (not
//! `ip link set down`) let a node lose some peers and keep others, which a
//! client partitioned into the minority needs; `tc netem` would need
//! classifiers this kernel may lack, nftables is built into every Debian
//! kernel. Everything lives in the namespaces, so the host's own routes,
//! loopback and firewall are never touched; dropping [`Network`] deletes
//! the namespaces (their veths and rules go with them) and the bridge.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// Why a network could not be set up or changed.
pub type NetError = String;

/// The environment variable that lets partition tests pass where network
/// namespaces cannot be created (each says it skipped). Without it such a
/// machine fails them.
pub const SKIP_NETNS_ENV: &str = "KINGPIN_TEST_SKIP_NETNS";

/// Whether the run opted out of tests that need network namespaces.
pub fn skip_netns() -> bool {
    std::env::var(SKIP_NETNS_ENV).is_ok_and(|v| v == "1" || v == "true")
}

/// One node of a [`Network`]: a namespace with one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The namespace's name (`ip netns`).
    pub namespace: String,
    /// Its address on the bridge.
    pub addr: Ipv4Addr,
    /// A short label for messages (`m1`, `client`).
    pub label: String,
}

/// A bridge and the namespaces plugged into it. See the module docs.
#[derive(Debug)]
pub struct Network {
    id: String,
    subnet: [u8; 3],
    bridge: String,
    nodes: Mutex<Vec<Node>>,
    blocked: Mutex<BTreeSet<(Ipv4Addr, Ipv4Addr)>>,
}

const NAMESPACE_PREFIX: &str = "kingpin-";

impl Network {
    /// Creates a bridge on a free 10.x.y.0/24 subnet, with the host at .254.
    ///
    /// Errors when this machine cannot create namespaces, bridges or veths
    /// (not root, no `ip`, no `nft`): the caller decides whether that fails
    /// the test (it does unless [`SKIP_NETNS_ENV`] is set).
    pub fn create() -> Result<Self, NetError> {
        for tool in ["ip", "nft"] {
            if which(tool).is_none() {
                return Err(format!(
                    "`{tool}` is not installed (Debian: apt-get install iproute2 nftables)"
                ));
            }
        }
        remove_leftovers();
        let mut last_error = String::new();
        for _ in 0..20 {
            let a = 128 + rand::random::<u8>() % 100;
            let b = rand::random::<u8>();
            let id = format!("{a:02x}{b:02x}");
            let bridge = format!("kpb{id}");
            // The bridge's name encodes its subnet: creating it reserves
            // the subnet against every other test on this machine.
            match run("ip", &["link", "add", &bridge, "type", "bridge"]) {
                Ok(_) => {}
                Err(e) => {
                    last_error = e;
                    continue;
                }
            }
            let network = Network {
                id,
                subnet: [10, a, b],
                bridge: bridge.clone(),
                nodes: Mutex::new(Vec::new()),
                blocked: Mutex::new(BTreeSet::new()),
            };
            let host = network.host_addr().to_string();
            run(
                "ip",
                &["addr", "add", &format!("{host}/24"), "dev", &bridge],
            )?;
            run("ip", &["link", "set", &bridge, "up"])?;
            return Ok(network);
        }
        Err(format!(
            "cannot create a bridge for a test network: {last_error}"
        ))
    }

    /// A short id unique on this machine while the network exists.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host's address on the bridge: where the test process's own
    /// connections come from.
    pub fn host_addr(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 254)
    }

    /// Adds a namespace called after `label` with the next free address,
    /// up and reachable from the host and every other node.
    pub fn add_node(&self, label: &str) -> Result<Node, NetError> {
        let mut nodes = self.nodes.lock().map_err(|e| e.to_string())?;
        let index = nodes.len() + 1;
        let [a, b, c] = self.subnet;
        let addr = Ipv4Addr::new(a, b, c, index as u8);
        let namespace = format!(
            "{NAMESPACE_PREFIX}{}-{}-{label}",
            std::process::id(),
            self.id
        );
        let veth = format!("kpv{}n{index}", self.id);
        run("ip", &["netns", "add", &namespace])?;
        let node = Node {
            namespace: namespace.clone(),
            addr,
            label: label.to_owned(),
        };
        nodes.push(node.clone());
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
            ],
        )?;
        run("ip", &["link", "set", &veth, "master", &self.bridge, "up"])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &namespace];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        in_ns(&["ip", "link", "set", "lo", "up"])?;
        in_ns(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        in_ns(&["ip", "link", "set", "eth0", "up"])?;
        run_with_input(
            &["ip", "netns", "exec", &namespace, "nft", "-f", "-"],
            FIREWALL,
        )?;
        Ok(node)
    }

    /// Drops every packet between `a` and `b`, both ways, until
    /// [`unblock`](Self::unblock). Either may be the host's address.
    pub fn block(&self, a: Ipv4Addr, b: Ipv4Addr) -> Result<(), NetError> {
        self.set_blocked(a, b, true)
    }

    /// Lets packets between `a` and `b` through again.
    pub fn unblock(&self, a: Ipv4Addr, b: Ipv4Addr) -> Result<(), NetError> {
        self.set_blocked(a, b, false)
    }

    /// Cuts `node` off from every other node and the host.
    pub fn isolate(&self, node: Ipv4Addr) -> Result<(), NetError> {
        for other in self.all_addrs()? {
            if other != node {
                self.block(node, other)?;
            }
        }
        Ok(())
    }

    /// Removes every block: the network is whole again.
    pub fn heal(&self) -> Result<(), NetError> {
        let pairs: Vec<_> = self
            .blocked
            .lock()
            .map_err(|e| e.to_string())?
            .iter()
            .copied()
            .collect();
        for (a, b) in pairs {
            self.unblock(a, b)?;
        }
        Ok(())
    }

    /// Every address: the nodes' and the host's.
    fn all_addrs(&self) -> Result<Vec<Ipv4Addr>, NetError> {
        let nodes = self.nodes.lock().map_err(|e| e.to_string())?;
        let mut all: Vec<_> = nodes.iter().map(|n| n.addr).collect();
        all.push(self.host_addr());
        Ok(all)
    }

    fn set_blocked(&self, a: Ipv4Addr, b: Ipv4Addr, blocked: bool) -> Result<(), NetError> {
        let pair = (a.min(b), a.max(b));
        let mut set = self.blocked.lock().map_err(|e| e.to_string())?;
        if set.contains(&pair) == blocked {
            return Ok(());
        }
        let nodes = self.nodes.lock().map_err(|e| e.to_string())?.clone();
        let verb = if blocked { "add" } else { "delete" };
        // Each side that is a namespace drops the other; the host has no
        // rules (it is not ours to change), so a host-node pair is cut on
        // the node's side alone, which is enough both ways.
        for (this, other) in [(a, b), (b, a)] {
            if let Some(node) = nodes.iter().find(|n| n.addr == this) {
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &node.namespace,
                        "nft",
                        verb,
                        "element",
                        "inet",
                        "kingpin",
                        "blocked",
                        &format!("{{ {other} }}"),
                    ],
                )?;
            }
        }
        if blocked {
            set.insert(pair);
        } else {
            set.remove(&pair);
        }
        Ok(())
    }

    /// A command that runs `program` inside `node`'s namespace (through
    /// `ip netns exec`, which execs it: the child's pid is the program's).
    pub fn command_in(&self, node: &Node, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .arg("netns")
            .arg("exec")
            .arg(&node.namespace)
            .arg(program);
        command
    }
}

/// Every node's table: addresses in `blocked` are dropped both ways.
const FIREWALL: &str = "table inet kingpin {
    set blocked { type ipv4_addr; }
    chain input { type filter hook input priority 0; ip saddr @blocked drop; }
    chain output { type filter hook output priority 0; ip daddr @blocked drop; }
}
";

impl Drop for Network {
    fn drop(&mut self) {
        if let Ok(nodes) = self.nodes.lock() {
            for node in nodes.iter() {
                // Deleting the namespace deletes its end of the veth, and
                // with it the pair and the nftables table.
                let _ = run("ip", &["netns", "del", &node.namespace]);
            }
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// Namespaces (and their bridges) left by a test process that was killed
/// before its `Drop` ran: their names carry the dead process's id.
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(3, '-');
        let (Some(pid), Some(id)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = run("ip", &["netns", "del", &name]);
        let _ = run("ip", &["link", "del", &format!("kpb{id}")]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<Output, NetError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    check(program, args, output)
}

fn run_with_input(argv: &[&str], input: &str) -> Result<Output, NetError> {
    use std::io::Write;
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    check(program, args, output)
}

fn check(program: &str, args: &[&str], output: Output) -> Result<Output, NetError> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

pub(crate) fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([
            std::path::PathBuf::from("/usr/sbin"),
            std::path::PathBuf::from("/sbin"),
        ])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

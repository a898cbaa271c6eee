//! `EtcdCoordinator`: the Coordinator operations as optimistic etcd
//! transactions over the key layout of [`crate::keys`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Compare, CompareOp, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use futures::StreamExt;
use kingpin_api::{
    check_data_size, check_expected_version, sequential_path, Backoff, Capabilities, Coordinator,
    Error, ErrorKind, Node, NodePath, Op, OpResult, Result, SessionEvent, SessionEvents,
    SessionState, Stat, WatchKind, WatchStream,
};

use crate::config::EtcdConfig;
use crate::error::{from_etcd, resend_unsent};
use crate::keys::{decode_value, encode_value, stat_of};
use crate::session::{keep_alive, Shared};
use crate::watch;

/// Optimistic attempts before a write gives up under contention.
const MAX_ATTEMPTS: usize = 64;

/// An etcd client and lease implementing [`Coordinator`].
#[derive(Debug)]
pub struct EtcdCoordinator {
    pub(crate) shared: Arc<Shared>,
}

impl EtcdCoordinator {
    /// Connects and grants the session's lease.
    ///
    /// Errors: `Unavailable` naming the endpoints when etcd cannot be
    /// reached; `Unauthorized` when credentials are refused.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let shared = Shared::connect(config).await?;
        tokio::spawn(keep_alive(shared.clone()));
        Ok(EtcdCoordinator { shared })
    }

    /// Revokes the session's lease from the outside, as a partition longer
    /// than the TTL would; returns once a new lease is in place. For tests
    /// and failure drills.
    pub async fn force_expire(&self) -> Result<()> {
        let lease = self.shared.lease()?;
        let mut events = self.shared.hub.events();
        self.shared
            .client
            .lease_client()
            .revoke(lease)
            .await
            .map_err(|e| from_etcd(e, "lease revoke"))?;
        // Events, not the state: Expired may turn into Connected before a
        // state watcher looks.
        let renewed = async {
            while events
                .next()
                .await
                .is_some_and(|e| e != SessionEvent::Connected)
            {}
        };
        tokio::time::timeout(self.shared.config.lease_ttl * 3, renewed)
            .await
            .map_err(|_| Error::unavailable("the revoked lease was not replaced in time"))
    }

    fn check_op(&self, op: &Op) -> Result<()> {
        let limit = self.shared.config.max_data_size;
        match op {
            Op::Create { path, .. } | Op::Delete { path, .. } if path.is_root() => {
                Err(Error::invalid("the root node cannot be created or deleted"))
            }
            Op::Create { path, data, .. } | Op::Set { path, data, .. } => {
                check_data_size(path, data, limit)
            }
            _ => Ok(()),
        }
    }

    /// Applies `ops` atomically: read a snapshot, decide every operation's
    /// outcome on it, then commit only if nothing read has changed since.
    async fn apply(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        self.shared.check_open()?;
        for (index, op) in ops.iter().enumerate() {
            self.check_op(op).map_err(|e| e.at_operation(index))?;
        }
        let mut backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(200));
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self.read_snapshot(&ops).await?;
            let plan = Plan::decide(&ops, &snapshot, &self.shared)?;
            if plan.writes.is_empty() {
                return Ok(plan.results(0));
            }
            let txn = Txn::new()
                .when(plan.compares.clone())
                .and_then(plan.writes.clone());
            let response = resend_unsent(|| {
                let (mut kv, txn) = (self.shared.client.kv_client(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await
            .map_err(|e| from_etcd(e, "transaction"))?;
            if response.succeeded() {
                let revision = response.header().map(|h| h.revision()).unwrap_or(0);
                return Ok(plan.results(revision));
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        Err(Error::unavailable(format!(
            "gave up after {MAX_ATTEMPTS} attempts: the nodes kept changing under contention"
        )))
    }

    /// Reads, in one snapshot, everything `ops` depend on.
    async fn read_snapshot(&self, ops: &[Op]) -> Result<Snapshot> {
        let mut nodes = BTreeSet::new();
        let mut counters = BTreeSet::new();
        let mut children = BTreeSet::new();
        for op in ops {
            match op {
                Op::Create { path, mode, .. } => {
                    nodes.extend(path.ancestors());
                    if mode.is_sequential() {
                        counters.insert(path.parent().unwrap_or_else(NodePath::root));
                    } else {
                        nodes.insert(path.clone());
                    }
                }
                Op::Delete { path, .. } => {
                    nodes.insert(path.clone());
                    children.insert(path.clone());
                }
                Op::Check { path, .. } | Op::Set { path, .. } => {
                    nodes.insert(path.clone());
                }
            }
        }
        let layout = &self.shared.layout;
        let mut reads = Vec::new();
        reads.extend(nodes.iter().map(|p| TxnOp::get(layout.node_key(p), None)));
        reads.extend(
            counters
                .iter()
                .map(|p| TxnOp::get(layout.counter_key(p), None)),
        );
        let keys_only = GetOptions::new().with_prefix().with_keys_only();
        reads.extend(
            children
                .iter()
                .map(|p| TxnOp::get(layout.children_prefix(p), Some(keys_only.clone()))),
        );
        let txn = Txn::new().and_then(reads);
        let response = resend_unsent(|| {
            let (mut kv, txn) = (self.shared.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(|e| from_etcd(e, "reading a snapshot"))?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        let mut results = response.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().to_vec(),
            _ => Vec::new(),
        });
        let mut snapshot = Snapshot {
            revision,
            ..Snapshot::default()
        };
        for path in nodes {
            let kv = results.next().unwrap_or_default().into_iter().next();
            snapshot.nodes.insert(path, kv);
        }
        for parent in counters {
            let kv = results.next().unwrap_or_default().into_iter().next();
            let (next, modified) = match kv {
                Some(kv) => (parse_counter(&kv)?, kv.mod_revision()),
                None => (0, 0),
            };
            snapshot.counters.insert(parent, (next, modified));
        }
        for path in children {
            let prefix = layout.children_prefix(&path);
            let names = results
                .next()
                .unwrap_or_default()
                .iter()
                .filter_map(|kv| layout.child_name(&prefix, kv.key()).map(|n| path.join(n)))
                .collect::<Result<Vec<_>>>()?;
            snapshot.children.insert(path, names);
        }
        Ok(snapshot)
    }
}

impl Drop for EtcdCoordinator {
    fn drop(&mut self) {
        self.shared.shut_down();
        // Release ephemeral nodes now rather than after the TTL, if we can.
        if let (Some(lease), Ok(runtime)) = (
            self.shared.take_lease(),
            tokio::runtime::Handle::try_current(),
        ) {
            let mut leases = self.shared.client.lease_client();
            runtime.spawn(async move {
                let _ = leases.revoke(lease).await;
            });
        }
    }
}

fn parse_counter(kv: &KeyValue) -> Result<u64> {
    std::str::from_utf8(kv.value())
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Backend,
                format!(
                    "sequence counter {} is corrupt",
                    String::from_utf8_lossy(kv.key())
                ),
            )
        })
}

#[derive(Debug, Default)]
struct Snapshot {
    revision: i64,
    nodes: HashMap<NodePath, Option<KeyValue>>,
    /// Parent → (next sequence number, the counter key's mod revision).
    counters: HashMap<NodePath, (u64, i64)>,
    /// Delete targets → their children at the snapshot.
    children: HashMap<NodePath, Vec<NodePath>>,
}

#[derive(Debug, Clone)]
struct SimNode {
    data: Vec<u8>,
    version: u64,
    lease: i64,
    /// `None` when created by this transaction.
    created_revision: Option<i64>,
}

enum Outcome {
    Done(OpResult),
    /// A `Set` whose metadata needs the commit revision.
    Set {
        version: u64,
        created_revision: Option<i64>,
        lease: i64,
    },
}

/// The decided outcome of a transaction on a snapshot: results, the
/// conditions under which it still holds, and the writes to commit.
struct Plan {
    outcomes: Vec<Outcome>,
    compares: Vec<Compare>,
    writes: Vec<TxnOp>,
}

impl Plan {
    fn decide(ops: &[Op], snapshot: &Snapshot, shared: &Shared) -> Result<Self> {
        let layout = &shared.layout;
        let mut state: HashMap<NodePath, Option<SimNode>> = HashMap::new();
        for (path, kv) in &snapshot.nodes {
            let node = match kv {
                Some(kv) => {
                    let (version, data) = decode_value(kv.key(), kv.value())?;
                    Some(SimNode {
                        data: data.to_vec(),
                        version,
                        lease: kv.lease(),
                        created_revision: Some(kv.create_revision()),
                    })
                }
                None => None,
            };
            state.insert(path.clone(), node);
        }
        let mut counters: HashMap<NodePath, u64> = snapshot
            .counters
            .iter()
            .map(|(p, (n, _))| (p.clone(), *n))
            .collect();
        let mut dirty: BTreeSet<NodePath> = BTreeSet::new();
        let mut must_be_absent: Vec<NodePath> = Vec::new();
        let mut outcomes = Vec::with_capacity(ops.len());

        for (index, op) in ops.iter().enumerate() {
            let outcome = (|| -> Result<Outcome> {
                match op {
                    Op::Check { path, version } => match state.get(path).and_then(Option::as_ref) {
                        None => Err(Error::not_found(path)),
                        Some(n) if n.version != *version => Err(Error::bad_version(path, *version)),
                        Some(_) => Ok(Outcome::Done(OpResult::Checked)),
                    },
                    Op::Create { path, data, mode } => {
                        for ancestor in path.ancestors() {
                            match state.get(&ancestor).and_then(Option::as_ref) {
                                Some(n) if n.lease != 0 => {
                                    return Err(Error::invalid(format!(
                                        "{ancestor} is ephemeral and cannot have children"
                                    )))
                                }
                                Some(_) => {}
                                None => {
                                    state.insert(
                                        ancestor.clone(),
                                        Some(SimNode {
                                            data: Vec::new(),
                                            version: 0,
                                            lease: 0,
                                            created_revision: None,
                                        }),
                                    );
                                    dirty.insert(ancestor);
                                }
                            }
                        }
                        let name = if mode.is_sequential() {
                            let parent = path.parent().unwrap_or_else(NodePath::root);
                            let counter = counters.entry(parent).or_insert(0);
                            let name = sequential_path(path, *counter)?;
                            *counter += 1;
                            if !state.contains_key(&name) {
                                must_be_absent.push(name.clone());
                            }
                            name
                        } else {
                            path.clone()
                        };
                        if state.get(&name).is_some_and(Option::is_some) {
                            return Err(Error::already_exists(&name));
                        }
                        let lease = if mode.is_ephemeral() {
                            shared.lease()?
                        } else {
                            0
                        };
                        state.insert(
                            name.clone(),
                            Some(SimNode {
                                data: data.clone(),
                                version: 0,
                                lease,
                                created_revision: None,
                            }),
                        );
                        dirty.insert(name.clone());
                        Ok(Outcome::Done(OpResult::Created(name)))
                    }
                    Op::Set {
                        path,
                        data,
                        expected_version,
                    } => {
                        let Some(node) = state.get_mut(path).and_then(Option::as_mut) else {
                            return Err(Error::not_found(path));
                        };
                        check_expected_version(path, node.version, *expected_version)?;
                        node.data = data.clone();
                        node.version += 1;
                        dirty.insert(path.clone());
                        Ok(Outcome::Set {
                            version: node.version,
                            created_revision: node.created_revision,
                            lease: node.lease,
                        })
                    }
                    Op::Delete {
                        path,
                        expected_version,
                    } => {
                        let Some(node) = state.get(path).and_then(Option::as_ref) else {
                            return Err(Error::not_found(path));
                        };
                        check_expected_version(path, node.version, *expected_version)?;
                        let at_snapshot = snapshot
                            .children
                            .get(path)
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        let remaining = at_snapshot
                            .iter()
                            .filter(|c| !matches!(state.get(*c), Some(None)))
                            .count();
                        let created_here = state
                            .iter()
                            .filter(|(p, n)| {
                                n.is_some()
                                    && p.parent().as_ref() == Some(path)
                                    && !at_snapshot.contains(p)
                            })
                            .count();
                        if remaining + created_here > 0 {
                            return Err(Error::not_empty(path));
                        }
                        state.insert(path.clone(), None);
                        dirty.insert(path.clone());
                        Ok(Outcome::Done(OpResult::Deleted))
                    }
                }
            })();
            outcomes.push(outcome.map_err(|e| e.at_operation(index))?);
        }

        let mut compares = Vec::new();
        for (path, kv) in &snapshot.nodes {
            let modified = kv.as_ref().map(KeyValue::mod_revision).unwrap_or(0);
            compares.push(Compare::mod_revision(
                layout.node_key(path),
                CompareOp::Equal,
                modified,
            ));
        }
        for path in &must_be_absent {
            compares.push(Compare::mod_revision(
                layout.node_key(path),
                CompareOp::Equal,
                0,
            ));
        }
        for (parent, (_, modified)) in &snapshot.counters {
            compares.push(Compare::mod_revision(
                layout.counter_key(parent),
                CompareOp::Equal,
                *modified,
            ));
        }
        for path in snapshot.children.keys() {
            // No child created since the snapshot.
            compares.push(
                Compare::mod_revision(
                    layout.children_prefix(path),
                    CompareOp::Less,
                    snapshot.revision + 1,
                )
                .with_prefix(),
            );
        }

        let mut writes = Vec::new();
        for path in &dirty {
            let key = layout.node_key(path);
            match state.get(path).and_then(Option::as_ref) {
                Some(node) => {
                    let options =
                        (node.lease != 0).then(|| PutOptions::new().with_lease(node.lease));
                    writes.push(TxnOp::put(
                        key,
                        encode_value(node.version, &node.data),
                        options,
                    ));
                }
                None if snapshot.nodes.get(path).is_some_and(Option::is_some) => {
                    writes.push(TxnOp::delete(key, None))
                }
                None => {}
            }
        }
        for (parent, next) in &counters {
            if snapshot.counters.get(parent).map(|(n, _)| n) != Some(next) {
                writes.push(TxnOp::put(
                    layout.counter_key(parent),
                    next.to_string(),
                    None,
                ));
            }
        }
        Ok(Plan {
            outcomes,
            compares,
            writes,
        })
    }

    fn results(&self, revision: i64) -> Vec<OpResult> {
        self.outcomes
            .iter()
            .map(|outcome| match outcome {
                Outcome::Done(result) => result.clone(),
                Outcome::Set {
                    version,
                    created_revision,
                    lease,
                } => OpResult::Set(Stat {
                    version: *version,
                    created_revision: created_revision.unwrap_or(revision) as u64,
                    modified_revision: revision as u64,
                    ephemeral_owner: (*lease != 0).then_some(*lease as u64),
                }),
            })
            .collect()
    }
}

#[async_trait]
impl Coordinator for EtcdCoordinator {
    async fn get(&self, path: &NodePath) -> Result<Node> {
        self.shared.check_open()?;
        if path.is_root() {
            return Ok(Node {
                data: Vec::new(),
                stat: Stat {
                    version: 0,
                    created_revision: 0,
                    modified_revision: 0,
                    ephemeral_owner: None,
                },
            });
        }
        let key = self.shared.layout.node_key(path);
        let response = resend_unsent(|| {
            let (mut kv, key) = (self.shared.client.kv_client(), key.clone());
            async move { kv.get(key, None).await }
        })
        .await
        .map_err(|e| from_etcd(e, &format!("get {path}")))?;
        let kv = response
            .kvs()
            .first()
            .ok_or_else(|| Error::not_found(path))?;
        let (_, data) = decode_value(kv.key(), kv.value())?;
        Ok(Node {
            data: data.to_vec(),
            stat: stat_of(kv)?,
        })
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        self.shared.check_open()?;
        let layout = &self.shared.layout;
        let prefix = layout.children_prefix(path);
        let txn = Txn::new().and_then(vec![
            TxnOp::get(
                layout.node_key(path),
                Some(GetOptions::new().with_count_only()),
            ),
            TxnOp::get(
                prefix.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ),
        ]);
        let response = resend_unsent(|| {
            let (mut kv, txn) = (self.shared.client.kv_client(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(|e| from_etcd(e, &format!("children of {path}")))?;
        let mut responses = response.op_responses().into_iter();
        let exists = match responses.next() {
            Some(TxnOpResponse::Get(get)) => get.count() > 0,
            _ => false,
        };
        if !exists && !path.is_root() {
            return Err(Error::not_found(path));
        }
        let mut names: Vec<String> = match responses.next() {
            Some(TxnOpResponse::Get(get)) => get
                .kvs()
                .iter()
                .filter_map(|kv| layout.child_name(&prefix, kv.key()).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        names.sort();
        Ok(names)
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        self.apply(ops).await
    }

    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
        watch::start(self.shared.clone(), path.clone(), kind).await
    }

    fn session_events(&self) -> SessionEvents {
        self.shared.hub.events()
    }

    fn session_state(&self) -> SessionState {
        self.shared.hub.state()
    }

    fn session_id(&self) -> Option<u64> {
        self.shared.current_lease().map(|l| l as u64)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_max_data_size(self.shared.config.max_data_size)
    }

    async fn close(&self) -> Result<()> {
        self.shared.shut_down();
        if let Some(lease) = self.shared.take_lease() {
            let mut leases = self.shared.client.lease_client();
            let revoke = leases.revoke(lease);
            match tokio::time::timeout(Duration::from_secs(5), revoke).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not revoke the etcd lease; it expires after its TTL")
                }
                Err(_) => {
                    tracing::warn!("revoking the etcd lease timed out; it expires after its TTL")
                }
            }
        }
        Ok(())
    }
}

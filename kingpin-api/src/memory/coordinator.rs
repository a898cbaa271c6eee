//! `MemoryCoordinator`, the reference implementation of [`Coordinator`].
//!
//! A [`MemoryServer`] is the namespace; each [`MemoryCoordinator`] connected to
//! it is one session. Tests use the server to do what a real cluster does to
//! its clients: expire a session, or drop every connection for a moment.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::coordinator::{
    check_data_size, check_expected_version, sequential_path, Capabilities, Coordinator, Node, Op,
    OpResult, SessionEvent, SessionEvents, SessionState, Stat, WatchEvent, WatchKind, WatchStream,
};
use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;
use crate::session::SessionHub;
use crate::watch_channel::{watch_channel, WatchSender};

/// An in-process namespace shared by the [`MemoryCoordinator`] sessions
/// connected to it.
#[derive(Debug, Clone, Default)]
pub struct MemoryServer {
    state: Arc<Mutex<ServerState>>,
}

fn down() -> Error {
    Error::unavailable("the memory server is stopped (simulated outage)")
}

#[derive(Debug, Default)]
struct ServerState {
    nodes: BTreeMap<NodePath, MemNode>,
    revision: u64,
    last_session: u64,
    /// Live sessions by id, with the hub of the coordinator that owns each.
    sessions: HashMap<u64, SessionHub>,
    watchers: Vec<Watcher>,
    root_child_sequence: u64,
    /// A simulated outage is in progress.
    stopped: bool,
}

#[derive(Debug, Clone)]
struct MemNode {
    data: Vec<u8>,
    stat: Stat,
    /// Counter for sequential children; only ever grows.
    child_sequence: u64,
}

#[derive(Debug)]
struct Watcher {
    path: NodePath,
    kind: WatchKind,
    /// The coordinator (not session) that owns the watch: watches outlive
    /// sessions.
    owner: u64,
    sender: WatchSender,
}

/// A change to the namespace, turned into watch events after a commit.
enum Change {
    Created(NodePath),
    DataChanged(NodePath),
    Deleted(NodePath),
}

impl MemoryServer {
    /// An empty namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a new session on this namespace.
    pub fn connect(&self) -> MemoryCoordinator {
        let hub = SessionHub::new(SessionState::Connected);
        let mut state = self.lock();
        let session = state.new_session(hub.clone());
        MemoryCoordinator {
            server: self.clone(),
            owner: session,
            session: Mutex::new(Some(session)),
            hub,
            capabilities: Capabilities::full().single_process(),
        }
    }

    /// Simulates an outage: every session is suspended and every call fails
    /// with `Unavailable` until [`start`](Self::start). Sessions and data
    /// survive, as they do across a real ZooKeeper restart shorter than the
    /// session timeout.
    pub fn stop(&self) {
        let mut state = self.lock();
        if state.stopped {
            return;
        }
        state.stopped = true;
        for hub in state.sessions.values() {
            hub.publish(SessionEvent::Suspended);
        }
    }

    /// Ends a simulated outage: sessions report `Reconnected` and every watch
    /// gets a `Resync`.
    pub fn start(&self) {
        let mut state = self.lock();
        if !state.stopped {
            return;
        }
        state.stopped = false;
        for hub in state.sessions.values() {
            hub.publish(SessionEvent::Reconnected);
        }
        for w in &state.watchers {
            w.sender.send(WatchEvent::Resync);
        }
    }

    /// [`stop`](Self::stop) then [`start`](Self::start).
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ServerState {
    fn new_session(&mut self, hub: SessionHub) -> u64 {
        self.last_session += 1;
        self.sessions.insert(self.last_session, hub);
        self.last_session
    }

    /// Ends `session`, deleting its ephemeral nodes.
    fn end_session(&mut self, session: u64) {
        self.sessions.remove(&session);
        let owned: Vec<NodePath> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.stat.ephemeral_owner == Some(session))
            .map(|(p, _)| p.clone())
            .collect();
        if owned.is_empty() {
            return;
        }
        self.revision += 1;
        let mut changes = Vec::new();
        for path in owned {
            self.nodes.remove(&path);
            changes.push(Change::Deleted(path));
        }
        self.notify(&changes);
    }

    fn has_children(&self, path: &NodePath) -> bool {
        self.child_names(path).next().is_some()
    }

    fn child_names<'a>(&'a self, path: &'a NodePath) -> impl Iterator<Item = &'a str> + 'a {
        let depth = path.depth() + 1;
        self.nodes
            .range(path.clone()..)
            .skip_while(move |(p, _)| *p == path)
            .take_while(move |(p, _)| p.starts_with(path))
            .filter(move |(p, _)| p.depth() == depth)
            .map(|(p, _)| p.name())
    }

    fn exists(&self, path: &NodePath) -> bool {
        path.is_root() || self.nodes.contains_key(path)
    }

    /// Applies `ops` in order. On failure, undoes what was applied and
    /// returns the error of the failing operation.
    fn apply(
        &mut self,
        ops: Vec<Op>,
        session: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<OpResult>, Vec<Change>)> {
        let mut undo: Vec<(NodePath, Option<MemNode>)> = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        let mut changes = Vec::new();
        let revision = self.revision + 1;
        for (index, op) in ops.into_iter().enumerate() {
            let outcome = self.apply_one(op, session, limit, revision, &mut undo, &mut changes);
            match outcome {
                Ok(result) => results.push(result),
                Err(err) => {
                    for (path, previous) in undo.into_iter().rev() {
                        match previous {
                            Some(node) => self.nodes.insert(path, node),
                            None => self.nodes.remove(&path),
                        };
                    }
                    return Err(err.at_operation(index));
                }
            }
        }
        if !changes.is_empty() {
            self.revision = revision;
        }
        Ok((results, changes))
    }

    fn apply_one(
        &mut self,
        op: Op,
        session: Option<u64>,
        limit: usize,
        revision: u64,
        undo: &mut Vec<(NodePath, Option<MemNode>)>,
        changes: &mut Vec<Change>,
    ) -> Result<OpResult> {
        match op {
            Op::Check { path, version } => match self.nodes.get(&path) {
                None => Err(Error::not_found(&path)),
                Some(n) if n.stat.version != version => Err(Error::bad_version(&path, version)),
                Some(_) => Ok(OpResult::Checked),
            },
            Op::Create { path, data, mode } => {
                check_data_size(&path, &data, limit)?;
                if path.is_root() {
                    return Err(Error::invalid("the root node cannot be created"));
                }
                let owner = if mode.is_ephemeral() {
                    Some(session.ok_or_else(expired)?)
                } else {
                    None
                };
                let Some(parent) = path.parent() else {
                    return Err(Error::invalid("the root node cannot be created"));
                };
                for ancestor in path.ancestors() {
                    if let Some(node) = self.nodes.get(&ancestor) {
                        if node.stat.ephemeral_owner.is_some() {
                            return Err(Error::invalid(format!(
                                "{ancestor} is ephemeral and cannot have children"
                            )));
                        }
                        continue;
                    }
                    undo.push((ancestor.clone(), None));
                    self.nodes
                        .insert(ancestor.clone(), MemNode::new(Vec::new(), revision, None));
                    changes.push(Change::Created(ancestor));
                }
                let path = if mode.is_sequential() {
                    let parent_node = self.nodes.get_mut(&parent);
                    let sequence = match parent_node {
                        Some(node) => {
                            undo.push((parent.clone(), Some(node.clone())));
                            node.child_sequence += 1;
                            node.child_sequence - 1
                        }
                        // The root is not stored as a node; its counter lives here.
                        None => {
                            self.root_child_sequence += 1;
                            self.root_child_sequence - 1
                        }
                    };
                    sequential_path(&path, sequence)?
                } else {
                    path
                };
                if self.nodes.contains_key(&path) {
                    return Err(Error::already_exists(&path));
                }
                undo.push((path.clone(), None));
                self.nodes
                    .insert(path.clone(), MemNode::new(data, revision, owner));
                changes.push(Change::Created(path.clone()));
                Ok(OpResult::Created(path))
            }
            Op::Set {
                path,
                data,
                expected_version,
            } => {
                check_data_size(&path, &data, limit)?;
                let Some(node) = self.nodes.get_mut(&path) else {
                    return Err(Error::not_found(&path));
                };
                check_expected_version(&path, node.stat.version, expected_version)?;
                undo.push((path.clone(), Some(node.clone())));
                node.data = data;
                node.stat.version += 1;
                node.stat.modified_revision = revision;
                let stat = node.stat;
                changes.push(Change::DataChanged(path));
                Ok(OpResult::Set(stat))
            }
            Op::Delete {
                path,
                expected_version,
            } => {
                if path.is_root() {
                    return Err(Error::invalid("the root node cannot be deleted"));
                }
                let Some(node) = self.nodes.get(&path) else {
                    return Err(Error::not_found(&path));
                };
                check_expected_version(&path, node.stat.version, expected_version)?;
                if self.has_children(&path) {
                    return Err(Error::not_empty(&path));
                }
                let node = self.nodes.remove(&path);
                undo.push((path.clone(), node));
                changes.push(Change::Deleted(path));
                Ok(OpResult::Deleted)
            }
        }
    }

    fn notify(&self, changes: &[Change]) {
        for change in changes {
            let (path, own, parent_too) = match change {
                Change::Created(p) => (p, WatchEvent::Changed, true),
                Change::DataChanged(p) => (p, WatchEvent::Changed, false),
                Change::Deleted(p) => (p, WatchEvent::Deleted, true),
            };
            let data_only = matches!(change, Change::DataChanged(_));
            let parent = path.parent();
            for w in &self.watchers {
                if &w.path == path && (w.kind == WatchKind::Data || !data_only) {
                    w.sender.send(own);
                } else if parent_too
                    && w.kind == WatchKind::Children
                    && parent.as_ref() == Some(&w.path)
                {
                    w.sender.send(WatchEvent::Changed);
                }
            }
        }
    }
}

impl MemNode {
    fn new(data: Vec<u8>, revision: u64, owner: Option<u64>) -> Self {
        MemNode {
            data,
            stat: Stat {
                version: 0,
                created_revision: revision,
                modified_revision: revision,
                ephemeral_owner: owner,
            },
            child_sequence: 0,
        }
    }
}

fn expired() -> Error {
    Error::new(ErrorKind::SessionExpired, "the session has expired")
}

/// One session on a [`MemoryServer`]. See the module docs.
#[derive(Debug)]
pub struct MemoryCoordinator {
    server: MemoryServer,
    /// Identifies this coordinator's watches across sessions.
    owner: u64,
    /// The live session, `None` once closed.
    session: Mutex<Option<u64>>,
    hub: SessionHub,
    capabilities: Capabilities,
}

impl MemoryCoordinator {
    /// A coordinator on a namespace of its own.
    pub fn new() -> Self {
        MemoryServer::new().connect()
    }

    /// The namespace this session belongs to, to connect more sessions.
    pub fn server(&self) -> &MemoryServer {
        &self.server
    }

    /// Sets the payload limit (default [`DEFAULT_MAX_DATA_SIZE`](crate::DEFAULT_MAX_DATA_SIZE)).
    pub fn with_max_data_size(mut self, limit: usize) -> Self {
        self.capabilities = self.capabilities.with_max_data_size(limit);
        self
    }

    /// Expires the session the way a server does: its ephemeral nodes are
    /// deleted, `Expired` is reported, then a new session is established
    /// (`Connected`) and every watch of this coordinator gets a `Resync`.
    pub fn expire_session(&self) {
        let mut session = lock(&self.session);
        let Some(old) = *session else { return };
        let mut state = self.server.lock();
        state.end_session(old);
        self.hub.publish(SessionEvent::Expired);
        let new = state.new_session(self.hub.clone());
        *session = Some(new);
        self.hub.publish(SessionEvent::Connected);
        for w in state.watchers.iter().filter(|w| w.owner == self.owner) {
            w.sender.send(WatchEvent::Resync);
        }
    }

    fn live_session(&self) -> Result<u64> {
        let session =
            lock(&self.session).ok_or_else(|| Error::unavailable("the coordinator is closed"))?;
        if self.server.lock().stopped {
            return Err(down());
        }
        Ok(session)
    }
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn get(&self, path: &NodePath) -> Result<Node> {
        self.live_session()?;
        let state = self.server.lock();
        match state.nodes.get(path) {
            Some(n) if !path.is_root() => Ok(Node {
                data: n.data.clone(),
                stat: n.stat,
            }),
            _ if path.is_root() => Ok(Node {
                data: Vec::new(),
                stat: Stat {
                    version: 0,
                    created_revision: 0,
                    modified_revision: 0,
                    ephemeral_owner: None,
                },
            }),
            _ => Err(Error::not_found(path)),
        }
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        self.live_session()?;
        let state = self.server.lock();
        if !state.exists(path) {
            return Err(Error::not_found(path));
        }
        let mut names: Vec<String> = state.child_names(path).map(str::to_owned).collect();
        names.sort();
        Ok(names)
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let session = self.live_session()?;
        let mut state = self.server.lock();
        let (results, changes) =
            state.apply(ops, Some(session), self.capabilities.max_data_size)?;
        state.notify(&changes);
        Ok(results)
    }

    async fn watch(&self, path: &NodePath, kind: WatchKind) -> Result<WatchStream> {
        self.live_session()?;
        let (sender, stream) = watch_channel();
        let mut state = self.server.lock();
        state.watchers.retain(|w| !w.sender.is_closed());
        state.watchers.push(Watcher {
            path: path.clone(),
            kind,
            owner: self.owner,
            sender,
        });
        Ok(stream)
    }

    fn session_events(&self) -> SessionEvents {
        self.hub.events()
    }

    fn session_state(&self) -> SessionState {
        self.hub.state()
    }

    fn session_id(&self) -> Option<u64> {
        *lock(&self.session)
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn close(&self) -> Result<()> {
        let mut session = lock(&self.session);
        if let Some(id) = session.take() {
            let mut state = self.server.lock();
            state.end_session(id);
            // Dropping the senders ends this coordinator's watch streams.
            state.watchers.retain(|w| w.owner != self.owner);
            self.hub.close();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::CreateMode;
    use futures::StreamExt;

    fn p(s: &str) -> NodePath {
        NodePath::parse(s).unwrap()
    }

    #[tokio::test]
    async fn create_makes_parents_and_sequential_names() {
        let c = MemoryCoordinator::new();
        c.create(&p("/a/b/c"), b"x", CreateMode::Persistent)
            .await
            .unwrap();
        assert_eq!(c.children(&p("/a")).await.unwrap(), ["b"]);
        let first = c
            .create(&p("/q/item-"), b"", CreateMode::PersistentSequential)
            .await
            .unwrap();
        let second = c
            .create(&p("/q/item-"), b"", CreateMode::PersistentSequential)
            .await
            .unwrap();
        assert_eq!(first.as_str(), "/q/item-0000000000");
        assert_eq!(second.as_str(), "/q/item-0000000001");
        let top = c
            .create(&p("/top-"), b"", CreateMode::PersistentSequential)
            .await
            .unwrap();
        assert_eq!(top.as_str(), "/top-0000000000");
    }

    #[tokio::test]
    async fn failed_transaction_leaves_nothing_behind() {
        let c = MemoryCoordinator::new();
        c.create(&p("/x"), b"1", CreateMode::Persistent)
            .await
            .unwrap();
        let err = c
            .transaction(vec![
                Op::Create {
                    path: p("/new/deep"),
                    data: vec![],
                    mode: CreateMode::Persistent,
                },
                Op::Set {
                    path: p("/x"),
                    data: b"2".to_vec(),
                    expected_version: Some(7),
                },
            ])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadVersion);
        assert_eq!(err.operation_index(), Some(1));
        assert!(c.exists(&p("/new")).await.unwrap().is_none());
        assert_eq!(c.get(&p("/x")).await.unwrap().data, b"1");
    }

    #[tokio::test]
    async fn expiry_removes_ephemerals_and_resyncs_watches() {
        let server = MemoryServer::new();
        let owner = server.connect();
        let observer = server.connect();
        owner
            .create(&p("/e"), b"", CreateMode::Ephemeral)
            .await
            .unwrap();
        let mut events = owner.session_events();
        let mut watch = owner.watch(&p("/other"), WatchKind::Data).await.unwrap();
        owner.expire_session();
        assert!(observer.exists(&p("/e")).await.unwrap().is_none());
        assert_eq!(events.next().await, Some(SessionEvent::Expired));
        assert_eq!(events.next().await, Some(SessionEvent::Connected));
        assert_eq!(watch.next().await, Some(WatchEvent::Resync));
        // The new session works.
        owner
            .create(&p("/e"), b"", CreateMode::Ephemeral)
            .await
            .unwrap();
    }
}

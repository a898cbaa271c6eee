//! A serverset on the coordinator: joining it (kept through reconnects and
//! session expiry), leaving it, and reading its members.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;

use super::member::{Member, MEMBER_PREFIX};
use crate::backoff::Backoff;
use crate::config::ConfigName;
use crate::coordinator::{Coordinator, CreateMode, WatchKind, WatchStream};
use crate::error::{Error, ErrorKind, Result};
use crate::metaconfig::{MetaConfig, MetaConfigKind};
use crate::path::NodePath;

/// How many member nodes are read at once when a serverset is listed.
const CONCURRENT_READS: usize = 32;

/// How often a membership checks that its node is still there even when no
/// event said otherwise: a safety net under the session and node events.
const MEMBERSHIP_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// The serverset `discovery.<service>.<env>`, at `/discovery/<service>/<env>`.
///
/// ```no_run
/// # async fn run(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>) -> kingpin_api::Result<()> {
/// use kingpin_api::discovery::{Member, ServerSet};
/// use kingpin_client::Endpoint;
///
/// let api = ServerSet::new(coordinator, "api", "prod")?;
/// let membership = api.join(Member::new(Endpoint::new("10.0.0.7", 8080))).await?;
/// // ... serve; the membership follows reconnects and session expiry ...
/// membership.leave().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServerSet {
    coordinator: Arc<dyn Coordinator>,
    name: ConfigName,
    path: NodePath,
}

impl ServerSet {
    /// The serverset of `service` in `env`.
    ///
    /// # Errors
    ///
    /// `InvalidArgument`, before any I/O, when `service` or `env` is not one
    /// name component (`[a-z0-9_-]`).
    pub fn new(coordinator: Arc<dyn Coordinator>, service: &str, env: &str) -> Result<Self> {
        Ok(Self::from_metaconfig(
            coordinator,
            MetaConfig::serverset(service, env)?,
        ))
    }

    /// The serverset named `name` (`discovery.<service>.<env>`).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` when `name` is not a serverset name.
    pub fn from_name(coordinator: Arc<dyn Coordinator>, name: &ConfigName) -> Result<Self> {
        match name.as_str().split('.').collect::<Vec<_>>()[..] {
            [crate::metaconfig::SERVERSET_PREFIX, service, env] => {
                Self::new(coordinator, service, env)
            }
            _ => Err(Error::invalid(format!(
                "{name} is not a serverset name: discovery.<service>.<env>"
            ))),
        }
    }

    fn from_metaconfig(coordinator: Arc<dyn Coordinator>, metaconfig: MetaConfig) -> Self {
        debug_assert_eq!(metaconfig.kind, MetaConfigKind::Serverset);
        ServerSet {
            coordinator,
            path: metaconfig.node_path,
            name: metaconfig.name,
        }
    }

    /// `discovery.<service>.<env>`.
    pub fn name(&self) -> &ConfigName {
        &self.name
    }

    /// The node whose children are the members.
    pub fn path(&self) -> &NodePath {
        &self.path
    }

    pub(super) fn coordinator(&self) -> &Arc<dyn Coordinator> {
        &self.coordinator
    }

    /// Adds `member` as an ephemeral-sequential `member_NNNNNNNNNN` node
    /// holding Finagle serverset JSON, and keeps it there: after a session
    /// expiry (which removes ephemeral nodes) or anything else that removed
    /// it, the node is created again, until [`Membership::leave`].
    ///
    /// # Errors
    ///
    /// The coordinator's, when the first create fails (unavailable,
    /// unauthorized, …); nothing is kept trying then.
    pub async fn join(&self, member: Member) -> Result<Membership> {
        let data = member.to_json();
        let prefix = self.path.join(MEMBER_PREFIX)?;
        let first = self
            .coordinator
            .create(&prefix, &data, CreateMode::EphemeralSequential)
            .await?;
        let (current, path) = watch::channel(Some(first));
        let (stop, stopped) = watch::channel(false);
        let keeper = Keeper {
            coordinator: self.coordinator.clone(),
            serverset: self.path.clone(),
            prefix,
            data,
            current,
        };
        let task = tokio::spawn(keeper.run(stopped));
        Ok(Membership {
            coordinator: self.coordinator.clone(),
            member,
            path,
            stop,
            task: Some(task),
        })
    }

    /// The members, alive or not, sorted by endpoint. Children that are
    /// not members (neither Finagle JSON nor KingPin `<id>-<host:port>`
    /// names) are skipped; a serverset that does not exist has none.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn members(&self) -> Result<Vec<Member>> {
        MemberCache::new(self.clone()).refresh().await
    }

    /// A watch on the membership: fires when a member joins or leaves.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn watch(&self) -> Result<WatchStream> {
        self.coordinator
            .watch(&self.path, WatchKind::Children)
            .await
    }
}

/// The members of a serverset, re-read incrementally: member nodes are
/// written once by their owner, so only children not seen before are read
/// when the membership changes. [`refresh_all`](Self::refresh_all) reads
/// everything again (a status changed in place is seen then).
#[derive(Debug)]
pub struct MemberCache {
    serverset: ServerSet,
    /// Child name → the member it holds; `None` for a child that is not a
    /// member.
    known: HashMap<String, Option<Member>>,
}

impl MemberCache {
    /// An empty cache of `serverset`.
    pub fn new(serverset: ServerSet) -> Self {
        MemberCache {
            serverset,
            known: HashMap::new(),
        }
    }

    /// The serverset this cache reads.
    pub fn serverset(&self) -> &ServerSet {
        &self.serverset
    }

    /// The current members (as [`ServerSet::members`]), reading only the
    /// children that are new since the last refresh.
    ///
    /// # Errors
    ///
    /// The coordinator's; the cache keeps what it knew.
    pub async fn refresh(&mut self) -> Result<Vec<Member>> {
        let coordinator = &self.serverset.coordinator;
        let path = &self.serverset.path;
        let children = match coordinator.children(path).await {
            Ok(children) => children,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let new: Vec<String> = children
            .iter()
            .filter(|child| !self.known.contains_key(*child))
            .cloned()
            .collect();
        let read: Vec<(String, Option<Option<Member>>)> = futures::stream::iter(new)
            .map(|child| async move {
                let node = path.join(&child)?;
                match coordinator.get(&node).await {
                    Ok(node) => {
                        let member = Member::from_node(&child, &node.data);
                        Ok((child, Some(member)))
                    }
                    // It left meanwhile.
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok((child, None)),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let present: std::collections::HashSet<&String> = children.iter().collect();
        self.known.retain(|child, _| present.contains(child));
        for (child, member) in read {
            if let Some(member) = member {
                self.known.insert(child, member);
            }
        }
        let mut members: Vec<Member> = self.known.values().flatten().cloned().collect();
        members.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        Ok(members)
    }

    /// Forgets every member read, then [`refresh`](Self::refresh)es.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn refresh_all(&mut self) -> Result<Vec<Member>> {
        self.known.clear();
        self.refresh().await
    }
}

/// The alive members' endpoints, sorted and distinct: what a serverset
/// file lists.
pub fn alive_endpoints(members: &[Member]) -> Vec<kingpin_client::Endpoint> {
    let mut endpoints: Vec<_> = members
        .iter()
        .filter(|m| m.is_alive())
        .map(|m| m.endpoint.clone())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// A joined member, kept in its serverset until [`leave`](Self::leave).
/// Dropping it stops keeping the node and deletes it in the background
/// (the node also goes with the session).
#[derive(Debug)]
pub struct Membership {
    coordinator: Arc<dyn Coordinator>,
    member: Member,
    path: watch::Receiver<Option<NodePath>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Membership {
    /// The member as registered.
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// The member's node now; `None` while it is being created again
    /// (after a session expiry).
    pub fn path(&self) -> Option<NodePath> {
        self.path.borrow().clone()
    }

    /// Waits until the member's node is a different one than `previous`
    /// (re-created after an expiry) and returns it.
    pub async fn changed_from(&mut self, previous: &NodePath) -> NodePath {
        loop {
            if let Some(path) = self.path.borrow_and_update().clone() {
                if &path != previous {
                    return path;
                }
            }
            if self.path.changed().await.is_err() {
                // The keeper ended: the last path is final.
                return self
                    .path
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| previous.clone());
            }
        }
    }

    /// Stops keeping the member and deletes its node.
    ///
    /// # Errors
    ///
    /// The coordinator's when the delete fails (the node still goes with
    /// the session).
    pub async fn leave(mut self) -> Result<()> {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let path = self.path.borrow().clone();
        match path {
            Some(path) => match self.coordinator.delete(&path, None).await {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let path = self.path.borrow().clone();
        if let (Some(path), Ok(runtime)) = (path, tokio::runtime::Handle::try_current()) {
            let coordinator = self.coordinator.clone();
            runtime.spawn(async move {
                let _ = coordinator.delete(&path, None).await;
            });
        }
    }
}

/// The task that keeps a member's node in place.
struct Keeper {
    coordinator: Arc<dyn Coordinator>,
    serverset: NodePath,
    prefix: NodePath,
    data: Vec<u8>,
    current: watch::Sender<Option<NodePath>>,
}

impl Keeper {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut sessions = self.coordinator.session_events();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            // Armed before the check, so a removal after it is seen.
            let current = self.current.borrow().clone();
            let node_watch = match current {
                Some(path) => self.coordinator.watch(&path, WatchKind::Data).await.ok(),
                None => None,
            };
            let wait = match self.ensure().await {
                Ok(true) => {
                    // A new node: watch that one.
                    backoff.reset();
                    continue;
                }
                Ok(false) => {
                    backoff.reset();
                    MEMBERSHIP_CHECK_INTERVAL
                }
                Err(e) => {
                    tracing::warn!(serverset = %self.serverset, error = %e, "cannot keep the serverset member; retrying");
                    backoff.next_delay()
                }
            };
            let mut node_watch = node_watch;
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                event = sessions.next() => if event.is_none() { return },
                _ = next_node_event(&mut node_watch) => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Makes sure the node exists; `true` when it had to be created.
    async fn ensure(&self) -> Result<bool> {
        let current = self.current.borrow().clone();
        if let Some(path) = current {
            if self.coordinator.exists(&path).await?.is_some() {
                return Ok(false);
            }
        }
        self.current.send_replace(None);
        let session = self.coordinator.session_id();
        match self
            .coordinator
            .create(&self.prefix, &self.data, CreateMode::EphemeralSequential)
            .await
        {
            Ok(path) => {
                tracing::info!(member = %path, "serverset member created again");
                self.current.send_replace(Some(path));
                Ok(true)
            }
            Err(e) if e.is_retryable() => {
                // The create may have happened with its answer lost: adopt
                // such a node rather than leave a twin behind.
                if let Some(path) = self.find_own(session).await {
                    self.current.send_replace(Some(path));
                    return Ok(true);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// A member node of this session holding this member's data.
    async fn find_own(&self, session: Option<u64>) -> Option<NodePath> {
        let session = session?;
        if self.coordinator.session_id() != Some(session) {
            return None;
        }
        let children = self.coordinator.children(&self.serverset).await.ok()?;
        for child in children.iter().filter(|c| c.starts_with(MEMBER_PREFIX)) {
            let path = self.serverset.join(child).ok()?;
            if let Ok(node) = self.coordinator.get(&path).await {
                if node.stat.ephemeral_owner == Some(session) && node.data == self.data {
                    return Some(path);
                }
            }
        }
        None
    }
}

async fn next_node_event(watch: &mut Option<WatchStream>) {
    match watch {
        Some(stream) => {
            if stream.next().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

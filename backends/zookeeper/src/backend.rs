//! `ZooKeeperCoordinator`: the Coordinator operations on a live session.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_api::{
    check_data_size, Capabilities, Coordinator, CreateMode, Error, ErrorKind, Node, NodePath, Op,
    OpResult, Result, SessionEvents, SessionState, Stat, WatchKind, WatchStream,
};
use zookeeper_client as zk;

use crate::acl::NodeAcls;
use crate::config::ZooKeeperConfig;
use crate::error::from_zk;
use crate::session::{open_session, supervise, Shared};
use crate::watch;

/// A ZooKeeper session implementing [`Coordinator`].
///
/// Sessions that expire are rebuilt by a background task; watches move to
/// the new session and report `Resync`.
#[derive(Debug)]
pub struct ZooKeeperCoordinator {
    shared: Arc<Shared>,
}

impl ZooKeeperCoordinator {
    /// Opens a session (creating the chroot if missing).
    ///
    /// Errors: `Unavailable` naming the hosts when no server answers within
    /// the session timeout; `Unauthorized` when digest auth is refused.
    pub async fn connect(config: ZooKeeperConfig) -> Result<Self> {
        let client = open_session(&config).await?;
        let states = client.state_watcher();
        let shared = Shared::new(config, client);
        tokio::spawn(supervise(shared.clone(), states));
        Ok(ZooKeeperCoordinator { shared })
    }

    fn check_version(path: &NodePath, version: Option<u64>) -> Result<Option<i32>> {
        version
            .map(|v| i32::try_from(v).map_err(|_| Error::bad_version(path, v)))
            .transpose()
    }

    /// How to create a node at `path`: its mode and the ACL it gets.
    fn options<'a>(acls: &'a NodeAcls, path: &NodePath, mode: CreateMode) -> zk::CreateOptions<'a> {
        let zk_mode = match mode {
            CreateMode::Persistent => zk::CreateMode::Persistent,
            CreateMode::PersistentSequential => zk::CreateMode::PersistentSequential,
            CreateMode::Ephemeral => zk::CreateMode::Ephemeral,
            CreateMode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
        };
        zk_mode.with_acls(acls.for_node(path, mode.is_ephemeral()))
    }

    /// Creates the missing ancestors of `path`, outermost first, each with
    /// its own ACL. Existing ones are left alone: creating a node that
    /// exists still needs the right to create in its parent, which a
    /// registrar, say, has under `/discovery` but not at the root.
    async fn create_parents(client: &zk::Client, acls: &NodeAcls, path: &NodePath) -> Result<()> {
        for ancestor in path.ancestors() {
            let exists = client
                .check_stat(ancestor.as_str())
                .await
                .map_err(|e| from_zk(e, ancestor.as_str()))?;
            if exists.is_some() {
                continue;
            }
            let options = Self::options(acls, &ancestor, CreateMode::Persistent);
            match client.create(ancestor.as_str(), &[], &options).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(from_zk(e, ancestor.as_str())),
            }
        }
        Ok(())
    }

    fn check_op(&self, op: &Op) -> Result<()> {
        let limit = self.shared.config.max_data_size;
        match op {
            Op::Create { path, data, .. } => {
                if path.is_root() {
                    return Err(Error::invalid("the root node cannot be created"));
                }
                check_data_size(path, data, limit)
            }
            Op::Set { path, data, .. } => check_data_size(path, data, limit),
            Op::Delete { path, .. } if path.is_root() => {
                Err(Error::invalid("the root node cannot be deleted"))
            }
            _ => Ok(()),
        }
    }

    /// The transaction's operations, preceded where needed by creates of
    /// missing parents (`None` marks those).
    async fn with_missing_parents(
        &self,
        client: &zk::Client,
        ops: &[Op],
    ) -> Result<Vec<(Option<usize>, Op)>> {
        let mut planned = Vec::with_capacity(ops.len());
        let mut known: HashSet<NodePath> = HashSet::new();
        for (index, op) in ops.iter().enumerate() {
            if let Op::Create { path, .. } = op {
                for ancestor in path.ancestors() {
                    if known.contains(&ancestor) {
                        continue;
                    }
                    let exists = client
                        .check_stat(ancestor.as_str())
                        .await
                        .map_err(|e| from_zk(e, ancestor.as_str()).at_operation(index))?;
                    if exists.is_none() {
                        planned.push((
                            None,
                            Op::Create {
                                path: ancestor.clone(),
                                data: Vec::new(),
                                mode: CreateMode::Persistent,
                            },
                        ));
                    }
                    known.insert(ancestor);
                }
            }
            planned.push((Some(index), op.clone()));
            // A node this transaction creates is the parent of later ones,
            // not a missing parent to plan again.
            if let Op::Create { path, mode, .. } = op {
                if !mode.is_sequential() {
                    known.insert(path.clone());
                }
            }
        }
        Ok(planned)
    }
}

impl Drop for ZooKeeperCoordinator {
    fn drop(&mut self) {
        self.shared.shut_down();
        self.shared.take_client();
    }
}

fn stat(s: &zk::Stat) -> Stat {
    Stat {
        version: u64::try_from(s.version).unwrap_or(0),
        created_revision: u64::try_from(s.czxid).unwrap_or(0),
        modified_revision: u64::try_from(s.mzxid).unwrap_or(0),
        ephemeral_owner: (s.ephemeral_owner != 0).then_some(s.ephemeral_owner as u64),
    }
}

#[async_trait]
impl Coordinator for ZooKeeperCoordinator {
    async fn create(&self, path: &NodePath, data: &[u8], mode: CreateMode) -> Result<NodePath> {
        self.check_op(&Op::Create {
            path: path.clone(),
            data: Vec::new(),
            mode,
        })?;
        check_data_size(path, data, self.shared.config.max_data_size)?;
        let client = self.shared.client()?;
        let acls = self.shared.acls(&client).await?;
        let options = Self::options(&acls, path, mode);
        let mut created_parents = false;
        loop {
            match client.create(path.as_str(), data, &options).await {
                Ok((_, sequence)) if mode.is_sequential() => {
                    return NodePath::parse(&format!("{path}{sequence}"))
                }
                Ok(_) => return Ok(path.clone()),
                Err(zk::Error::NoNode) if !created_parents => {
                    Self::create_parents(&client, &acls, path).await?;
                    created_parents = true;
                }
                Err(e) => return Err(from_zk(e, path.as_str())),
            }
        }
    }

    async fn get(&self, path: &NodePath) -> Result<Node> {
        let client = self.shared.client()?;
        let (data, s) = client
            .get_data(path.as_str())
            .await
            .map_err(|e| from_zk(e, path.as_str()))?;
        Ok(Node {
            data,
            stat: stat(&s),
        })
    }

    async fn sync(&self, path: &NodePath) -> Result<()> {
        let client = self.shared.client()?;
        match client.sync(path.as_str()).await {
            // The leader orders the sync whether or not the node exists.
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(from_zk(e, path.as_str())),
        }
    }

    async fn exists(&self, path: &NodePath) -> Result<Option<Stat>> {
        let client = self.shared.client()?;
        let s = client
            .check_stat(path.as_str())
            .await
            .map_err(|e| from_zk(e, path.as_str()))?;
        Ok(s.as_ref().map(stat))
    }

    async fn set(
        &self,
        path: &NodePath,
        data: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Stat> {
        check_data_size(path, data, self.shared.config.max_data_size)?;
        let version = Self::check_version(path, expected_version)?;
        let client = self.shared.client()?;
        let s = client
            .set_data(path.as_str(), data, version)
            .await
            .map_err(|e| match e {
                zk::Error::BadVersion => {
                    Error::bad_version(path, expected_version.unwrap_or(0)).with_source(e)
                }
                e => from_zk(e, path.as_str()),
            })?;
        Ok(stat(&s))
    }

    async fn delete(&self, path: &NodePath, expected_version: Option<u64>) -> Result<()> {
        self.check_op(&Op::Delete {
            path: path.clone(),
            expected_version,
        })?;
        let version = Self::check_version(path, expected_version)?;
        let client = self.shared.client()?;
        client
            .delete(path.as_str(), version)
            .await
            .map_err(|e| match e {
                zk::Error::BadVersion => {
                    Error::bad_version(path, expected_version.unwrap_or(0)).with_source(e)
                }
                e => from_zk(e, path.as_str()),
            })
    }

    async fn children(&self, path: &NodePath) -> Result<Vec<String>> {
        let client = self.shared.client()?;
        let mut names = client
            .list_children(path.as_str())
            .await
            .map_err(|e| from_zk(e, path.as_str()))?;
        names.sort();
        Ok(names)
    }

    async fn transaction(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        for (index, op) in ops.iter().enumerate() {
            self.check_op(op).map_err(|e| e.at_operation(index))?;
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.shared.client()?;
        let acls = if ops.iter().any(|op| matches!(op, Op::Create { .. })) {
            self.shared.acls(&client).await?
        } else {
            Arc::new(NodeAcls::Open)
        };
        let mut plan: Vec<(Option<usize>, Op)> = ops
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, op)| (Some(i), op))
            .collect();
        let mut planned_parents = false;
        // Parents created concurrently by others make a planned parent create
        // fail; a few fresh plans settle that.
        for _ in 0..5 {
            let mut writer = client.new_multi_writer();
            for (index, op) in &plan {
                let added = match op {
                    Op::Check { path, version } => {
                        let v = Self::check_version(path, Some(*version))?.unwrap_or(0);
                        writer.add_check_version(path.as_str(), v)
                    }
                    Op::Create { path, data, mode } => {
                        writer.add_create(path.as_str(), data, &Self::options(&acls, path, *mode))
                    }
                    Op::Set {
                        path,
                        data,
                        expected_version,
                    } => writer.add_set_data(
                        path.as_str(),
                        data,
                        Self::check_version(path, *expected_version)?,
                    ),
                    Op::Delete {
                        path,
                        expected_version,
                    } => writer
                        .add_delete(path.as_str(), Self::check_version(path, *expected_version)?),
                };
                added.map_err(|e| {
                    let err = from_zk(e, op.path().as_str());
                    match index {
                        Some(i) => err.at_operation(*i),
                        None => err,
                    }
                })?;
            }
            match writer.commit().await {
                Ok(results) => {
                    let mut out = Vec::with_capacity(ops.len());
                    for ((index, _), result) in plan.iter().zip(results) {
                        if index.is_none() {
                            continue;
                        }
                        out.push(match result {
                            zk::MultiWriteResult::Check => OpResult::Checked,
                            zk::MultiWriteResult::Delete => OpResult::Deleted,
                            zk::MultiWriteResult::Create { path, .. } => {
                                OpResult::Created(NodePath::parse(&path)?)
                            }
                            zk::MultiWriteResult::SetData { stat: s } => OpResult::Set(stat(&s)),
                            other => {
                                return Err(Error::new(
                                    ErrorKind::Backend,
                                    format!("unexpected multi result {other:?}"),
                                ))
                            }
                        });
                    }
                    return Ok(out);
                }
                Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                    let (user_index, op) = &plan[index];
                    match (user_index, source) {
                        (Some(_), zk::Error::NoNode)
                            if matches!(op, Op::Create { .. }) && !planned_parents =>
                        {
                            plan = self.with_missing_parents(&client, &ops).await?;
                            planned_parents = true;
                        }
                        (Some(i), source) => {
                            let err = match (source, op) {
                                (zk::Error::BadVersion, Op::Check { path, version }) => {
                                    Error::bad_version(path, *version)
                                        .with_source(zk::Error::BadVersion)
                                }
                                (source, op) => from_zk(source, op.path().as_str()),
                            };
                            return Err(err.at_operation(*i));
                        }
                        // A planned parent appeared meanwhile: plan again.
                        (None, zk::Error::NodeExists) => {
                            plan = self.with_missing_parents(&client, &ops).await?;
                        }
                        (None, source) => {
                            let next_user = plan[index..].iter().find_map(|(i, _)| *i).unwrap_or(0);
                            return Err(from_zk(source, op.path().as_str()).at_operation(next_user));
                        }
                    }
                }
                Err(zk::MultiWriteError::RequestFailed { source }) => {
                    return Err(from_zk(source, "(transaction)"))
                }
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "parents of the transaction's nodes kept changing; try again",
        ))
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
        self.shared.client().ok().map(|c| c.session_id().0 as u64)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full().with_max_data_size(self.shared.config.max_data_size)
    }

    async fn close(&self) -> Result<()> {
        let Some(client) = self.shared.take_client() else {
            self.shared.shut_down();
            return Ok(());
        };
        let mut states = client.state_watcher();
        self.shared.shut_down();
        drop(client);
        // The session closes once the last handle is gone; wait for the
        // server to confirm so that ephemeral nodes are gone on return.
        let closed = async { while !states.changed().await.is_terminated() {} };
        let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
        Ok(())
    }
}

//! `MetaConfigManager`: metaconfig records and the dependency graph, in the
//! coordinator.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use super::record::{is_dependency, MetaConfig, DEPENDENCY_SUFFIX};
use crate::config::ConfigName;
use crate::coordinator::{Coordinator, CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;

/// The dependency every monitor subscribes to, when it exists.
pub const BASE_DEPENDENCY: &str = "base.dep";
/// Where metaconfig records live: one node per name.
pub const METACONFIG_ROOT: &str = "/metaconfig/config";
/// Where dependencies live: one node per dependency, one child per member.
pub const DEPENDENCY_ROOT: &str = "/metaconfig/dependency";
/// Attempts at a multi-node change that raced with another writer.
const MAX_ATTEMPTS: usize = 20;

/// Everything a subscription to a dependency reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The metaconfigs to sync, sorted by name, each once.
    pub metaconfigs: Vec<MetaConfig>,
    /// The dependencies visited (the subscribed one, `base.dep` when it
    /// exists, and every nested one), sorted.
    pub dependencies: Vec<ConfigName>,
    /// Members named in a dependency that do not exist (yet), sorted.
    pub missing: Vec<ConfigName>,
}

/// Creates, removes and lists metaconfigs and dependencies, and resolves
/// what a subscription reaches (design.md §5).
///
/// Layout: a metaconfig record is the node `/metaconfig/config/<name>`; a
/// dependency is the node `/metaconfig/dependency/<name>.dep` whose
/// children are named after its members (metaconfigs or dependencies).
/// Dependencies nest; cycles are tolerated (each is visited once).
#[derive(Debug, Clone)]
pub struct MetaConfigManager {
    coordinator: Arc<dyn Coordinator>,
}

fn record_path(name: &ConfigName) -> Result<NodePath> {
    NodePath::parse(METACONFIG_ROOT)?.join(name.as_str())
}

fn dependency_path(dependency: &ConfigName) -> Result<NodePath> {
    NodePath::parse(DEPENDENCY_ROOT)?.join(dependency.as_str())
}

fn require_dependency_name(name: &ConfigName) -> Result<()> {
    if is_dependency(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{name} is not a dependency name: dependency names end in {DEPENDENCY_SUFFIX}"
        )))
    }
}

fn is_race(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BadVersion
            | ErrorKind::NotFound
            | ErrorKind::NotEmpty
            | ErrorKind::AlreadyExists
    )
}

impl MetaConfigManager {
    /// A manager over `coordinator`.
    pub fn new(coordinator: Arc<dyn Coordinator>) -> Self {
        MetaConfigManager { coordinator }
    }

    /// The coordinator node of `name`'s record (for watching it).
    pub fn record_path(name: &ConfigName) -> Result<NodePath> {
        record_path(name)
    }

    /// The coordinator node of a dependency (for watching its members).
    pub fn dependency_path(dependency: &ConfigName) -> Result<NodePath> {
        require_dependency_name(dependency)?;
        dependency_path(dependency)
    }

    /// Stores `metaconfig`. Creating one that exists with the same content
    /// succeeds; with different content it is `AlreadyExists`. Creating a
    /// serverset's metaconfig also creates the serverset's node, where
    /// members register.
    pub async fn create(&self, metaconfig: &MetaConfig) -> Result<()> {
        let path = record_path(&metaconfig.name)?;
        let json = metaconfig.to_json();
        match self
            .coordinator
            .create(&path, &json, CreateMode::Persistent)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if self.get(&metaconfig.name).await?.as_ref() != Some(metaconfig) {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "metaconfig {} already exists with different settings",
                            metaconfig.name
                        ),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
        if metaconfig.kind == super::MetaConfigKind::Serverset {
            match self
                .coordinator
                .create(&metaconfig.node_path, b"", CreateMode::Persistent)
                .await
            {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The metaconfig of `name`, if any.
    pub async fn get(&self, name: &ConfigName) -> Result<Option<MetaConfig>> {
        match self.coordinator.get(&record_path(name)?).await {
            Ok(node) => MetaConfig::from_json(&node.data)
                .map(Some)
                .map_err(|e| Error::invalid(format!("metaconfig {name}: {}", e.message()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every metaconfig name, sorted.
    pub async fn list(&self) -> Result<Vec<ConfigName>> {
        match self
            .valid_children(&NodePath::parse(METACONFIG_ROOT)?)
            .await
        {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        }
    }

    /// Removes `name`'s metaconfig and its membership in every dependency,
    /// in one transaction; whether there was anything to remove.
    pub async fn remove(&self, name: &ConfigName) -> Result<bool> {
        let path = record_path(name)?;
        for _ in 0..MAX_ATTEMPTS {
            let mut ops = self.references_to(name).await?;
            if self.coordinator.exists(&path).await?.is_some() {
                ops.push(Op::Delete {
                    path: path.clone(),
                    expected_version: None,
                });
            }
            match self.run_removal(ops).await {
                Err(e) if is_race(&e) => continue,
                other => return other,
            }
        }
        Err(Error::unavailable(format!(
            "removing {name} kept racing with other changes"
        )))
    }

    /// Creates an empty dependency (a name ending in `.dep`). Creating one
    /// that exists succeeds.
    pub async fn create_dependency(&self, dependency: &ConfigName) -> Result<()> {
        require_dependency_name(dependency)?;
        match self
            .coordinator
            .create(&dependency_path(dependency)?, b"", CreateMode::Persistent)
            .await
        {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes a dependency, its member list, and its membership in other
    /// dependencies, in one transaction; whether there was anything to
    /// remove.
    pub async fn remove_dependency(&self, dependency: &ConfigName) -> Result<bool> {
        require_dependency_name(dependency)?;
        let path = dependency_path(dependency)?;
        for _ in 0..MAX_ATTEMPTS {
            let mut ops = self.references_to(dependency).await?;
            match self.coordinator.children(&path).await {
                Ok(members) => {
                    for member in members {
                        ops.push(Op::Delete {
                            path: path.join(&member)?,
                            expected_version: None,
                        });
                    }
                    ops.push(Op::Delete {
                        path: path.clone(),
                        expected_version: None,
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            match self.run_removal(ops).await {
                Err(e) if is_race(&e) => continue,
                other => return other,
            }
        }
        Err(Error::unavailable(format!(
            "removing {dependency} kept racing with other changes"
        )))
    }

    /// Every dependency name, sorted.
    pub async fn list_dependencies(&self) -> Result<Vec<ConfigName>> {
        match self
            .valid_children(&NodePath::parse(DEPENDENCY_ROOT)?)
            .await
        {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            other => other,
        }
    }

    /// Adds `member` (a metaconfig or another dependency) to `dependency`;
    /// whether it was not there already. Both must exist: `NotFound`
    /// otherwise, and nothing changes.
    pub async fn add_to_dependency(
        &self,
        dependency: &ConfigName,
        member: &ConfigName,
    ) -> Result<bool> {
        require_dependency_name(dependency)?;
        let dependency_node = dependency_path(dependency)?;
        let member_node = if is_dependency(member) {
            dependency_path(member)?
        } else {
            record_path(member)?
        };
        for _ in 0..MAX_ATTEMPTS {
            let Some(dependency_stat) = self.coordinator.exists(&dependency_node).await? else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("dependency {dependency} does not exist: create it first"),
                ));
            };
            let Some(member_stat) = self.coordinator.exists(&member_node).await? else {
                let what = if is_dependency(member) {
                    "dependency"
                } else {
                    "metaconfig"
                };
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("{what} {member} does not exist: create it first"),
                ));
            };
            // Checks keep a concurrent removal of either from slipping in
            // between the lookups and the create.
            let ops = vec![
                Op::Check {
                    path: dependency_node.clone(),
                    version: dependency_stat.version,
                },
                Op::Check {
                    path: member_node.clone(),
                    version: member_stat.version,
                },
                Op::Create {
                    path: dependency_node.join(member.as_str())?,
                    data: Vec::new(),
                    mode: CreateMode::Persistent,
                },
            ];
            match self.coordinator.transaction(ops).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
                Err(e) if is_race(&e) => continue,
                Err(e) => return Err(e.without_operation_index()),
            }
        }
        Err(Error::unavailable(format!(
            "adding {member} to {dependency} kept racing with other changes"
        )))
    }

    /// Removes `member` from `dependency`; whether it was there.
    pub async fn remove_from_dependency(
        &self,
        dependency: &ConfigName,
        member: &ConfigName,
    ) -> Result<bool> {
        require_dependency_name(dependency)?;
        let path = dependency_path(dependency)?.join(member.as_str())?;
        match self.coordinator.delete(&path, None).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The direct members of `dependency`, sorted. `NotFound` if it does
    /// not exist.
    pub async fn members(&self, dependency: &ConfigName) -> Result<Vec<ConfigName>> {
        require_dependency_name(dependency)?;
        match self.valid_children(&dependency_path(dependency)?).await {
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::new(
                ErrorKind::NotFound,
                format!("dependency {dependency} does not exist"),
            )),
            other => other,
        }
    }

    /// Everything a monitor subscribed to `dependency` syncs: its members,
    /// recursively, plus `base.dep`'s when that exists. Cycles are
    /// tolerated; members that do not exist are listed in `missing`.
    /// `NotFound` if `dependency` itself does not exist.
    pub async fn resolve(&self, dependency: &ConfigName) -> Result<Subscription> {
        require_dependency_name(dependency)?;
        let base = ConfigName::parse(BASE_DEPENDENCY)?;
        let mut queue = VecDeque::from([(dependency.clone(), true)]);
        if *dependency != base {
            queue.push_back((base, false));
        }
        let mut visited = BTreeSet::new();
        let mut metaconfigs = Vec::new();
        let mut seen_metaconfigs = BTreeSet::new();
        let mut missing = BTreeSet::new();
        while let Some((dep, required)) = queue.pop_front() {
            if !visited.insert(dep.clone()) {
                continue;
            }
            let members = match self.members(&dep).await {
                Ok(members) => members,
                Err(e) if e.kind() == ErrorKind::NotFound && required => return Err(e),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if dep.as_str() != BASE_DEPENDENCY {
                        missing.insert(dep.clone());
                    }
                    visited.remove(&dep);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for member in members {
                if is_dependency(&member) {
                    queue.push_back((member, false));
                } else if seen_metaconfigs.insert(member.clone()) {
                    match self.get(&member).await {
                        Ok(Some(metaconfig)) => metaconfigs.push(metaconfig),
                        Ok(None) => {
                            missing.insert(member);
                        }
                        Err(e) if e.kind() == ErrorKind::InvalidArgument => {
                            tracing::warn!(metaconfig = %member, error = %e, "skipping an invalid metaconfig");
                            missing.insert(member);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        metaconfigs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Subscription {
            metaconfigs,
            dependencies: visited.into_iter().collect(),
            missing: missing.into_iter().collect(),
        })
    }

    /// Children of `path` that are valid names; others (written by
    /// something else) are logged and skipped.
    async fn valid_children(&self, path: &NodePath) -> Result<Vec<ConfigName>> {
        let children = match self.coordinator.children(path).await {
            Ok(children) => children,
            Err(e) => return Err(e),
        };
        let mut names: Vec<ConfigName> = children
            .iter()
            .filter_map(|child| match ConfigName::parse(child) {
                Ok(name) => Some(name),
                Err(e) => {
                    tracing::warn!(node = %path, child, error = %e, "skipping a child that is not a valid name");
                    None
                }
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes of every dependency entry that lists `name`.
    async fn references_to(&self, name: &ConfigName) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        for dependency in self.list_dependencies().await? {
            let reference = dependency_path(&dependency)?.join(name.as_str())?;
            if self.coordinator.exists(&reference).await?.is_some() {
                ops.push(Op::Delete {
                    path: reference,
                    expected_version: None,
                });
            }
        }
        Ok(ops)
    }

    /// Runs a removal's deletes as one transaction; whether there were any.
    async fn run_removal(&self, ops: Vec<Op>) -> Result<bool> {
        if ops.is_empty() {
            return Ok(false);
        }
        self.coordinator
            .transaction(ops)
            .await
            .map_err(Error::without_operation_index)?;
        Ok(true)
    }
}

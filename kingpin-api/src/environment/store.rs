//! [`Environments`]: a service's tree of environments, their contents and
//! their materialized views, over the [`ConfigStore`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::try_join_all;
use serde_json::json;

use super::merge::{content_bytes, merge_chain, parse_content, Content};
use super::names::{EnvPath, ServiceName};
use crate::backoff::Backoff;
use crate::config::{
    ChangeInfo, ConfigName, ConfigRecord, ConfigStore, PreparedWrite, SourceVersion,
};
use crate::coordinator::{Coordinator, CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};

/// Attempts a write makes before giving up under contention.
const MAX_ATTEMPTS: usize = 200;
/// Verified contents kept in memory, by blob key (blobs never change).
const CONTENT_CACHE_ENTRIES: usize = 4096;

/// How long a writer that lost a race waits before re-reading: full jitter
/// from 2 ms, doubling to at most 64 ms (as `ConfigStore::update`).
pub(super) fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(2), Duration::from_millis(64))
}

/// Whether `e` means another writer changed what a transaction checked:
/// re-read and try again.
pub(super) fn is_race(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BadVersion
            | ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::NotEmpty
    )
}

/// One environment as stored: its own content and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// Where it is in the tree.
    pub path: EnvPath,
    /// Its content's current record (version, author, message…).
    pub record: ConfigRecord,
    /// Its own content.
    pub content: Content,
    /// The record node's version, for compare-and-set.
    pub node_version: u64,
}

/// One environment's materialized view.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The environment.
    pub path: EnvPath,
    /// The view's record; `sources` names the environment versions merged.
    pub record: ConfigRecord,
    /// The merged content.
    pub content: Content,
}

/// What a write changed: the environment's new record, and the new record
/// of every view rebuilt with it (its own and its descendants').
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentWrite {
    /// The environment's record (unchanged when there was nothing to do).
    pub record: ConfigRecord,
    /// The views committed with it, parents first.
    pub views: Vec<(EnvPath, ConfigRecord)>,
}

/// A service's environments (design.md §9), generic over the coordinator
/// and blob store behind its [`ConfigStore`].
///
/// Each environment's own content (a JSON object) is the config
/// `environments.<service>.conf[.<env>…]`, with history, sha256 checks and
/// rollback; its view, the merge of its chain's contents by JSON Merge
/// Patch, is the config `environments.<service>.views[.<env>…]`, whose
/// record names the environment versions it merged. A write rebuilds the
/// views of the environment and its descendants and commits them in one
/// coordinator transaction that checks the version of every environment
/// merged, so concurrent writers retry instead of clobbering a view.
/// Host associations are one node per host (see
/// [`associate`](Self::associate)).
#[derive(Debug, Clone)]
pub struct Environments {
    pub(super) store: ConfigStore,
    pub(super) coordinator: Arc<dyn Coordinator>,
    contents: Arc<Mutex<HashMap<String, Arc<Content>>>>,
}

/// The data of a service's node; its version counts shape changes.
fn service_record(service: &ServiceName) -> Vec<u8> {
    json!({ "service": service.as_str() })
        .to_string()
        .into_bytes()
}

pub(super) fn missing_service(service: &ServiceName) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("service {service} does not exist (create its root environment \"/\" first)"),
    )
}

pub(super) fn missing_environment(service: &ServiceName, env: &EnvPath) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("environment {env} of service {service} does not exist"),
    )
}

impl Environments {
    /// The environments kept in `store`.
    pub fn new(store: ConfigStore) -> Self {
        Environments {
            coordinator: store.coordinator().clone(),
            store,
            contents: Arc::default(),
        }
    }

    /// The config store underneath.
    pub fn store(&self) -> &ConfigStore {
        &self.store
    }

    /// The services that have environments, sorted.
    pub async fn services(&self) -> Result<Vec<ServiceName>> {
        let root = crate::NodePath::parse(super::names::ENVIRONMENTS_ROOT)?;
        match self.coordinator.children(&root).await {
            Ok(names) => Ok(names
                .iter()
                .filter_map(|n| ServiceName::parse(n).ok())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The service node's version, or `NotFound` naming the service.
    pub(super) async fn service_version(&self, service: &ServiceName) -> Result<u64> {
        match self.coordinator.get(&service.node_path()?).await {
            Ok(node) => Ok(node.stat.version),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(missing_service(service)),
            Err(e) => Err(e),
        }
    }

    /// The verified content a record points at, from memory when this
    /// store read it before (blobs never change).
    async fn content(&self, name: &ConfigName, record: &ConfigRecord) -> Result<Arc<Content>> {
        if let Some(content) = self
            .contents
            .lock()
            .ok()
            .and_then(|c| c.get(&record.blob_key).cloned())
        {
            return Ok(content);
        }
        let bytes = self.store.content(name, record).await?;
        let content = Arc::new(parse_content(
            &format!("{name} version {}", record.version),
            &bytes,
        )?);
        if let Ok(mut cache) = self.contents.lock() {
            if cache.len() >= CONTENT_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(record.blob_key.clone(), content.clone());
        }
        Ok(content)
    }

    /// Keeps contents just written, by blob key, so the next write and
    /// read need no blob get.
    fn remember(&self, written: Vec<(String, Content)>) {
        if let Ok(mut cache) = self.contents.lock() {
            if cache.len() + written.len() > CONTENT_CACHE_ENTRIES {
                cache.clear();
            }
            for (key, content) in written {
                cache.insert(key, Arc::new(content));
            }
        }
    }

    /// One environment's current content, if it exists.
    pub async fn read(&self, service: &ServiceName, env: &EnvPath) -> Result<Option<Environment>> {
        let name = service.content_config(env)?;
        let Some((record, node_version)) = self.store.record(&name).await? else {
            return Ok(None);
        };
        let content = self.content(&name, &record).await?;
        Ok(Some(Environment {
            path: env.clone(),
            record,
            content: (*content).clone(),
            node_version,
        }))
    }

    /// One environment's content at `version`, if that version exists.
    pub async fn read_at(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        version: u64,
    ) -> Result<Option<(ConfigRecord, Content)>> {
        let name = service.content_config(env)?;
        let Some(record) = self.store.record_at(&name, version).await? else {
            return Ok(None);
        };
        let content = self.content(&name, &record).await?;
        Ok(Some((record, (*content).clone())))
    }

    /// An environment's current view, if the environment exists.
    pub async fn view(&self, service: &ServiceName, env: &EnvPath) -> Result<Option<View>> {
        let name = service.view_config(env)?;
        let Some((record, _)) = self.store.record(&name).await? else {
            return Ok(None);
        };
        let content = self.content(&name, &record).await?;
        Ok(Some(View {
            path: env.clone(),
            record,
            content: (*content).clone(),
        }))
    }

    /// An environment's view at `version` (for pinned hosts), if kept.
    pub async fn view_at(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        version: u64,
    ) -> Result<Option<View>> {
        let name = service.view_config(env)?;
        let Some(record) = self.store.record_at(&name, version).await? else {
            return Ok(None);
        };
        let content = self.content(&name, &record).await?;
        Ok(Some(View {
            path: env.clone(),
            record,
            content: (*content).clone(),
        }))
    }

    /// The direct children of `env`, sorted.
    pub async fn children(&self, service: &ServiceName, env: &EnvPath) -> Result<Vec<EnvPath>> {
        let node = service.content_config(env)?;
        match self.coordinator.children(node.node_path()).await {
            Ok(names) => Ok(names.iter().filter_map(|n| env.child(n).ok()).collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `env` and every environment below it, parents before children.
    pub async fn subtree(&self, service: &ServiceName, env: &EnvPath) -> Result<Vec<EnvPath>> {
        let mut all = vec![env.clone()];
        let mut level = vec![env.clone()];
        while !level.is_empty() {
            let children = try_join_all(level.iter().map(|e| self.children(service, e))).await?;
            level = children.into_iter().flatten().collect();
            all.extend(level.iter().cloned());
        }
        all.sort();
        Ok(all)
    }

    /// Every environment of the service, parents before children.
    pub async fn tree(&self, service: &ServiceName) -> Result<Vec<EnvPath>> {
        self.service_version(service).await?;
        self.subtree(service, &EnvPath::root()).await
    }

    /// The environments from the root to `env`, each read; `NotFound` names
    /// the first one missing.
    async fn read_chain(&self, service: &ServiceName, env: &EnvPath) -> Result<Vec<Environment>> {
        let chain = env.chain();
        let read = try_join_all(chain.iter().map(|e| self.read(service, e))).await?;
        chain
            .iter()
            .zip(read)
            .map(|(path, found)| found.ok_or_else(|| missing_environment(service, path)))
            .collect()
    }

    /// Creates an environment with `content`: the service itself when
    /// `env` is the root. Its parent must exist; the new view is committed
    /// with it, in one transaction that checks every ancestor's version.
    ///
    /// Errors: `AlreadyExists`; `NotFound` for a missing service or parent;
    /// `TooLarge` for a content or view over the store's limit, before
    /// anything is written.
    pub async fn create(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        content: Content,
        change: &ChangeInfo,
    ) -> Result<ConfigRecord> {
        let content_name = service.content_config(env)?;
        let view_name = service.view_config(env)?;
        let members = service.members_path(env)?;
        let mut backoff = backoff();
        for _ in 0..MAX_ATTEMPTS {
            let (mut ops, ancestors) = if env.is_root() {
                let create_service = Op::Create {
                    path: service.node_path()?,
                    data: service_record(service),
                    mode: CreateMode::Persistent,
                };
                (vec![create_service], Vec::new())
            } else {
                let shape = self.service_version(service).await?;
                let parent = env.parent().unwrap_or_else(EnvPath::root);
                let ancestors = match self.read_chain(service, &parent).await {
                    Ok(chain) => chain,
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        return Err(Error::new(
                            ErrorKind::NotFound,
                            format!("cannot create {env} in service {service}: {}", e.message()),
                        ))
                    }
                    Err(e) => return Err(e),
                };
                if self.store.record(&content_name).await?.is_some() {
                    return Err(already_exists(service, env));
                }
                let mut ops = vec![Op::Set {
                    path: service.node_path()?,
                    data: service_record(service),
                    expected_version: Some(shape),
                }];
                ops.extend(
                    ancestors
                        .iter()
                        .map(|a| check_environment(service, a))
                        .collect::<Result<Vec<_>>>()?,
                );
                (ops, ancestors)
            };
            ops.push(Op::Create {
                path: members.clone(),
                data: Vec::new(),
                mode: CreateMode::Persistent,
            });
            let view = merge_chain(ancestors.iter().map(|a| &a.content).chain([&content]));
            let (content_bytes_, view_bytes) = (content_bytes(&content), content_bytes(&view));
            self.check_sizes(&[(&content_name, &content_bytes_), (&view_name, &view_bytes)])?;
            let write = self
                .store
                .prepare_write(&content_name, content_bytes_, change, None)
                .await?;
            let mut sources: Vec<SourceVersion> = ancestors
                .iter()
                .map(|a| source(service, &a.path, a.record.version))
                .collect::<Result<_>>()?;
            sources.push(source(service, env, write.record().version)?);
            let view_write = self
                .store
                .prepare_write(&view_name, view_bytes, change, None)
                .await?
                .with_sources(sources);
            match self.store.commit(ops, vec![write, view_write]).await {
                Ok(mut records) => return Ok(records.swap_remove(0)),
                Err(e)
                    if env.is_root()
                        && e.kind() == ErrorKind::AlreadyExists
                        && e.operation_index() == Some(0) =>
                {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("service {service} already exists"),
                    ))
                }
                Err(e) if is_race(&e) => tokio::time::sleep(backoff.next_delay()).await,
                Err(e) => return Err(e),
            }
        }
        Err(gave_up(service, env))
    }

    /// Replaces an environment's own content; with `if_version`, only if
    /// the environment is at that version (`BadVersion` otherwise, and
    /// nothing is written).
    pub async fn set(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        content: Content,
        change: &ChangeInfo,
        if_version: Option<u64>,
    ) -> Result<EnvironmentWrite> {
        self.write(service, env, change, |current| {
            if let Some(expected) = if_version {
                if current.record.version != expected {
                    return Err(Error::new(
                        ErrorKind::BadVersion,
                        format!(
                            "environment {env} of service {service} is at version {}, not {expected}; nothing was written",
                            current.record.version
                        ),
                    ));
                }
            }
            Ok(Some(content.clone()))
        })
        .await
    }

    /// Read-modify-write of an environment's own content: `change_content`
    /// gets the current content and returns the new one (`None`: nothing
    /// to change). Retried, with a fresh read, whenever another writer
    /// changed the environment, an ancestor, a descendant or the tree.
    pub async fn update<F>(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        change: &ChangeInfo,
        mut change_content: F,
    ) -> Result<EnvironmentWrite>
    where
        F: FnMut(&Content) -> Result<Option<Content>>,
    {
        self.write(service, env, change, |current| {
            change_content(&current.content)
        })
        .await
    }

    /// Writes an old version's content as a new version (and rebuilds the
    /// views).
    pub async fn rollback(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        version: u64,
        change: &ChangeInfo,
    ) -> Result<EnvironmentWrite> {
        let (_, content) = self.read_at(service, env, version).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("environment {env} of service {service} has no version {version}"),
            )
        })?;
        self.set(service, env, content, change, None).await
    }

    async fn write<F>(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        change: &ChangeInfo,
        mut decide: F,
    ) -> Result<EnvironmentWrite>
    where
        F: FnMut(&Environment) -> Result<Option<Content>>,
    {
        let mut backoff = backoff();
        for _ in 0..MAX_ATTEMPTS {
            let (shape, chain) =
                futures::try_join!(self.service_version(service), self.read_chain(service, env))?;
            let Some(current) = chain.last() else {
                return Err(missing_environment(service, env));
            };
            let Some(content) = decide(current)? else {
                return Ok(EnvironmentWrite {
                    record: current.record.clone(),
                    views: Vec::new(),
                });
            };
            match self.rebuild(service, shape, &chain, content, change).await {
                Err(e) if is_race(&e) => tokio::time::sleep(backoff.next_delay()).await,
                other => return other,
            }
        }
        Err(gave_up(service, env))
    }

    /// Writes the last environment of `chain` with `content` and the views
    /// of it and of its descendants, in one transaction checking the tree's
    /// shape and every environment merged.
    async fn rebuild(
        &self,
        service: &ServiceName,
        shape: u64,
        chain: &[Environment],
        content: Content,
        change: &ChangeInfo,
    ) -> Result<EnvironmentWrite> {
        let Some((target, ancestors)) = chain.split_last() else {
            return Err(Error::invalid("an empty chain of environments"));
        };
        let below: Vec<EnvPath> = self
            .subtree(service, &target.path)
            .await?
            .into_iter()
            .skip(1)
            .collect();
        let view_paths: Vec<&EnvPath> = std::iter::once(&target.path).chain(&below).collect();
        let view_names = view_paths
            .iter()
            .map(|e| service.view_config(e))
            .collect::<Result<Vec<_>>>()?;
        let (descendants, view_records) = futures::try_join!(
            try_join_all(below.iter().map(|e| self.read(service, e))),
            try_join_all(view_names.iter().map(|n| self.store.record(n)))
        )?;
        let descendants: Vec<Environment> = descendants.into_iter().flatten().collect();
        if descendants.len() != below.len() {
            // One was deleted since the listing: a race like any other.
            return Err(Error::new(
                ErrorKind::NotFound,
                "an environment went away during the write",
            ));
        }

        // Every view, parents first, from the contents as they will be.
        let target_name = service.content_config(&target.path)?;
        let target_bytes = content_bytes(&content);
        let next_version = target.record.version + 1;
        let mut versions: BTreeMap<EnvPath, u64> = ancestors
            .iter()
            .map(|a| (a.path.clone(), a.record.version))
            .collect();
        versions.insert(target.path.clone(), next_version);
        versions.extend(
            descendants
                .iter()
                .map(|d| (d.path.clone(), d.record.version)),
        );
        let mut views: BTreeMap<EnvPath, Content> = BTreeMap::new();
        let parent_view = merge_chain(ancestors.iter().map(|a| &a.content));
        views.insert(target.path.clone(), merge_chain([&parent_view, &content]));
        for d in &descendants {
            let parent = d.path.parent().unwrap_or_else(EnvPath::root);
            let inherited = views.get(&parent).cloned().unwrap_or_default();
            views.insert(d.path.clone(), merge_chain([&inherited, &d.content]));
        }
        let view_bytes: Vec<_> = view_paths
            .iter()
            .map(|e| content_bytes(&views[*e]))
            .collect();
        let mut sizes = vec![(&target_name, &target_bytes)];
        sizes.extend(view_names.iter().zip(&view_bytes));
        self.check_sizes(&sizes)?;

        // Blobs first, in parallel; then one transaction.
        let target_write = self.store.prepare_write(
            &target_name,
            target_bytes,
            change,
            Some((&target.record, target.node_version)),
        );
        let view_writes = view_paths
            .iter()
            .zip(&view_names)
            .zip(view_bytes)
            .zip(&view_records)
            .map(|(((env, name), bytes), record)| {
                let sources = env
                    .chain()
                    .iter()
                    .map(|e| source(service, e, versions.get(e).copied().unwrap_or(0)))
                    .collect::<Result<Vec<_>>>();
                async move {
                    let expected = record.as_ref().map(|(r, v)| (r, *v));
                    Ok::<PreparedWrite, Error>(
                        self.store
                            .prepare_write(name, bytes, change, expected)
                            .await?
                            .with_sources(sources?),
                    )
                }
            });
        let (target_write, view_writes) =
            futures::try_join!(target_write, try_join_all(view_writes))?;
        let mut ops = vec![Op::Check {
            path: service.node_path()?,
            version: shape,
        }];
        for env in ancestors.iter().chain(&descendants) {
            ops.push(check_environment(service, env)?);
        }
        let mut writes = vec![target_write];
        writes.extend(view_writes);
        let mut written = vec![(writes[0].record().blob_key.clone(), content)];
        for (env, write) in view_paths.iter().zip(&writes[1..]) {
            if let Some(view) = views.remove(*env) {
                written.push((write.record().blob_key.clone(), view));
            }
        }
        let mut records = self.store.commit(ops, writes).await?.into_iter();
        self.remember(written);
        let record = records
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Backend, "no record committed"))?;
        Ok(EnvironmentWrite {
            record,
            views: view_paths.into_iter().cloned().zip(records).collect(),
        })
    }

    /// `TooLarge`, before anything is written, for content over the
    /// store's limit.
    pub(super) fn check_sizes(&self, contents: &[(&ConfigName, &bytes::Bytes)]) -> Result<()> {
        let limit = self.store.max_size();
        for (name, bytes) in contents {
            if bytes.len() > limit {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!("{name} would be {} bytes, over the limit of {limit} bytes; nothing was written", bytes.len()),
                ));
            }
        }
        Ok(())
    }
}

/// The check that `env` is still at the version read.
pub(super) fn check_environment(service: &ServiceName, env: &Environment) -> Result<Op> {
    Ok(Op::Check {
        path: service.content_config(&env.path)?.node_path().clone(),
        version: env.node_version,
    })
}

/// The source entry of `env` at `version` in a view's record.
pub(super) fn source(service: &ServiceName, env: &EnvPath, version: u64) -> Result<SourceVersion> {
    Ok(SourceVersion {
        config: service.content_config(env)?.as_str().to_owned(),
        version,
    })
}

fn already_exists(service: &ServiceName, env: &EnvPath) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("environment {env} of service {service} already exists"),
    )
}

pub(super) fn gave_up(service: &ServiceName, env: &EnvPath) -> Error {
    Error::unavailable(format!(
        "environment {env} of service {service}: gave up after {MAX_ATTEMPTS} conflicting attempts"
    ))
}

pub(super) const ATTEMPTS: usize = MAX_ATTEMPTS;

//! [`Environments`]: a service's tree of environments, their contents and
//! their materialized views, over the [`ConfigStore`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::try_join_all;
use serde_json::json;

use super::merge::{parse_content, Content};
use super::names::{EnvPath, ServiceName};
use crate::backoff::Backoff;
use crate::config::{ConfigName, ConfigRecord, ConfigStore, SourceVersion};
use crate::coordinator::{Coordinator, Op};
use crate::error::{Error, ErrorKind, Result};

/// Attempts a write makes before giving up under contention.
pub(super) const ATTEMPTS: usize = 200;
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
pub(super) fn service_record(service: &ServiceName) -> Vec<u8> {
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
    pub(super) fn remember(&self, written: Vec<(String, Content)>) {
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
    pub(super) async fn read_chain(
        &self,
        service: &ServiceName,
        env: &EnvPath,
    ) -> Result<Vec<Environment>> {
        let chain = env.chain();
        let read = try_join_all(chain.iter().map(|e| self.read(service, e))).await?;
        chain
            .iter()
            .zip(read)
            .map(|(path, found)| found.ok_or_else(|| missing_environment(service, path)))
            .collect()
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

pub(super) fn gave_up(service: &ServiceName, env: &EnvPath) -> Error {
    Error::unavailable(format!(
        "environment {env} of service {service}: gave up after {ATTEMPTS} conflicting attempts"
    ))
}

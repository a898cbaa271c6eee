//! Writing environments: creating one, and writing one's content with
//! the views it changes, in one transaction that checks every environment
//! merged.

use std::collections::BTreeMap;

use futures::future::try_join_all;

use super::merge::{content_bytes, merge_chain, Content};
use super::names::{EnvPath, ServiceName};
use super::store::{
    backoff, check_environment, gave_up, is_race, missing_environment, service_record, source,
    Environment, EnvironmentWrite, Environments, ATTEMPTS,
};
use crate::config::{ChangeInfo, ConfigRecord, PreparedWrite, SourceVersion};
use crate::coordinator::{CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};

impl Environments {
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
        for _ in 0..ATTEMPTS {
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
        for _ in 0..ATTEMPTS {
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
}

fn already_exists(service: &ServiceName, env: &EnvPath) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("environment {env} of service {service} already exists"),
    )
}

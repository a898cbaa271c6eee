//! A service as one JSON document (its tree, contents and associations),
//! written by `export` and recreated by `import`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::merge::{content_bytes, merge_chain, Content};
use super::names::{EnvPath, HostId, ServiceName};
use super::store::{source, Environments};
use crate::config::{ChangeInfo, PreparedWrite};
use crate::coordinator::{CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};

/// The format name an exported document carries.
pub const DOCUMENT_FORMAT: &str = "kingpin-environments/1";

/// One host's association in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// The environment (`/prod`).
    pub environment: String,
    /// The pinned view version, if any. View versions start over in the
    /// service an import creates, so an import drops pins (and says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_version: Option<u64>,
}

/// A service as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDocument {
    /// Always [`DOCUMENT_FORMAT`].
    pub format: String,
    /// The service's name.
    pub service: String,
    /// Each environment's own content, by path (`/`, `/prod`…).
    pub environments: BTreeMap<String, Content>,
    /// Each host's association, by host.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostEntry>,
}

/// What an import did beyond the document's plain content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Environments created, parents first.
    pub environments: Vec<EnvPath>,
    /// Hosts associated.
    pub hosts: usize,
    /// Hosts whose pin was dropped (view versions start over).
    pub dropped_pins: Vec<HostId>,
}

/// A document checked before any I/O: names, parents, associations.
struct CheckedDocument {
    service: ServiceName,
    environments: BTreeMap<EnvPath, Content>,
    hosts: BTreeMap<EnvPath, Vec<HostId>>,
    dropped_pins: Vec<HostId>,
}

fn check(document: &ServiceDocument) -> Result<CheckedDocument> {
    if document.format != DOCUMENT_FORMAT {
        return Err(Error::invalid(format!(
            "document format {:?} is not {DOCUMENT_FORMAT:?}",
            document.format
        )));
    }
    let service = ServiceName::parse(&document.service)?;
    let mut environments = BTreeMap::new();
    for (path, content) in &document.environments {
        let env = EnvPath::parse(path)?;
        service.content_config(&env)?;
        environments.insert(env, content.clone());
    }
    if !environments.contains_key(&EnvPath::root()) {
        return Err(Error::invalid("the document has no root environment \"/\""));
    }
    for env in environments.keys() {
        if let Some(parent) = env.parent() {
            if !environments.contains_key(&parent) {
                return Err(Error::invalid(format!(
                    "environment {env} has no parent {parent} in the document"
                )));
            }
        }
    }
    let mut hosts: BTreeMap<EnvPath, Vec<HostId>> = BTreeMap::new();
    let mut dropped_pins = Vec::new();
    for (host, entry) in &document.hosts {
        let host = HostId::parse(host)?;
        let env = EnvPath::parse(&entry.environment)?;
        if !environments.contains_key(&env) {
            return Err(Error::invalid(format!(
                "host {host} is associated with {env}, which the document does not have"
            )));
        }
        if entry.pinned_version.is_some() {
            dropped_pins.push(host.clone());
        }
        hosts.entry(env).or_default().push(host);
    }
    Ok(CheckedDocument {
        service,
        environments,
        hosts,
        dropped_pins,
    })
}

impl Environments {
    /// The service as one document: every environment's own content and
    /// every association.
    pub async fn export(&self, service: &ServiceName) -> Result<ServiceDocument> {
        let mut environments = BTreeMap::new();
        for env in self.tree(service).await? {
            if let Some(found) = self.read(service, &env).await? {
                environments.insert(env.to_string(), found.content);
            }
        }
        let hosts = self
            .associations(service)
            .await?
            .into_iter()
            .map(|a| {
                let entry = HostEntry {
                    environment: a.environment.to_string(),
                    pinned_version: a.pinned_version,
                };
                (a.host.to_string(), entry)
            })
            .collect();
        Ok(ServiceDocument {
            format: DOCUMENT_FORMAT.to_owned(),
            service: service.to_string(),
            environments,
            hosts,
        })
    }

    /// Recreates a service from `document`: the whole tree, with contents
    /// and views, in one transaction, then the associations a batch of
    /// hosts at a time. The document is checked completely (names,
    /// parents, associations, sizes) before anything is written; a service
    /// that exists is `AlreadyExists`.
    pub async fn import(
        &self,
        document: &ServiceDocument,
        change: &ChangeInfo,
    ) -> Result<ImportReport> {
        let checked = check(document)?;
        let service = &checked.service;
        let mut views: BTreeMap<EnvPath, Content> = BTreeMap::new();
        let mut planned = Vec::new();
        for (env, content) in &checked.environments {
            let inherited = env
                .parent()
                .and_then(|p| views.get(&p).cloned())
                .unwrap_or_default();
            let view = merge_chain([&inherited, content]);
            let (content_name, view_name) =
                (service.content_config(env)?, service.view_config(env)?);
            let (content_bytes_, view_bytes) = (content_bytes(content), content_bytes(&view));
            self.check_sizes(&[(&content_name, &content_bytes_), (&view_name, &view_bytes)])?;
            views.insert(env.clone(), view);
            planned.push((env, content_name, content_bytes_, view_name, view_bytes));
        }
        if self
            .coordinator
            .exists(&service.node_path()?)
            .await?
            .is_some()
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("service {service} already exists; nothing was imported"),
            ));
        }
        let prepared = planned.into_iter().map(
            |(env, content_name, content_bytes_, view_name, view_bytes)| async move {
                let write = self
                    .store
                    .prepare_write(&content_name, content_bytes_, change, None)
                    .await?;
                let sources = env
                    .chain()
                    .iter()
                    .map(|e| source(service, e, 1))
                    .collect::<Result<Vec<_>>>()?;
                let view = self
                    .store
                    .prepare_write(&view_name, view_bytes, change, None)
                    .await?
                    .with_sources(sources);
                Ok::<[PreparedWrite; 2], Error>([write, view])
            },
        );
        let writes: Vec<PreparedWrite> = futures::future::try_join_all(prepared)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let mut ops = vec![Op::Create {
            path: service.node_path()?,
            data: serde_json::json!({ "service": service.as_str() })
                .to_string()
                .into_bytes(),
            mode: CreateMode::Persistent,
        }];
        for env in checked.environments.keys() {
            ops.push(Op::Create {
                path: service.members_path(env)?,
                data: Vec::new(),
                mode: CreateMode::Persistent,
            });
        }
        self.store.commit(ops, writes).await.map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::AlreadyExists,
                    format!("service {service} already exists; nothing was imported"),
                )
            } else {
                e
            }
        })?;
        let mut report = ImportReport {
            environments: checked.environments.keys().cloned().collect(),
            dropped_pins: checked.dropped_pins,
            hosts: 0,
        };
        for (env, hosts) in &checked.hosts {
            self.associate_many(service, hosts, env).await?;
            report.hosts += hosts.len();
        }
        Ok(report)
    }
}

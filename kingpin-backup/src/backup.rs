//! Writing a backup: find every config, metaconfig, dependency and
//! service with environments, and write each with every version's record
//! and content.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use futures::{StreamExt, TryStreamExt};
use kingpin_api::environment::{Environments, ServiceName};
use kingpin_api::metaconfig::{MetaConfigManager, DEPENDENCY_ROOT, METACONFIG_ROOT};
use kingpin_api::{ConfigName, ConfigRecord, ConfigStore, Error, ErrorKind, NodePath, Result};

use crate::archive::{ArchiveWriter, Line, FORMAT};

/// Nodes read at once while looking for configs.
const READS_IN_FLIGHT: usize = 32;

/// What a backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// Configs (every kind: plain, managed data, decider, environments'
    /// contents and views).
    pub configs: usize,
    /// Versions over all configs.
    pub versions: usize,
    /// Distinct contents written.
    pub blobs: usize,
    /// Their bytes, before encoding.
    pub blob_bytes: u64,
    /// Metaconfigs.
    pub metaconfigs: usize,
    /// Dependencies.
    pub dependencies: usize,
    /// Services with environments.
    pub services: usize,
    /// Host associations.
    pub hosts: usize,
    /// Lines in the archive, the end line included.
    pub lines: u64,
}

/// Writes everything `store` holds to `out` as a [`FORMAT`] archive
/// (see [`crate::archive`]). Reads only; every version's content is
/// verified against its record on the way, so a corrupt or missing blob
/// fails the backup, naming the config and version, rather than being
/// archived.
pub async fn backup(store: &ConfigStore, out: impl Write) -> Result<BackupReport> {
    let coordinator = store.coordinator().clone();
    let manager = MetaConfigManager::new(coordinator.clone());
    let environments = Environments::new(store.clone());
    let mut writer = ArchiveWriter::new(out);
    writer.write(&Line::Header {
        format: FORMAT.to_owned(),
        created_ms: now_ms(),
        written_by: format!("kingpin-backup {}", env!("CARGO_PKG_VERSION")),
    })?;
    let mut report = BackupReport::default();

    let mut written = HashSet::new();
    for name in find_configs(store).await? {
        let versions = store.history(&name).await?;
        if versions.is_empty() {
            continue;
        }
        for record in &versions {
            if written.contains(&record.sha256) {
                continue;
            }
            let content = store.content(&name, record).await?;
            writer.blob(&content)?;
            report.blob_bytes += content.len() as u64;
            written.insert(record.sha256.clone());
        }
        report.configs += 1;
        report.versions += versions.len();
        writer.write(&Line::Config {
            name: name.to_string(),
            versions,
        })?;
    }
    report.blobs = written.len();

    for name in manager.list().await? {
        let Some(metaconfig) = manager.get(&name).await? else {
            continue;
        };
        let record = serde_json::from_slice(&metaconfig.to_json())
            .map_err(|e| Error::invalid(format!("metaconfig {name}: {e}")))?;
        writer.write(&Line::Metaconfig { record })?;
        report.metaconfigs += 1;
    }

    for name in manager.list_dependencies().await? {
        let members = match manager.members(&name).await {
            Ok(members) => members,
            // Removed since the listing.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        writer.write(&Line::Dependency {
            name: name.to_string(),
            members: members.iter().map(ToString::to_string).collect(),
        })?;
        report.dependencies += 1;
    }

    for service in environments.services().await? {
        let node = match coordinator.get(&service.node_path()?).await {
            Ok(node) => node,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let tree = environments.tree(&service).await?;
        let associations = environments.associations(&service).await?;
        let hosts: BTreeMap<String, serde_json::Value> = associations
            .iter()
            .map(|a| {
                let json = serde_json::from_slice(&a.to_json())
                    .map_err(|e| Error::invalid(format!("host {}: {e}", a.host)))?;
                Ok((a.host.to_string(), json))
            })
            .collect::<Result<_>>()?;
        report.services += 1;
        report.hosts += hosts.len();
        writer.write(&Line::Environments {
            service: service.to_string(),
            data: String::from_utf8_lossy(&node.data).into_owned(),
            environments: tree.iter().map(ToString::to_string).collect(),
            hosts,
        })?;
    }

    report.lines = writer.finish()?;
    Ok(report)
}

/// Every config in the coordinator, sorted: every persistent node whose
/// data is a config record whose blob key belongs to the name its path
/// spells. The coordinator keeps no list of configs (a config is its
/// node), so the tree is walked, level by level, skipping what holds no
/// config: metaconfig records and dependencies, environment host
/// associations, serverset members.
pub async fn find_configs(store: &ConfigStore) -> Result<Vec<ConfigName>> {
    let coordinator = store.coordinator().clone();
    let mut found = Vec::new();
    let mut level = vec![NodePath::root()];
    while !level.is_empty() {
        let visited: Vec<(Option<ConfigName>, Vec<NodePath>)> = futures::stream::iter(level)
            .map(|path| {
                let coordinator = coordinator.clone();
                async move { visit(&*coordinator, path).await }
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        level = Vec::new();
        for (config, children) in visited {
            found.extend(config);
            level.extend(children);
        }
    }
    found.sort();
    Ok(found)
}

/// One node: the config it holds, if any, and the children to visit.
async fn visit(
    coordinator: &dyn kingpin_api::Coordinator,
    path: NodePath,
) -> Result<(Option<ConfigName>, Vec<NodePath>)> {
    let config = if path.as_str() == "/" {
        None
    } else {
        match coordinator.get(&path).await {
            Ok(node) if node.stat.ephemeral_owner.is_some() => return Ok((None, Vec::new())),
            Ok(node) => config_at(&path, &node.data),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((None, Vec::new())),
            Err(e) => return Err(e),
        }
    };
    if skipped_subtree(&path) {
        return Ok((config, Vec::new()));
    }
    let children = match coordinator.children(&path).await {
        Ok(children) => children,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let under_discovery = path.as_str().starts_with("/discovery/");
    let children = children
        .iter()
        // A config's path components are config name components; nothing
        // else can hold one. Serverset members (`member_NNNNNNNNNN`) are
        // ephemeral.
        .filter(|c| is_name_component(c))
        .filter(|c| !(under_discovery && c.starts_with("member_")))
        .filter_map(|c| path.join(c).ok())
        .collect();
    Ok((config, children))
}

fn is_name_component(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Subtrees backed up otherwise: metaconfig records and dependencies,
/// environment host associations and their per-environment lists.
fn skipped_subtree(path: &NodePath) -> bool {
    let p = path.as_str();
    if p == METACONFIG_ROOT || p == DEPENDENCY_ROOT {
        return true;
    }
    let parts: Vec<&str> = p.split('/').skip(1).collect();
    matches!(parts.as_slice(), ["environments", service, "hosts" | "members"] if ServiceName::parse(service).is_ok())
}

/// The config whose record `data` is, if it is one for the name `path`
/// spells.
fn config_at(path: &NodePath, data: &[u8]) -> Option<ConfigName> {
    if data.is_empty() {
        return None;
    }
    let name = ConfigName::parse(&path.as_str()[1..].replace('/', ".")).ok()?;
    let record = ConfigRecord::from_json(data, name.as_str()).ok()?;
    record.check_belongs_to(&name).ok()?;
    Some(name)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

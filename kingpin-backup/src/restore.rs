//! Restoring an archive into a namespace: check the whole archive, check
//! the target, then write: services' nodes, every version's content and
//! history, config records (parents before nested configs), metaconfigs,
//! dependencies, host associations.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use kingpin_api::environment::HostId;
use kingpin_api::metaconfig::MetaConfigManager;
use kingpin_api::{
    ConfigName, ConfigRecord, ConfigStore, CreateMode, Error, ErrorKind, NodePath, Result,
};

use crate::archive::{decode_blob, lines, Line, Manifest};

/// Writes in flight at once.
const WRITES_IN_FLIGHT: usize = 16;
/// Blob contents held while their puts are in flight, at most.
const BUFFERED_BYTES: usize = 64 * 1024 * 1024;
/// What the emptiness check ignores: the S3 store's probe of conditional
/// puts (removed after use, but a probe interrupted can stay).
const PROBE_PREFIX: &str = ".kingpin-probe/";

/// How a restore treats its target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Restore into a namespace that already holds something: only what is
    /// missing is added, and everything that exists is left as it is (and
    /// listed). Without it, a target that is not empty is refused
    /// (`NotEmpty`) and nothing is written.
    pub allow_non_empty: bool,
    /// Check the archive and the target, and say what would be done,
    /// without writing.
    pub dry_run: bool,
}

/// What a restore did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Configs restored.
    pub configs: usize,
    /// Their versions.
    pub versions: usize,
    /// Metaconfigs created.
    pub metaconfigs: usize,
    /// Dependencies created or completed.
    pub dependencies: usize,
    /// Services whose environments were restored.
    pub services: usize,
    /// Host associations created.
    pub hosts: usize,
    /// What was in the target already and was left as it is.
    pub skipped: Vec<String>,
}

/// Restores the archive `open` reads into `store`'s coordinator and blob
/// store. `open` is called twice: the first pass checks the whole archive
/// (every line, name, record and blob sha256, see [`crate::verify`]) and
/// the target before anything is written; the second writes.
///
/// Errors: `InvalidArgument` for a corrupt archive and `NotEmpty` for a
/// target that is not empty (without
/// [`allow_non_empty`](RestoreOptions::allow_non_empty)), both before any
/// write; `AlreadyExists` when the target holds another object at a key
/// the archive needs (checked before any write too). A failure while
/// writing (the backends went away) leaves part of the archive restored:
/// run the restore again with `allow_non_empty` to add the rest.
pub async fn restore<R, F>(
    store: &ConfigStore,
    mut open: F,
    options: RestoreOptions,
) -> Result<RestoreReport>
where
    R: BufRead,
    F: FnMut() -> Result<R>,
{
    let manifest = crate::archive::verify(open()?)?;
    let plan = plan(store, &manifest, options).await?;
    let mut report = RestoreReport {
        configs: plan.configs.len(),
        versions: plan.configs.iter().map(|c| c.versions.len()).sum(),
        skipped: plan.skipped.clone(),
        ..RestoreReport::default()
    };
    if options.dry_run {
        report.metaconfigs = manifest.metaconfigs.len();
        report.dependencies = manifest.dependencies.len();
        report.services = manifest.services.len();
        report.hosts = manifest.services.iter().map(|s| s.hosts.len()).sum();
        return Ok(report);
    }
    let coordinator = store.coordinator().clone();

    // Services' nodes first: a config record created below one would
    // otherwise create it empty.
    for service in &manifest.services {
        let created = create_node(
            &*coordinator,
            &service.service.node_path()?,
            service.data.as_bytes(),
        )
        .await?;
        if !created {
            report
                .skipped
                .push(format!("service {} (exists)", service.service));
        }
        for env in &service.environments {
            create_node(&*coordinator, &service.service.members_path(env)?, b"").await?;
        }
        report.services += usize::from(created);
    }

    write_contents(store, &plan, open()?).await?;
    futures::stream::iter(plan.configs.iter().flat_map(|config| {
        config
            .versions
            .iter()
            .map(move |record| (&config.name, record))
    }))
    .map(|(name, record)| store.restore_history(name, record))
    .buffer_unordered(WRITES_IN_FLIGHT)
    .try_collect::<Vec<()>>()
    .await?;
    // Records last, parents before nested configs (creating `a.b.c`
    // creates `/a/b` empty, and `a.b`'s record could not be created).
    let mut by_depth: BTreeMap<usize, Vec<&PlannedConfig>> = BTreeMap::new();
    for config in &plan.configs {
        by_depth
            .entry(config.name.as_str().split('.').count())
            .or_default()
            .push(config);
    }
    for configs in by_depth.into_values() {
        futures::stream::iter(configs)
            .map(|config| async move {
                let current = config.versions.last().ok_or_else(|| {
                    Error::invalid(format!("config {} has no versions", config.name))
                })?;
                store.restore_record(&config.name, current).await
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
    }

    let manager = MetaConfigManager::new(coordinator.clone());
    for metaconfig in &manifest.metaconfigs {
        match manager.create(metaconfig).await {
            Ok(()) if plan.existing_metaconfigs.contains(&metaconfig.name) => {}
            Ok(()) => report.metaconfigs += 1,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && options.allow_non_empty => {
                report.skipped.push(format!(
                    "metaconfig {} (exists with other settings)",
                    metaconfig.name
                ))
            }
            Err(e) => return Err(e),
        }
    }
    for (dependency, members) in &manifest.dependencies {
        let path = MetaConfigManager::dependency_path(dependency)?;
        let mut changed = create_node(&*coordinator, &path, b"").await?;
        for member in members {
            changed |= create_node(&*coordinator, &path.join(member.as_str())?, b"").await?;
        }
        report.dependencies += usize::from(changed);
    }
    for service in &manifest.services {
        for association in &service.hosts {
            let (host_node, member_node) = host_nodes(service, &association.host, association)?;
            if create_node(&*coordinator, &host_node, &association.to_json()).await? {
                create_node(&*coordinator, &member_node, b"").await?;
                report.hosts += 1;
            } else {
                report.skipped.push(format!(
                    "host {} of service {} (already associated)",
                    association.host, service.service
                ));
            }
        }
    }
    Ok(report)
}

fn host_nodes(
    service: &crate::archive::ArchivedService,
    host: &HostId,
    association: &kingpin_api::environment::Association,
) -> Result<(NodePath, NodePath)> {
    Ok((
        service.service.host_path(host)?,
        service
            .service
            .members_path(&association.environment)?
            .join(host.as_str())?,
    ))
}

/// Creates a persistent node; `false` when it existed already.
async fn create_node(
    coordinator: &dyn kingpin_api::Coordinator,
    path: &NodePath,
    data: &[u8],
) -> Result<bool> {
    match coordinator.create(path, data, CreateMode::Persistent).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A config to restore, with the versions to put back.
struct PlannedConfig {
    name: ConfigName,
    versions: Vec<ConfigRecord>,
}

struct Plan {
    configs: Vec<PlannedConfig>,
    /// sha256 → every (config, version) whose content it is.
    uses: HashMap<String, Vec<(usize, usize)>>,
    existing_metaconfigs: HashSet<ConfigName>,
    skipped: Vec<String>,
}

/// Checks the target and decides what to write, reading only.
async fn plan(store: &ConfigStore, manifest: &Manifest, options: RestoreOptions) -> Result<Plan> {
    if !options.allow_non_empty {
        let found = contents_of(store).await?;
        if !found.is_empty() {
            return Err(Error::new(
                ErrorKind::NotEmpty,
                format!(
                    "the target is not empty (it holds {}); restore into an empty namespace, or allow a non-empty one to add only what is missing; nothing was restored",
                    found.join(", ")
                ),
            ));
        }
    }
    let mut configs = Vec::new();
    let mut skipped = Vec::new();
    for config in &manifest.configs {
        if options.allow_non_empty {
            match store.record(&config.name).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    skipped.push(format!("config {} (exists)", config.name));
                    continue;
                }
                // A node that holds no record: a parent of the target's own
                // nested configs, which a record cannot be created at.
                Err(e) if e.kind() == ErrorKind::Backend => {
                    skipped.push(format!(
                        "config {} (its node exists and holds no config record)",
                        config.name
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        configs.push(PlannedConfig {
            name: config.name.clone(),
            versions: config.versions.clone(),
        });
    }
    if options.allow_non_empty {
        // Another namespace's leftovers at the keys this one needs would
        // stop the restore half-way: find them first.
        futures::stream::iter(configs.iter().flat_map(|c| {
            c.versions
                .iter()
                .map(move |record| store.check_restorable(&c.name, record))
        }))
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    }
    let mut uses: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    for (c, config) in configs.iter().enumerate() {
        for (v, record) in config.versions.iter().enumerate() {
            uses.entry(record.sha256.clone()).or_default().push((c, v));
        }
    }
    let manager = MetaConfigManager::new(store.coordinator().clone());
    let mut existing_metaconfigs = HashSet::new();
    if options.allow_non_empty {
        for metaconfig in &manifest.metaconfigs {
            if manager.get(&metaconfig.name).await?.is_some() {
                existing_metaconfigs.insert(metaconfig.name.clone());
            }
        }
    }
    Ok(Plan {
        configs,
        uses,
        existing_metaconfigs,
        skipped,
    })
}

/// What makes the target non-empty: its top-level nodes and, when it
/// holds objects, the blob store; empty when there is nothing.
async fn contents_of(store: &ConfigStore) -> Result<Vec<String>> {
    let mut found: Vec<String> = match store.coordinator().children(&NodePath::root()).await {
        Ok(children) => children
            .into_iter()
            // ZooKeeper's own node, when the namespace is its root.
            .filter(|c| c != "zookeeper")
            .map(|c| format!("node /{c}"))
            .collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let objects = store
        .blobs()
        .list(None)
        .await?
        .into_iter()
        .filter(|m| !m.key.as_str().starts_with(PROBE_PREFIX))
        .count();
    if objects > 0 {
        found.push(format!("{objects} objects in the blob store"));
    }
    Ok(found)
}

/// The second pass: every planned version's content, put as its blob
/// line comes by (each line checked again against its sha256).
async fn write_contents(store: &ConfigStore, plan: &Plan, archive: impl BufRead) -> Result<()> {
    let mut pending: Vec<(&PlannedConfig, &ConfigRecord, Bytes)> = Vec::new();
    let mut pending_bytes = 0;
    for read in lines(archive) {
        let (number, line) = read?;
        let Line::Blob { sha256, size, data } = line else {
            continue;
        };
        let Some(uses) = plan.uses.get(&sha256) else {
            continue;
        };
        let content = decode_blob(number, &sha256, size, &data)?;
        for &(c, v) in uses {
            let config = &plan.configs[c];
            pending.push((config, &config.versions[v], content.clone()));
        }
        pending_bytes += content.len();
        if pending.len() >= WRITES_IN_FLIGHT * 4 || pending_bytes >= BUFFERED_BYTES {
            put_contents(store, std::mem::take(&mut pending)).await?;
            pending_bytes = 0;
        }
    }
    put_contents(store, pending).await
}

async fn put_contents(
    store: &ConfigStore,
    batch: Vec<(&PlannedConfig, &ConfigRecord, Bytes)>,
) -> Result<()> {
    futures::stream::iter(batch)
        .map(|(config, record, content)| store.restore_content(&config.name, record, content))
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

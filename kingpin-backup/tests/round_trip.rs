//! Backup and restore on real servers: a namespace with history on
//! ZooKeeper + S3, restored on etcd + local files, compared item by item;
//! a corrupt or cut-short archive and a non-empty target refused before
//! anything is written.

use std::collections::BTreeMap;
use std::io::{BufReader, Cursor};
use std::sync::Arc;

use bytes::Bytes;
use kingpin_api::decider::ManagedDecider;
use kingpin_api::discovery::{Member, ServerSet};
use kingpin_api::environment::{content_of, EnvPath, Environments, HostId, ServiceName};
use kingpin_api::managed::{managed_data_name, ManagedList};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore, ErrorKind, Result};
use kingpin_backup::{backup, find_configs, restore, RestoreOptions};
use kingpin_client::Endpoint;
use kingpin_conformance_tests::endpoints::{shared_endpoint, shared_s3};
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use serde_json::json;

/// A namespace on ZooKeeper + S3 (aws-sdk-s3).
async fn zookeeper_s3(case: &str) -> Option<ConfigStore> {
    let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
    let (endpoint, credentials) = shared_s3(case).await?;
    let prefix = format!("backup-{}", unique_suffix());
    let blobs = aws_sdk_store(&endpoint, &credentials, "kingpin-test", &prefix).await;
    let coordinator = kingpin::open_coordinator(&format!("zk://{hosts}{}", unique_namespace()))
        .await
        .expect("ZooKeeper");
    Some(ConfigStore::new(coordinator, Arc::new(blobs)))
}

/// A namespace on etcd + a local directory.
async fn etcd_files(case: &str) -> Option<(ConfigStore, tempfile::TempDir)> {
    let hosts = shared_endpoint(ServerKind::Etcd, case).await?;
    let dir = tempfile::tempdir().expect("a scratch directory");
    let blobs = kingpin::open_blob_store(&format!("file://{}", dir.path().display()))
        .await
        .expect("a local blob store");
    let coordinator = kingpin::open_coordinator(&format!("etcd://{hosts}{}", unique_namespace()))
        .await
        .expect("etcd");
    Some((ConfigStore::new(coordinator, blobs), dir))
}

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).unwrap()
}

fn who(message: &str) -> ChangeInfo {
    ChangeInfo::new("alice", message)
}

/// Everything a namespace holds, read through the public APIs.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// Config → every version's record (as JSON) and content.
    configs: BTreeMap<String, Vec<(String, Bytes)>>,
    metaconfigs: Vec<Vec<u8>>,
    dependencies: BTreeMap<String, Vec<String>>,
    /// Service → (environment → view), associations.
    environments: BTreeMap<String, (BTreeMap<String, serde_json::Value>, Vec<String>)>,
}

async fn snapshot(store: &ConfigStore) -> Result<Snapshot> {
    let mut configs = BTreeMap::new();
    for config in find_configs(store).await? {
        let mut versions = Vec::new();
        for record in store.history(&config).await? {
            let content = store.content(&config, &record).await?;
            versions.push((String::from_utf8(record.to_json()).unwrap(), content));
        }
        configs.insert(config.to_string(), versions);
    }
    let manager = MetaConfigManager::new(store.coordinator().clone());
    let mut metaconfigs = Vec::new();
    for m in manager.list().await? {
        metaconfigs.push(manager.get(&m).await?.unwrap().to_json());
    }
    let mut dependencies = BTreeMap::new();
    for d in manager.list_dependencies().await? {
        let members = manager.members(&d).await?;
        dependencies.insert(
            d.to_string(),
            members.iter().map(|m| m.to_string()).collect(),
        );
    }
    let envs = Environments::new(store.clone());
    let mut environments = BTreeMap::new();
    for service in envs.services().await? {
        let mut views = BTreeMap::new();
        for env in envs.tree(&service).await? {
            let view = envs.view(&service, &env).await?.unwrap();
            views.insert(
                format!("{env}@{}", view.record.version),
                serde_json::Value::Object(view.content),
            );
        }
        let hosts = envs
            .associations(&service)
            .await?
            .iter()
            .map(|a| format!("{} {} {:?}", a.host, a.environment, a.pinned_version))
            .collect();
        environments.insert(service.to_string(), (views, hosts));
    }
    Ok(Snapshot {
        configs,
        metaconfigs,
        dependencies,
        environments,
    })
}

/// A namespace with history in every kind of thing a backup holds.
async fn populate(store: &ConfigStore) -> Result<()> {
    // Nested configs: a parent's record (written before its children, as
    // the store needs) and configs under it.
    store
        .write(&name("config.app"), Bytes::from("parent"), &who("p"))
        .await?;
    let plain = name("config.app.limits");
    for (content, message) in [("{\"rps\": 1}", "one"), ("{\"rps\": 2}", "two")] {
        store
            .write(&plain, Bytes::from(content), &who(message))
            .await?;
    }
    // Not UTF-8, and the same content as another version (one blob line).
    store
        .write(
            &plain,
            Bytes::from_static(&[0, 159, 146, 150, 255]),
            &who("binary"),
        )
        .await?;
    store
        .write(&plain, Bytes::from("{\"rps\": 1}"), &who("back to one"))
        .await?;
    store
        .write(
            &name("config.app.limits.eu"),
            Bytes::from("child"),
            &who("c"),
        )
        .await?;
    let list = ManagedList::<String>::new(store.clone(), managed_data_name("spam", "blacklist")?);
    list.add("203.0.113.7".to_owned()).await?;
    list.add("198.51.100.9".to_owned()).await?;
    let decider = ManagedDecider::new(store.clone());
    decider.set("new_feed", 20.0).await?;
    decider.set("new_feed", 35.5).await?;
    // A version removed by gc leaves a gap in the history.
    store.gc(&plain, 3).await?;

    let manager = MetaConfigManager::new(store.coordinator().clone());
    manager
        .create(&MetaConfig::config(plain.clone())?.with_max_random_delay_ms(250))
        .await?;
    manager
        .create(&MetaConfig::config(name(
            "config.manageddata.spam.blacklist",
        ))?)
        .await?;
    manager
        .create(&MetaConfig::serverset("api", "prod")?)
        .await?;
    manager.create(&MetaConfig::environment("shop")?).await?;
    for dep in ["web.dep", "shared.dep", "base.dep"] {
        manager.create_dependency(&name(dep)).await?;
    }
    manager.add_to_dependency(&name("web.dep"), &plain).await?;
    manager
        .add_to_dependency(&name("web.dep"), &name("shared.dep"))
        .await?;
    manager
        .add_to_dependency(&name("shared.dep"), &name("discovery.api.prod"))
        .await?;
    manager
        .add_to_dependency(&name("shared.dep"), &name("web.dep"))
        .await?;
    manager
        .add_to_dependency(&name("base.dep"), &name("environments.shop"))
        .await?;

    let envs = Environments::new(store.clone());
    let shop = ServiceName::parse("shop")?;
    let prod = EnvPath::parse("/prod")?;
    let leaf = EnvPath::parse("/prod/us-east")?;
    envs.create(
        &shop,
        &EnvPath::root(),
        content_of("root", json!({"db": {"host": "db1", "pool": 10}}))?,
        &who("root"),
    )
    .await?;
    envs.create(
        &shop,
        &prod,
        content_of("prod", json!({"db": {"pool": 50}}))?,
        &who("prod"),
    )
    .await?;
    envs.create(
        &shop,
        &leaf,
        content_of("leaf", json!({"region": "us-east-1"}))?,
        &who("leaf"),
    )
    .await?;
    envs.set(
        &shop,
        &EnvPath::root(),
        content_of("root", json!({"db": {"host": "db2", "pool": 10}}))?,
        &who("move db"),
        None,
    )
    .await?;
    let pinned = HostId::parse("web-1.example.com")?;
    envs.associate(&shop, &pinned, &leaf).await?;
    envs.pin(&shop, &pinned, 1).await?;
    envs.associate(&shop, &HostId::parse("web-2.example.com")?, &prod)
        .await?;
    Ok(())
}

fn archive_lines(archive: &[u8]) -> Vec<serde_json::Value> {
    archive
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn reader(archive: &[u8]) -> impl FnMut() -> Result<BufReader<Cursor<Vec<u8>>>> + '_ {
    move || Ok(BufReader::new(Cursor::new(archive.to_vec())))
}

#[tokio::test]
async fn a_namespace_with_history_moves_from_zookeeper_s3_to_etcd_files_intact() {
    let case = "a_namespace_with_history_moves_from_zookeeper_s3_to_etcd_files_intact";
    let Some(source) = zookeeper_s3(case).await else {
        return;
    };
    let Some((target, _dir)) = etcd_files(case).await else {
        return;
    };
    populate(&source).await.unwrap();
    // A live serverset member: ephemeral, so not part of a backup.
    let api = ServerSet::new(source.coordinator().clone(), "api", "prod").unwrap();
    let _member = api
        .join(Member::new(Endpoint::new("10.0.0.7", 8080)))
        .await
        .unwrap();

    let mut archive = Vec::new();
    let written = backup(&source, &mut archive).await.unwrap();
    // 3 plain, a managed list, the decider, 3 environments' contents and
    // their 3 views.
    assert_eq!(written.configs, 11, "{written:?}");
    assert_eq!(
        (
            written.metaconfigs,
            written.dependencies,
            written.services,
            written.hosts
        ),
        (4, 3, 1, 2)
    );

    let report = restore(&target, reader(&archive), RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (report.configs, report.versions),
        (written.configs, written.versions)
    );
    assert!(report.skipped.is_empty(), "{report:?}");

    let (before, after) = (
        snapshot(&source).await.unwrap(),
        snapshot(&target).await.unwrap(),
    );
    assert_eq!(before.configs.len(), 11);
    let limits = &after.configs["config.app.limits"];
    assert_eq!(limits.len(), 3, "gc kept 3 versions: {limits:?}");
    assert!(limits[0].0.contains("\"version\":2"), "{}", limits[0].0);
    assert_eq!(before, after);

    // A backup of the restored namespace is the same archive, line by line
    // but for the header's time.
    let mut again = Vec::new();
    backup(&target, &mut again).await.unwrap();
    let (first, second) = (archive_lines(&archive), archive_lines(&again));
    assert_eq!(first.len(), second.len());
    assert_eq!(first[1..], second[1..]);

    // The restored namespace works as the old one did: writes continue the
    // history, the pinned host keeps its view version.
    let next = target
        .write(
            &name("config.app.limits"),
            Bytes::from("{}"),
            &who("after the move"),
        )
        .await
        .unwrap();
    assert_eq!(next.version, 5);
    let envs = Environments::new(target.clone());
    let shop = ServiceName::parse("shop").unwrap();
    let host = HostId::parse("web-1.example.com").unwrap();
    let (association, _) = envs.association(&shop, &host).await.unwrap().unwrap();
    assert_eq!(association.pinned_version, Some(1));
    envs.set(
        &shop,
        &EnvPath::parse("/prod").unwrap(),
        content_of("prod", json!({"db": {"pool": 60}})).unwrap(),
        &who("resize"),
        None,
    )
    .await
    .unwrap();
    let leaf = envs
        .view(&shop, &EnvPath::parse("/prod/us-east").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(leaf.content),
        json!({"db": {"host": "db2", "pool": 60}, "region": "us-east-1"})
    );
}

#[tokio::test]
async fn a_corrupt_or_cut_archive_is_refused_before_anything_is_written() {
    let case = "a_corrupt_or_cut_archive_is_refused_before_anything_is_written";
    let Some((source, _source_dir)) = etcd_files(case).await else {
        return;
    };
    let Some((target, _dir)) = etcd_files(case).await else {
        return;
    };
    populate(&source).await.unwrap();
    let mut archive = Vec::new();
    backup(&source, &mut archive).await.unwrap();
    let text = String::from_utf8(archive.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // One bit of one blob's content changed (its line still parses).
    let blob = lines
        .iter()
        .position(|l| l.contains("\"kind\":\"blob\""))
        .unwrap();
    let mut line: serde_json::Value = serde_json::from_str(lines[blob]).unwrap();
    let data = line["data"].as_str().unwrap().to_owned();
    let flipped = if data.starts_with('A') { "B" } else { "A" };
    line["data"] = json!(format!("{flipped}{}", &data[1..]));
    let mut corrupt = lines.clone();
    let edited = line.to_string();
    corrupt[blob] = &edited;
    let corrupt = corrupt.join("\n") + "\n";
    let err = restore(
        &target,
        reader(corrupt.as_bytes()),
        RestoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let message = err.to_string();
    assert!(
        message.contains(&format!("line {}", blob + 1)) && message.contains("does not match"),
        "{message}"
    );

    // Cut short: the end line is missing.
    let cut = lines[..lines.len() - 1].join("\n") + "\n";
    let err = restore(&target, reader(cut.as_bytes()), RestoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");

    // A record that does not belong to its config.
    let forged = text.replace("config/app/limits/@versions", "config/app/other/@versions");
    let err = restore(
        &target,
        reader(forged.as_bytes()),
        RestoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("blob key"), "{err}");

    let empty = snapshot(&target).await.unwrap();
    assert!(
        empty.configs.is_empty() && empty.metaconfigs.is_empty() && empty.environments.is_empty()
    );
    assert!(
        target.blobs().list(None).await.unwrap().is_empty(),
        "nothing was written"
    );
    assert!(target
        .coordinator()
        .children(&kingpin_api::NodePath::root())
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn a_non_empty_target_is_refused_unless_asked_and_then_only_gaps_are_filled() {
    let case = "a_non_empty_target_is_refused_unless_asked_and_then_only_gaps_are_filled";
    let Some((source, _source_dir)) = etcd_files(case).await else {
        return;
    };
    let Some(target) = zookeeper_s3(case).await else {
        return;
    };
    populate(&source).await.unwrap();
    let mut archive = Vec::new();
    backup(&source, &mut archive).await.unwrap();

    let mine = name("config.app");
    target
        .write(&mine, Bytes::from("the target's own"), &who("mine"))
        .await
        .unwrap();
    let err = restore(&target, reader(&archive), RestoreOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotEmpty);
    assert!(err.to_string().contains("node /config"), "{err}");
    assert_eq!(
        find_configs(&target).await.unwrap(),
        std::slice::from_ref(&mine),
        "nothing was written"
    );

    let options = RestoreOptions {
        allow_non_empty: true,
        dry_run: true,
    };
    let dry = restore(&target, reader(&archive), options).await.unwrap();
    assert_eq!(dry.skipped, ["config config.app (exists)"]);
    assert_eq!(
        find_configs(&target).await.unwrap(),
        std::slice::from_ref(&mine),
        "a dry run writes nothing"
    );

    // The target's own config at the same name as one in the archive: its
    // version 1 history entry differs from the archive's, but the config
    // is skipped whole, and the nested configs below it are restored.
    let options = RestoreOptions {
        allow_non_empty: true,
        dry_run: false,
    };
    let report = restore(&target, reader(&archive), options).await.unwrap();
    assert_eq!(report.skipped, ["config config.app (exists)"]);
    assert_eq!(report.configs, 10);
    let current = target.read(&mine).await.unwrap().unwrap();
    assert_eq!(
        current.content,
        Bytes::from("the target's own"),
        "left as it was"
    );
    let (mut before, mut after) = (
        snapshot(&source).await.unwrap(),
        snapshot(&target).await.unwrap(),
    );
    before.configs.remove(mine.as_str());
    after.configs.remove(mine.as_str());
    assert_eq!(before, after);

    // Again: everything is there, nothing is added.
    let report = restore(&target, reader(&archive), options).await.unwrap();
    assert_eq!(
        (
            report.configs,
            report.metaconfigs,
            report.dependencies,
            report.hosts
        ),
        (0, 0, 0, 0)
    );
}

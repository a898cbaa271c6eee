//! The monitor syncing a service's environments for its host: the view
//! file follows a write to an ancestor, a remap, a pin and an
//! unassociation, on SQLite + files, etcd + files and ZooKeeper + S3; and
//! an outage of a ZooKeeper of the test's own keeps the file.

use std::path::{Path, PathBuf};

use kingpin_api::environment::{
    content_bytes, content_of, EnvPath, Environments, HostId, ServiceName,
};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_conformance_tests::endpoints::private_server;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_monitor::{Monitor, MonitorState};
use serde_json::json;

mod support;
use support::{change, etcd_fs, name, sqlite_fs, wait_for, zookeeper_s3, Backends};

const HOST: &str = "app-1.example.com";

fn env(path: &str) -> EnvPath {
    EnvPath::parse(path).unwrap()
}

fn file_is(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|c| c == content)
}

/// The bytes of `env`'s current view, as the monitor must write them.
async fn view_bytes(envs: &Environments, service: &ServiceName, env: &EnvPath) -> Vec<u8> {
    let view = envs.view(service, env).await.unwrap().unwrap();
    content_bytes(&view.content).to_vec()
}

async fn wait_for_view(state: &MonitorState, file: &Path, expected: &[u8], what: &str) {
    wait_for(state, what, |_| file_is(file, expected)).await;
}

/// A depth-3 service `web`, its metaconfig in `host.dep`, this host on
/// `/prod/east`, and a monitor for it.
async fn start(
    backends: &Backends,
) -> (
    tempfile::TempDir,
    Monitor,
    Environments,
    ServiceName,
    PathBuf,
) {
    let envs = Environments::new(backends.store());
    let web = ServiceName::parse("web").unwrap();
    let content = |v| content_of("test", v).unwrap();
    envs.create(
        &web,
        &EnvPath::root(),
        content(json!({"a": 1, "db": {"pool": 5}})),
        &change(),
    )
    .await
    .unwrap();
    envs.create(
        &web,
        &env("/prod"),
        content(json!({"db": {"pool": 10}})),
        &change(),
    )
    .await
    .unwrap();
    envs.create(
        &web,
        &env("/prod/east"),
        content(json!({"region": "east"})),
        &change(),
    )
    .await
    .unwrap();
    envs.associate(&web, &HostId::parse(HOST).unwrap(), &env("/prod/east"))
        .await
        .unwrap();
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    let metaconfig = MetaConfig::environment("web").unwrap();
    manager.create(&metaconfig).await.unwrap();
    manager.create_dependency(&name("host.dep")).await.unwrap();
    manager
        .add_to_dependency(&name("host.dep"), &metaconfig.name)
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut settings = backends.settings("host.dep", out.path());
    settings.host = Some(HOST.to_owned());
    let monitor = Monitor::start(settings).await.unwrap();
    let file = out.path().join("config/environments.web");
    (out, monitor, envs, web, file)
}

async fn follows_writes_remaps_pins_and_unassociation(backends: Backends) {
    let (_out, monitor, envs, web, file) = start(&backends).await;
    let state = monitor.state().clone();
    let host = HostId::parse(HOST).unwrap();
    let leaf = view_bytes(&envs, &web, &env("/prod/east")).await;
    wait_for_view(&state, &file, &leaf, "the associated view").await;
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        on_disk,
        json!({"a": 1, "db": {"pool": 10}, "region": "east"})
    );

    // A write to the root reaches the leaf's view file.
    envs.update(&web, &EnvPath::root(), &change(), |c| {
        let mut c = c.clone();
        c.insert("a".into(), json!(2));
        Ok(Some(c))
    })
    .await
    .unwrap();
    let leaf = view_bytes(&envs, &web, &env("/prod/east")).await;
    wait_for_view(&state, &file, &leaf, "a root write").await;

    // A remap is followed without a restart.
    envs.associate(&web, &host, &env("/prod")).await.unwrap();
    let prod = view_bytes(&envs, &web, &env("/prod")).await;
    wait_for_view(&state, &file, &prod, "the remap to /prod").await;
    // The old view's watch is gone: a write there changes nothing here,
    // and a write to /prod lands.
    envs.set(
        &web,
        &env("/prod/east"),
        content_of("t", json!({"region": "west"})).unwrap(),
        &change(),
        None,
    )
    .await
    .unwrap();
    envs.set(
        &web,
        &env("/prod"),
        content_of("t", json!({"db": {"pool": 11}})).unwrap(),
        &change(),
        None,
    )
    .await
    .unwrap();
    let prod = view_bytes(&envs, &web, &env("/prod")).await;
    wait_for_view(&state, &file, &prod, "a write to /prod after the remap").await;

    // A pin holds the version through a write; unpinning follows again.
    let pinned_version = envs
        .view(&web, &env("/prod"))
        .await
        .unwrap()
        .unwrap()
        .record
        .version;
    envs.pin(&web, &host, pinned_version).await.unwrap();
    let entry = name("environments.web");
    wait_for(&state, "the pin", |s| {
        s.entry(&entry)
            .is_some_and(|e| e.pinned_version == Some(pinned_version))
    })
    .await;
    envs.set(
        &web,
        &env("/prod"),
        content_of("t", json!({"db": {"pool": 12}})).unwrap(),
        &change(),
        None,
    )
    .await
    .unwrap();
    let newer = envs
        .view(&web, &env("/prod"))
        .await
        .unwrap()
        .unwrap()
        .record
        .timestamp_ms;
    // The monitor sees the view change and keeps the pinned version.
    wait_for(&state, "the view change seen while pinned", |s| {
        s.entry(&entry)
            .and_then(|e| e.last_fetch_ms)
            .is_some_and(|t| t >= newer)
    })
    .await;
    assert!(file_is(&file, &prod), "a pinned host keeps its version");
    envs.unpin(&web, &host).await.unwrap();
    let prod = view_bytes(&envs, &web, &env("/prod")).await;
    wait_for_view(&state, &file, &prod, "the unpin").await;

    // No association: the root view.
    envs.unassociate(&web, &host).await.unwrap();
    let root = view_bytes(&envs, &web, &EnvPath::root()).await;
    wait_for_view(&state, &file, &root, "the root view after unassociation").await;
    wait_for(&state, "ready", |s| s.health().ready).await;
    let status = state.entry(&entry).unwrap();
    assert_eq!(status.environment.as_deref(), Some("/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_view_follows_changes_on_sqlite_and_files() {
    follows_writes_remaps_pins_and_unassociation(sqlite_fs().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_view_follows_changes_on_etcd_and_files() {
    if let Some(backends) = etcd_fs("environment_view_follows_changes_on_etcd_and_files").await {
        follows_writes_remaps_pins_and_unassociation(backends).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_view_follows_changes_on_zookeeper_and_s3() {
    if let Some(backends) =
        zookeeper_s3("environment_view_follows_changes_on_zookeeper_and_s3", None).await
    {
        follows_writes_remaps_pins_and_unassociation(backends).await;
    }
}

/// ZooKeeper stops: the view file stays and health degrades; it restarts:
/// a write made right away reaches the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_outage_keeps_the_view_file() {
    let case = "environment_outage_keeps_the_view_file";
    let Some(mut zk) = private_server(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let Some(backends) = zookeeper_s3(case, Some(zk.endpoint())).await else {
        return;
    };
    let (_out, monitor, envs, web, file) = start(&backends).await;
    let state = monitor.state().clone();
    let leaf = view_bytes(&envs, &web, &env("/prod/east")).await;
    wait_for(&state, "the view and ready", |s| {
        file_is(&file, &leaf) && s.health().ready
    })
    .await;

    zk.stop();
    wait_for(&state, "degraded health", |s| !s.health().ready).await;
    assert!(file_is(&file, &leaf), "the file stays during the outage");

    zk.resume().await.unwrap();
    envs.set(
        &web,
        &env("/prod"),
        content_of("t", json!({"db": {"pool": 99}})).unwrap(),
        &change(),
        None,
    )
    .await
    .unwrap();
    let leaf = view_bytes(&envs, &web, &env("/prod/east")).await;
    wait_for(&state, "the new view after the restart", |s| {
        file_is(&file, &leaf) && s.health().ready
    })
    .await;
}

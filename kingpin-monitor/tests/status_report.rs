//! The monitor's status report (`report_status`): one ephemeral node
//! `/status/<host>` with what it synced, rewritten after a change and
//! gone when the monitor stops; and nothing at all when reporting is off
//! (the default).

use std::time::Duration;

use bytes::Bytes;
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::status::{read_all, HostStatus};
use kingpin_api::NodePath;
use kingpin_monitor::Monitor;

mod support;
use support::{change, name, sqlite_fs, wait_for, zookeeper_s3, Backends, WAIT};

const CONFIG: &str = "config.manageddata.status.flags";

async fn subscribe(backends: &Backends) {
    let metaconfigs = MetaConfigManager::new(backends.coordinator.clone());
    metaconfigs
        .create(&MetaConfig::config(name(CONFIG)).unwrap())
        .await
        .unwrap();
    metaconfigs
        .create_dependency(&name("host.dep"))
        .await
        .unwrap();
    metaconfigs
        .add_to_dependency(&name("host.dep"), &name(CONFIG))
        .await
        .unwrap();
}

/// Polls the status nodes until `condition` holds for this host's report.
async fn wait_for_report(
    backends: &Backends,
    host: &str,
    what: &str,
    mut condition: impl FnMut(Option<&HostStatus>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reports = read_all(backends.coordinator.as_ref()).await.unwrap();
        if condition(reports.iter().find(|r| r.host == host)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {reports:?}"
        );
        // The report is written by another task on its own schedule; there
        // is no event to await from here but the node itself.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reports_versions_and_leaves_on_stop(backends: Backends) {
    subscribe(&backends).await;
    let store = backends.store();
    store
        .write(&name(CONFIG), Bytes::from_static(b"{}"), &change())
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut settings = backends.settings("host.dep", out.path());
    settings.host = Some("reporter-1.example.com".into());
    settings.report_status = true;
    settings.status_interval = Duration::from_millis(100);
    let monitor = Monitor::start(settings).await.unwrap();
    wait_for(monitor.state(), "version 1 on disk", |s| {
        s.entry(&name(CONFIG)).and_then(|e| e.version) == Some(1)
    })
    .await;
    wait_for_report(&backends, "reporter-1.example.com", "version 1", |r| {
        r.is_some_and(|r| {
            r.entries
                .iter()
                .any(|e| e.name == CONFIG && e.version == Some(1))
        })
    })
    .await;
    let node = backends
        .coordinator
        .get(&NodePath::parse("/status/reporter-1.example.com").unwrap())
        .await
        .unwrap();
    assert!(
        node.stat.ephemeral_owner.is_some(),
        "the status node is ephemeral"
    );

    store
        .write(&name(CONFIG), Bytes::from_static(b"{\"a\": 1}"), &change())
        .await
        .unwrap();
    wait_for_report(&backends, "reporter-1.example.com", "version 2", |r| {
        r.is_some_and(|r| {
            r.entries
                .iter()
                .any(|e| e.name == CONFIG && e.version == Some(2))
        })
    })
    .await;

    monitor.stop();
    wait_for_report(&backends, "reporter-1.example.com", "the node to go", |r| {
        r.is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_s3_reports_versions_and_leaves_on_stop() {
    let Some(backends) = zookeeper_s3("status_report", None).await else {
        return;
    };
    reports_versions_and_leaves_on_stop(backends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_is_off_by_default() {
    let backends = sqlite_fs().await;
    subscribe(&backends).await;
    backends
        .store()
        .write(&name(CONFIG), Bytes::from_static(b"{}"), &change())
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut settings = backends.settings("host.dep", out.path());
    settings.host = Some("quiet.example.com".into());
    assert!(!settings.report_status);
    let monitor = Monitor::start(settings).await.unwrap();
    wait_for(monitor.state(), "version 1 on disk", |s| {
        s.entry(&name(CONFIG)).and_then(|e| e.version) == Some(1)
    })
    .await;
    assert!(read_all(backends.coordinator.as_ref())
        .await
        .unwrap()
        .is_empty());
    monitor.stop();
}

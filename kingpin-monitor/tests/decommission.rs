//! Retiring a service: the monitor refuses the update that empties its
//! serverset (health degraded, still 200, the file kept) until an
//! operator accepts it (`ServerSet::accept_next`, `kingpin serverset
//! accept-next`), or, when configured, until the same membership has been
//! refused for `serverset_accept_refused_after`. On real servers.

use std::path::Path;
use std::time::Duration;

use kingpin_api::discovery::{Member, ServerSet};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::ChangeInfo;
use kingpin_monitor::{Monitor, MonitorState};

mod support;
use support::{etcd_fs, name, sqlite_fs, wait_for, zookeeper_s3, Backends};

fn file_is(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|c| c == content)
}

/// Subscribes `host.dep` to discovery.api.prod and joins one member; its
/// membership and the serverset.
async fn one_member(backends: &Backends) -> (ServerSet, kingpin_api::discovery::Membership) {
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    let serverset = MetaConfig::serverset("api", "prod").unwrap();
    manager.create(&serverset).await.unwrap();
    manager.create_dependency(&name("host.dep")).await.unwrap();
    manager
        .add_to_dependency(&name("host.dep"), &serverset.name)
        .await
        .unwrap();
    let api = ServerSet::new(backends.coordinator.clone(), "api", "prod").unwrap();
    let membership = api
        .join(Member::new(kingpin_client::Endpoint::new("10.0.0.1", 80)))
        .await
        .unwrap();
    (api, membership)
}

fn refused(state: &MonitorState) -> bool {
    state
        .entry(&name("discovery.api.prod"))
        .is_some_and(|e| e.refused.is_some())
}

/// The last member leaves on purpose: refused, degraded (ready, 200),
/// the dead endpoint kept; an operator's acceptance lets the empty update
/// through at once, and the host is healthy again. After the acceptance
/// is cancelled, emptying is refused again.
async fn an_accepted_emptying_is_written(backends: Backends) {
    let out = tempfile::tempdir().unwrap();
    let (api, membership) = one_member(&backends).await;
    let monitor = Monitor::start(backends.settings("host.dep", out.path()))
        .await
        .unwrap();
    let file = out.path().join("serverset/discovery.api.prod");
    wait_for(monitor.state(), "the member on disk", |s| {
        file_is(&file, b"10.0.0.1:80\n") && s.health().ready
    })
    .await;

    membership.leave().await.unwrap();
    wait_for(monitor.state(), "the emptying refused", refused).await;
    let health = monitor.state().health();
    assert!(health.ready, "{health:?}");
    assert_eq!(health.status, "degraded");
    assert!(
        health.warnings[0].contains("empties") && health.warnings[0].contains("accept-next"),
        "{health:?}"
    );
    assert!(
        file_is(&file, b"10.0.0.1:80\n"),
        "the last members are kept"
    );

    let who = ChangeInfo::new("ann", "retiring api");
    api.accept_next(Duration::from_secs(600), &who)
        .await
        .unwrap();
    // The reconcile interval is 5 minutes: only the acceptance's watch
    // can bring this about within the wait.
    wait_for(monitor.state(), "the accepted emptying", |s| {
        file_is(&file, b"") && !refused(s)
    })
    .await;
    let health = monitor.state().health();
    assert_eq!((health.ready, health.status), (true, "ok"), "{health:?}");
    let entry = monitor.state().entry(&name("discovery.api.prod")).unwrap();
    assert!(
        entry
            .accepted
            .as_deref()
            .is_some_and(|a| a.contains("ann") && a.contains("retiring api")),
        "{entry:?}"
    );
    let metrics = monitor_metrics(&monitor);
    assert!(
        metrics.contains(
            r#"kingpin_monitor_serverset_accepted_total{serverset="discovery.api.prod",by="acceptance"} 1"#
        ),
        "{metrics}"
    );

    // The service comes back, and the acceptance is withdrawn: the
    // protection is back.
    assert!(api.cancel_acceptance().await.unwrap());
    let again = api
        .join(Member::new(kingpin_client::Endpoint::new("10.0.0.2", 80)))
        .await
        .unwrap();
    wait_for(monitor.state(), "the new member", |_| {
        file_is(&file, b"10.0.0.2:80\n")
    })
    .await;
    again.leave().await.unwrap();
    wait_for(monitor.state(), "the emptying refused again", refused).await;
    assert!(file_is(&file, b"10.0.0.2:80\n"));
}

fn monitor_metrics(monitor: &Monitor) -> String {
    monitor.metrics().encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_emptying_on_zookeeper() {
    if let Some(backends) = zookeeper_s3("accepted_emptying_on_zookeeper", None).await {
        an_accepted_emptying_is_written(backends).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_emptying_on_etcd() {
    if let Some(backends) = etcd_fs("accepted_emptying_on_etcd").await {
        an_accepted_emptying_is_written(backends).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_emptying_on_sqlite() {
    an_accepted_emptying_is_written(sqlite_fs().await).await;
}

/// An acceptance written before the emptying (the operator retires the
/// service in one go), and an expired one that is not honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptance_given_first_is_honoured_and_an_expired_one_is_not() {
    let Some(backends) = zookeeper_s3(
        "an_acceptance_given_first_is_honoured_and_an_expired_one_is_not",
        None,
    )
    .await
    else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let (api, membership) = one_member(&backends).await;
    // Expired the moment it is read: a millisecond.
    let who = ChangeInfo::new("ann", "too short");
    api.accept_next(Duration::from_millis(1), &who)
        .await
        .unwrap();
    let monitor = Monitor::start(backends.settings("host.dep", out.path()))
        .await
        .unwrap();
    let file = out.path().join("serverset/discovery.api.prod");
    wait_for(monitor.state(), "the member", |_| {
        file_is(&file, b"10.0.0.1:80\n")
    })
    .await;
    membership.leave().await.unwrap();
    wait_for(
        monitor.state(),
        "refused despite the expired acceptance",
        refused,
    )
    .await;

    // A valid one, then a new member that leaves again: written at once.
    let second = api
        .join(Member::new(kingpin_client::Endpoint::new("10.0.0.2", 80)))
        .await
        .unwrap();
    wait_for(monitor.state(), "the second member", |_| {
        file_is(&file, b"10.0.0.2:80\n")
    })
    .await;
    let who = ChangeInfo::new("ann", "retiring api");
    api.accept_next(Duration::from_secs(600), &who)
        .await
        .unwrap();
    second.leave().await.unwrap();
    wait_for(monitor.state(), "the accepted emptying", |s| {
        file_is(&file, b"") && !refused(s)
    })
    .await;
    let entry = monitor.state().entry(&name("discovery.api.prod")).unwrap();
    assert_eq!(
        entry.refusals, 1,
        "the accepted update was no refusal: {entry:?}"
    );
}

/// With `serverset_accept_refused_after`, a membership refused that long
/// is written without an operator; the timer is the monitor's own (the
/// reconcile interval is far longer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_held_long_enough_is_written() {
    let Some(backends) = zookeeper_s3("a_refusal_held_long_enough_is_written", None).await else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let (_api, membership) = one_member(&backends).await;
    let mut settings = backends.settings("host.dep", out.path());
    settings.serverset_accept_refused_after = Some(Duration::from_secs(2));
    let monitor = Monitor::start(settings).await.unwrap();
    let file = out.path().join("serverset/discovery.api.prod");
    wait_for(monitor.state(), "the member", |_| {
        file_is(&file, b"10.0.0.1:80\n")
    })
    .await;
    let left_at = std::time::Instant::now();
    membership.leave().await.unwrap();
    wait_for(monitor.state(), "the refusal", refused).await;
    assert!(file_is(&file, b"10.0.0.1:80\n"));
    wait_for(monitor.state(), "the held emptying written", |s| {
        file_is(&file, b"") && !refused(s)
    })
    .await;
    assert!(
        left_at.elapsed() >= Duration::from_secs(2),
        "written only after the hold time"
    );
    let entry = monitor.state().entry(&name("discovery.api.prod")).unwrap();
    assert!(
        entry
            .accepted
            .as_deref()
            .is_some_and(|a| a.contains("serverset_accept_refused_after")),
        "{entry:?}"
    );
}

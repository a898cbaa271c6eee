//! Serversets (design.md §6) on every backend: joining, leaving, keeping a
//! member through session expiry and server restarts, and reading members
//! other clients wrote. Run by [`coordinator_suite!`](crate::coordinator_suite).

use std::sync::Arc;

use kingpin_api::discovery::{alive_endpoints, Member, MemberStatus, ServerSet, MEMBER_PREFIX};
use kingpin_api::{Coordinator, CreateMode, WatchStream};
use kingpin_client::{Endpoint, HostsProvider};

use crate::coordinator::{next_event, p, skipped, EVENT_TIMEOUT};
use crate::harness::{skip, Harness};

fn serverset(c: &Arc<dyn Coordinator>) -> ServerSet {
    ServerSet::new(c.clone(), "api", "test").expect("a valid serverset")
}

fn member(host: &str, port: u16) -> Member {
    Member::new(Endpoint::new(host, port))
}

/// Reads the members now and on every watch event until `done` holds for
/// them.
async fn until_members(
    watch: &mut WatchStream,
    reader: &ServerSet,
    what: &str,
    done: impl Fn(&[Member]) -> bool,
) -> Vec<Member> {
    loop {
        if let Ok(members) = reader.members().await {
            if done(&members) {
                return members;
            }
        }
        next_event(watch, what).await;
    }
}

fn endpoints(members: &[Member]) -> Vec<String> {
    alive_endpoints(members)
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Whether `case` runs: the serverset cases need ephemeral sequential
/// nodes (and most of them watches), as listed in
/// [`CASE_NEEDS`](crate::coordinator::CASE_NEEDS).
fn needs_ephemeral(h: &dyn Harness, c: &dyn Coordinator, case: &str) -> bool {
    !skipped(h, c, case)
}

/// Members joining and leaving are seen by a reader's watch, as
/// ephemeral sequential nodes in the member format, in join order.
pub async fn serverset_join_and_leave(h: &dyn Harness) {
    // Each session is kept whole: a harness may route it through a proxy
    // that lives as long as the session value.
    let service_session = h.connect().await;
    let reader_test_session = h.connect().await;
    let (service, reader_session) = (
        service_session.coordinator.clone(),
        reader_test_session.coordinator.clone(),
    );
    if !needs_ephemeral(h, &*service, "serverset_join_and_leave") {
        return;
    }
    let reader = serverset(&reader_session);
    assert!(
        reader.members().await.unwrap().is_empty(),
        "no serverset yet"
    );
    let mut watch = reader.watch().await.unwrap();

    let first = serverset(&service)
        .join(member("10.0.0.1", 8080).with_shard(1))
        .await
        .unwrap();
    let path = first.path().expect("joined");
    assert!(path.name().starts_with(MEMBER_PREFIX), "{path}");
    let node = reader_session.get(&path).await.unwrap();
    assert_eq!(node.stat.ephemeral_owner, service.session_id());
    assert_eq!(Member::from_json(&node.data).unwrap(), *first.member());
    let members = until_members(&mut watch, &reader, "the first member", |m| m.len() == 1).await;
    assert_eq!(members[0].shard, Some(1));

    let second = serverset(&service)
        .join(member("10.0.0.2", 8080))
        .await
        .unwrap();
    let members = until_members(&mut watch, &reader, "the second member", |m| m.len() == 2).await;
    assert_eq!(endpoints(&members), ["10.0.0.1:8080", "10.0.0.2:8080"]);

    first.leave().await.unwrap();
    let members = until_members(&mut watch, &reader, "the first leaving", |m| m.len() == 1).await;
    assert_eq!(endpoints(&members), ["10.0.0.2:8080"]);
    assert_eq!(reader_session.exists(&path).await.unwrap(), None);

    // Dropped without leave: the node goes too.
    drop(second);
    until_members(
        &mut watch,
        &reader,
        "the dropped member",
        <[Member]>::is_empty,
    )
    .await;
}

/// A member whose session expires is created again on the new session,
/// exactly once, and no twin is left behind.
pub async fn serverset_member_survives_session_expiry(h: &dyn Harness) {
    let service = h.connect().await;
    let reader_test_session = h.connect().await;
    let reader_session = reader_test_session.coordinator.clone();
    if !needs_ephemeral(h, &*service, "serverset_member_survives_session_expiry") {
        return;
    }
    let reader = serverset(&reader_session);
    let mut membership = serverset(&service.coordinator)
        .join(member("10.0.0.3", 9090))
        .await
        .unwrap();
    let before = membership.path().expect("joined");
    let old_session = service.session_id();

    service.expire().await.unwrap();
    let after = tokio::time::timeout(EVENT_TIMEOUT, membership.changed_from(&before))
        .await
        .expect("the member is created again after the session expired");
    assert_ne!(service.session_id(), old_session);
    let node = reader_session.get(&after).await.unwrap();
    assert_eq!(node.stat.ephemeral_owner, service.session_id());
    assert_eq!(reader_session.exists(&before).await.unwrap(), None);
    let members = reader.members().await.unwrap();
    assert_eq!(endpoints(&members), ["10.0.0.3:9090"], "exactly once");
    assert_eq!(
        reader_session.children(reader.path()).await.unwrap().len(),
        1,
        "no twin left behind"
    );
    membership.leave().await.unwrap();
    assert!(reader.members().await.unwrap().is_empty());
}

/// Across a server restart a reader ends up seeing the member exactly
/// once, whether the session survived or a new one re-created it.
pub async fn serverset_member_survives_server_restart(h: &dyn Harness) {
    if !h.can_restart_server() {
        return skip(
            h.name(),
            "serverset_member_survives_server_restart",
            "this harness cannot restart its server",
        );
    }
    let service_session = h.connect().await;
    let service = service_session.coordinator.clone();
    if !needs_ephemeral(h, &*service, "serverset_member_survives_server_restart") {
        return;
    }
    let membership = serverset(&service)
        .join(member("10.0.0.4", 7000))
        .await
        .unwrap();
    h.restart_server().await;

    // Whether the session survived the restart (a reconnect) or not (a new
    // session, the member created again), a reader sees it exactly once.
    let reader_test_session = h.connect().await;
    let reader_session = reader_test_session.coordinator.clone();
    let reader = serverset(&reader_session);
    let mut watch = reader.watch().await.unwrap();
    let members = until_members(&mut watch, &reader, "the member after a restart", |m| {
        m.len() == 1
    })
    .await;
    assert_eq!(endpoints(&members), ["10.0.0.4:7000"]);
    membership.leave().await.unwrap();
    until_members(
        &mut watch,
        &reader,
        "the member leaving",
        <[Member]>::is_empty,
    )
    .await;
}

/// Members written by other clients (Finagle's JSON with extra fields,
/// KingPin's empty `<id>-<host:port>` nodes) are read; a member that is
/// not alive and a node that is not a member are left out of the
/// endpoints.
pub async fn serverset_reads_members_of_other_clients(h: &dyn Harness) {
    let other_session = h.connect().await;
    let other = other_session.coordinator.clone();
    if !needs_ephemeral(h, &*other, "serverset_reads_members_of_other_clients") {
        return;
    }
    let reader = serverset(&other);
    let base = reader.path().as_str().to_owned();
    // As Finagle writes them (extra fields, another field order).
    let finagle = br#"{"status": "ALIVE", "shard": 4, "memberId": "x",
        "serviceEndpoint": {"port": 31000, "host": "10.1.0.1"},
        "additionalEndpoints": {"health": {"host": "10.1.0.1", "port": 31001}}}"#;
    other
        .create(
            &p(&format!("{base}/{MEMBER_PREFIX}")),
            finagle,
            CreateMode::EphemeralSequential,
        )
        .await
        .unwrap();
    let stopping = member("10.1.0.2", 31000).with_status(MemberStatus::Stopping);
    other
        .create(
            &p(&format!("{base}/{MEMBER_PREFIX}")),
            &stopping.to_json(),
            CreateMode::EphemeralSequential,
        )
        .await
        .unwrap();
    // KingPin named members `<id>-<host:port>` and stored nothing in them.
    other
        .create(
            &p(&format!("{base}/0000000001-10.1.0.3:31000")),
            b"",
            CreateMode::Ephemeral,
        )
        .await
        .unwrap();
    // Not a member at all.
    other
        .create(&p(&format!("{base}/lock")), b"", CreateMode::Persistent)
        .await
        .unwrap();

    let members = reader.members().await.unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    assert_eq!(members[0].shard, Some(4));
    assert_eq!(members[0].additional_endpoints["health"].port, 31001);
    assert_eq!(members[1].status, MemberStatus::Stopping);
    assert_eq!(endpoints(&members), ["10.1.0.1:31000", "10.1.0.3:31000"]);
}

/// Takes the provider's changes until it lists `want`.
async fn until_hosts(
    changes: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Endpoint>>,
    want: Vec<Endpoint>,
) {
    loop {
        let hosts = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
            .await
            .unwrap_or_else(|_| panic!("the provider never listed {want:?}"))
            .expect("provider alive");
        if hosts == want {
            return;
        }
    }
}

/// A hosts provider follows members joining and leaving, starts on its
/// fallback, and refuses the update that would empty its list.
pub async fn serverset_hosts_provider_follows_members(h: &dyn Harness) {
    let session = h.connect().await;
    let c = session.coordinator.clone();
    if !needs_ephemeral(h, &*c, "serverset_hosts_provider_follows_members") {
        return;
    }
    let api = serverset(&c);
    let fallback = Endpoint::new("fallback.example", 1);
    let (provider, follower) = api
        .hosts_provider(HostsProvider::builder().fallback([fallback.clone()]))
        .await
        .unwrap();
    assert_eq!(*provider.hosts(), [fallback], "no members: the fallback");
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    provider.on_change(move |hosts| {
        let _ = changed.send(hosts.to_vec());
    });
    let one = api.join(member("10.2.0.1", 80)).await.unwrap();
    until_hosts(&mut changes, vec![Endpoint::new("10.2.0.1", 80)]).await;
    let two = api.join(member("10.2.0.2", 80)).await.unwrap();
    until_hosts(
        &mut changes,
        vec![Endpoint::new("10.2.0.1", 80), Endpoint::new("10.2.0.2", 80)],
    )
    .await;
    one.leave().await.unwrap();
    until_hosts(&mut changes, vec![Endpoint::new("10.2.0.2", 80)]).await;

    // The last one leaving would empty the list: refused, the host stays.
    let mut watch = api.watch().await.unwrap();
    two.leave().await.unwrap();
    until_members(&mut watch, &api, "everyone gone", <[Member]>::is_empty).await;
    let three = api.join(member("10.2.0.3", 80)).await.unwrap();
    let next = tokio::time::timeout(EVENT_TIMEOUT, changes.recv())
        .await
        .expect("the provider follows the new member")
        .expect("provider alive");
    assert_eq!(
        next,
        [Endpoint::new("10.2.0.3", 80)],
        "the next change is the new member: the empty update was refused"
    );
    drop(follower);
    three.leave().await.unwrap();
}

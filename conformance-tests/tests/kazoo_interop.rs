//! Serversets shared with a real third-party client: Python's kazoo
//! (Debian's `python3-kazoo`) writes Finagle serverset members that
//! [`ServerSet`] reads, and reads the ones it writes, on the run's ZooKeeper.
//!
//! Each script runs as a child process (see [`kazoo`](kingpin_conformance_tests::kazoo)).

use std::time::Duration;

use futures::StreamExt;
use kingpin_api::discovery::{alive_endpoints, Member, MemberStatus, ServerSet, MEMBER_PREFIX};
use kingpin_api::{NodePath, WatchStream};
use kingpin_client::Endpoint;
use kingpin_conformance_tests::kazoo::Kazoo;
use serde_json::{json, Value};

/// How long a watch may stay silent while members are expected to change.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates two members as Finagle and Aurora serialize them (`json.dumps`
/// of the dict): the first as Finagle's JSON codec writes it, the second as
/// twitter.common's Python `ServiceInstance.pack` does, with its optional
/// `inet` and `member_id`. Prints the created paths and its session id, then
/// keeps the session until stdin closes.
const WRITE_MEMBERS: &str = r#"
import json, sys
from kazoo.client import KazooClient

hosts, path = sys.argv[1:3]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)
zk.ensure_path(path)

def endpoint(host, port, inet=None):
    d = {"host": host, "port": port}
    if inet is not None:
        d["inet"] = inet
    return d

finagle = {
    "serviceEndpoint": endpoint("10.1.0.1", 8080),
    "additionalEndpoints": {
        "admin": endpoint("10.1.0.1", 9990),
        "http": endpoint("10.1.0.1", 8081),
    },
    "status": "ALIVE",
    "shard": 0,
}
aurora = {
    "serviceEndpoint": endpoint("web-2.example", 31001, inet="10.1.0.2"),
    "additionalEndpoints": {"health": endpoint("web-2.example", 31002, inet="10.1.0.2")},
    "status": "STOPPING",
    "shard": 7,
    "member_id": 7,
}
created = [
    zk.create(path + "/member_", json.dumps(m).encode(), ephemeral=True, sequence=True)
    for m in (finagle, aurora)
]
print(json.dumps({"created": created, "session": zk.client_id[0] & 0xFFFFFFFFFFFFFFFF}), flush=True)
sys.stdin.read()
zk.stop()
zk.close()
"#;

/// Reads every child of the serverset as a Finagle reader would (after a
/// `sync`, so a lagging follower cannot hide our writes) and prints them,
/// sorted by name, with each node's ephemeral owner.
const READ_MEMBERS: &str = r#"
import json, sys
from kazoo.client import KazooClient

hosts, path = sys.argv[1:3]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)
zk.sync(path)
members = []
for name in sorted(zk.get_children(path)):
    data, stat = zk.get(path + "/" + name)
    members.append({
        "name": name,
        "ephemeralOwner": stat.ephemeralOwner & 0xFFFFFFFFFFFFFFFF,
        "member": json.loads(data.decode("utf-8")),
    })
print(json.dumps({"members": members}, sort_keys=True), flush=True)
sys.stdin.read()
zk.stop()
zk.close()
"#;

/// Prints the serverset's children, sorted, now and whenever kazoo's
/// `ChildrenWatch` says they changed, until stdin closes.
const WATCH_CHILDREN: &str = r#"
import json, sys
from kazoo.client import KazooClient

hosts, path = sys.argv[1:3]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)

def changed(children):
    print(json.dumps({"children": sorted(children)}), flush=True)

zk.ChildrenWatch(path, changed)
sys.stdin.read()
zk.stop()
zk.close()
"#;

/// Reads the members now and after every watch event until `done` holds.
async fn until_members(
    watch: &mut WatchStream,
    serverset: &ServerSet,
    what: &str,
    done: impl Fn(&[Member]) -> bool,
) -> Vec<Member> {
    loop {
        let members = serverset.members().await.expect("members are readable");
        if done(&members) {
            return members;
        }
        match tokio::time::timeout(EVENT_TIMEOUT, watch.next()).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the watch ended while waiting for {what}"),
            Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?} while waiting for {what}"),
        }
    }
}

/// Whether `name` is a Finagle member node name: `member_` and ten digits.
fn is_finagle_member_name(name: &str) -> bool {
    name.strip_prefix(MEMBER_PREFIX)
        .is_some_and(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn path_of(value: &Value) -> NodePath {
    let text = value.as_str().expect("a path string");
    NodePath::parse(text).unwrap_or_else(|e| panic!("kazoo's path {text}: {e}"))
}

#[tokio::test]
async fn members_kazoo_writes_are_read() {
    let Some(interop) = Kazoo::find("members_kazoo_writes_are_read").await else {
        return;
    };
    let c = interop.connect().await;
    let serverset = ServerSet::new(c.clone(), "kazoo-writes", "test").expect("a serverset");
    let mut watch = serverset.watch().await.expect("a watch");
    let mut kazoo = interop.run(WRITE_MEMBERS, &[serverset.path().as_str()]);
    let written = kazoo.next_json("the members it created").await;

    let members = until_members(&mut watch, &serverset, "kazoo's members", |m| m.len() == 2).await;
    let finagle = Member::new(Endpoint::new("10.1.0.1", 8080))
        .with_additional_endpoint("admin", Endpoint::new("10.1.0.1", 9990))
        .with_additional_endpoint("http", Endpoint::new("10.1.0.1", 8081))
        .with_shard(0);
    let aurora = Member::new(Endpoint::new("web-2.example", 31001))
        .with_additional_endpoint("health", Endpoint::new("web-2.example", 31002))
        .with_status(MemberStatus::Stopping)
        .with_shard(7);
    assert_eq!(members, [finagle.clone(), aurora.clone()]);
    assert_eq!(
        alive_endpoints(&members),
        [Endpoint::new("10.1.0.1", 8080)],
        "only the ALIVE member serves"
    );

    // The nodes are kazoo's own: sequential names, owned by its session.
    let created = written["created"].as_array().expect("created paths");
    assert_eq!(created.len(), 2, "{written}");
    let session = written["session"].as_u64().expect("a session id");
    for (path, expected) in created.iter().map(path_of).zip([&finagle, &aurora]) {
        assert_eq!(path.parent().as_ref(), Some(serverset.path()), "{path}");
        assert!(is_finagle_member_name(path.name()), "{path}");
        let node = c.get(&path).await.expect("kazoo's member node");
        assert_eq!(node.stat.ephemeral_owner, Some(session), "{path}");
        let member = Member::from_json(&node.data).expect("a Finagle member");
        assert_eq!(&member, expected, "{path}");
    }

    // Closing kazoo's session takes its ephemeral members with it.
    kazoo.finish().await;
    until_members(
        &mut watch,
        &serverset,
        "kazoo's members to go",
        <[Member]>::is_empty,
    )
    .await;
}

#[tokio::test]
async fn members_we_write_are_read_by_kazoo() {
    let Some(interop) = Kazoo::find("members_we_write_are_read_by_kazoo").await else {
        return;
    };
    let c = interop.connect().await;
    let serverset = ServerSet::new(c.clone(), "kazoo-reads", "test").expect("a serverset");
    let sharded = serverset
        .join(
            Member::new(Endpoint::new("10.2.0.1", 8080))
                .with_additional_endpoint("admin", Endpoint::new("10.2.0.1", 9990))
                .with_shard(4),
        )
        .await
        .expect("joined");
    let plain = serverset
        .join(Member::new(Endpoint::new("10.2.0.2", 8081)))
        .await
        .expect("joined");

    let mut kazoo = interop.run(READ_MEMBERS, &[serverset.path().as_str()]);
    let read = kazoo.next_json("the members it read").await;
    kazoo.finish().await;

    let session = c.session_id().expect("a ZooKeeper session");
    let name = |membership: &kingpin_api::discovery::Membership| {
        membership.path().expect("joined").name().to_owned()
    };
    // Exactly these keys and types: twitter.common's reader, for one,
    // requires `status`, `serviceEndpoint` and `additionalEndpoints`.
    let expected = json!({"members": [
        {
            "name": name(&sharded),
            "ephemeralOwner": session,
            "member": {
                "serviceEndpoint": {"host": "10.2.0.1", "port": 8080},
                "additionalEndpoints": {"admin": {"host": "10.2.0.1", "port": 9990}},
                "status": "ALIVE",
                "shard": 4,
            },
        },
        {
            "name": name(&plain),
            "ephemeralOwner": session,
            "member": {
                "serviceEndpoint": {"host": "10.2.0.2", "port": 8081},
                "additionalEndpoints": {},
                "status": "ALIVE",
            },
        },
    ]});
    assert_eq!(read, expected);
    assert_ne!(session, 0, "ephemeral nodes have an owner");
    for membership in [&sharded, &plain] {
        assert!(is_finagle_member_name(&name(membership)), "{read}");
    }
}

#[tokio::test]
async fn kazoo_children_watch_sees_our_members_leave() {
    let Some(interop) = Kazoo::find("kazoo_children_watch_sees_our_members_leave").await else {
        return;
    };
    let c = interop.connect().await;
    let serverset = ServerSet::new(c.clone(), "kazoo-watches", "test").expect("a serverset");
    let first = serverset
        .join(Member::new(Endpoint::new("10.3.0.1", 8080)))
        .await
        .expect("joined");
    let second = serverset
        .join(Member::new(Endpoint::new("10.3.0.2", 8080)))
        .await
        .expect("joined");
    let [first_name, second_name] =
        [&first, &second].map(|m| m.path().expect("joined").name().to_owned());

    let mut kazoo = interop.run(WATCH_CHILDREN, &[serverset.path().as_str()]);
    let children = |names: &[&str]| json!({ "children": names });
    kazoo
        .until_json("both members", |v| {
            *v == children(&[&first_name, &second_name])
        })
        .await;
    first.leave().await.expect("left");
    kazoo
        .until_json("the first member leaving", |v| {
            *v == children(&[&second_name])
        })
        .await;
    // Dropped without leave: the node goes too.
    drop(second);
    kazoo
        .until_json("the second member going", |v| *v == children(&[]))
        .await;
    kazoo.finish().await;
}

//! Recipes shared with Python's kazoo on the run's ZooKeeper: our `Lock`
//! and kazoo's `Lock` on one path exclude each other, and our `Party` and
//! kazoo's read each other's members. Both follow kazoo's node names
//! (`<uuid hex>__lock__<sequence>`, `<uuid hex>__party__`).

use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{NodePath, WatchKind};
use kingpin_conformance_tests::kazoo::Kazoo;
use kingpin_recipes::{Lock, Party};
use serde_json::{json, Value};

/// How long a watch may stay silent while contenders are expected to change.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A kazoo `Lock` on the path, with the identifier "kazoo", driven by
/// commands on stdin: `try` (non-blocking acquire), `acquire` (blocking),
/// `release`, `contenders`. Prints one JSON line per command.
const LOCK: &str = r#"
import json, sys
from kazoo.client import KazooClient

hosts, path = sys.argv[1:3]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)
lock = zk.Lock(path, "kazoo")
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "try":
        print(json.dumps({"acquired": lock.acquire(blocking=False)}), flush=True)
    elif command == "acquire":
        lock.acquire()
        print(json.dumps({"acquired": True, "node": lock.node}), flush=True)
    elif command == "release":
        lock.release()
        print(json.dumps({"released": True}), flush=True)
    elif command == "contenders":
        print(json.dumps({"contenders": lock.contenders()}), flush=True)
zk.stop()
zk.close()
"#;

/// A kazoo `Party` on the path, driven by commands: `join` (as
/// "kazoo-member"), `list` (the members' identifiers, sorted), `leave`.
const PARTY: &str = r#"
import json, sys
from kazoo.client import KazooClient

hosts, path = sys.argv[1:3]
zk = KazooClient(hosts=hosts)
zk.start(timeout=15)
party = zk.Party(path, "kazoo-member")
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    command = line.strip()
    if command == "join":
        party.join()
        print(json.dumps({"joined": party.node}), flush=True)
    elif command == "list":
        print(json.dumps({"members": sorted(party)}), flush=True)
    elif command == "leave":
        party.leave()
        print(json.dumps({"left": True}), flush=True)
zk.stop()
zk.close()
"#;

/// Whether `name` is a kazoo lock contender: 32 hex digits, `__lock__`,
/// 10 digits.
fn is_kazoo_contender(name: &str) -> bool {
    let Some((id, sequence)) = name.split_once("__lock__") else {
        return false;
    };
    id.len() == 32
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && sequence.len() == 10
        && sequence.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_lock_and_kazoos_exclude_each_other() {
    let Some(kazoo) = Kazoo::find("our_lock_and_kazoos_exclude_each_other").await else {
        return;
    };
    let c = kazoo.connect().await;
    let path = NodePath::parse("/recipes/shared-lock").unwrap();
    let ours = Lock::new(c.clone(), path.clone()).with_identifier("kingpin");
    let mut theirs = kazoo.run(LOCK, &[path.as_str()]);
    theirs.next_json("ready").await;

    // We hold: kazoo cannot, and queues behind us.
    let held = ours.lock().await.unwrap();
    assert!(is_kazoo_contender(held.node().name()), "{}", held.node());
    theirs.send("try");
    assert_eq!(
        theirs.next_json("its try").await,
        json!({"acquired": false})
    );
    let mut queue = c.watch(&path, WatchKind::Children).await.unwrap();
    theirs.send("acquire");
    let contenders = loop {
        let contenders = ours.contenders().await.unwrap();
        if contenders.len() == 2 {
            break contenders;
        }
        tokio::time::timeout(EVENT_TIMEOUT, queue.next())
            .await
            .expect("kazoo's contender to appear");
    };
    assert_eq!(contenders[0].node, *held.node());
    assert!(
        is_kazoo_contender(contenders[1].node.name()),
        "{:?}",
        contenders[1]
    );
    assert_eq!(contenders[1].identifier, b"kazoo");

    // We release: kazoo holds, and we cannot.
    held.release().await.unwrap();
    let acquired = theirs.next_json("its acquisition").await;
    assert_eq!(acquired["acquired"], Value::Bool(true), "{acquired}");
    assert!(ours.try_lock().await.unwrap().is_none(), "kazoo holds");

    // We queue behind kazoo and hold once it releases.
    let waiting = {
        let ours = ours.clone();
        tokio::spawn(async move { ours.lock().await })
    };
    loop {
        if ours.contenders().await.unwrap().len() == 2 {
            break;
        }
        tokio::time::timeout(EVENT_TIMEOUT, queue.next())
            .await
            .expect("our contender to appear");
    }
    theirs.send("contenders");
    let seen = theirs.next_json("its contenders").await;
    assert_eq!(seen, json!({"contenders": ["kazoo", "kingpin"]}));
    assert!(!waiting.is_finished(), "we took the lock kazoo holds");
    theirs.send("release");
    theirs.next_json("its release").await;
    let ours_again = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("our turn after kazoo's release")
        .unwrap()
        .unwrap();
    theirs.send("try");
    assert_eq!(
        theirs.next_json("its second try").await,
        json!({"acquired": false})
    );
    ours_again.release().await.unwrap();
    theirs.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_party_and_kazoos_read_each_others_members() {
    let Some(kazoo) = Kazoo::find("our_party_and_kazoos_read_each_others_members").await else {
        return;
    };
    let c = kazoo.connect().await;
    let path = NodePath::parse("/recipes/shared-party").unwrap();
    let party = Party::new(c.clone(), path.clone());
    let mut changes = party.watch().await.unwrap();
    let ours = party.join("kingpin-member").await.unwrap();
    let mut theirs = kazoo.run(PARTY, &[path.as_str()]);
    theirs.next_json("ready").await;
    theirs.send("join");
    let joined = theirs.next_json("its join").await;
    let kazoo_node = joined["joined"].as_str().expect("its node name").to_owned();
    assert!(kazoo_node.ends_with("__party__"), "{kazoo_node}");

    // Kazoo reads ours, we read kazoo's.
    theirs.send("list");
    assert_eq!(
        theirs.next_json("its members").await,
        json!({"members": ["kazoo-member", "kingpin-member"]})
    );
    let members = loop {
        let members = party.members().await.unwrap();
        if members.len() == 2 {
            break members;
        }
        tokio::time::timeout(EVENT_TIMEOUT, changes.next())
            .await
            .expect("kazoo's member to appear");
    };
    let mut data: Vec<&[u8]> = members.iter().map(|m| m.data.as_slice()).collect();
    data.sort();
    assert_eq!(data, [&b"kazoo-member"[..], &b"kingpin-member"[..]]);
    assert!(members.iter().any(|m| m.node.name() == kazoo_node));
    assert!(ours.node().name().ends_with("__party__"));

    // Each sees the other leave.
    theirs.send("leave");
    theirs.next_json("its leave").await;
    loop {
        if party.members().await.unwrap().len() == 1 {
            break;
        }
        tokio::time::timeout(EVENT_TIMEOUT, changes.next())
            .await
            .expect("kazoo's member to leave");
    }
    ours.leave().await.unwrap();
    theirs.send("list");
    assert_eq!(
        theirs.next_json("its members").await,
        json!({"members": []})
    );
    theirs.finish().await;
}

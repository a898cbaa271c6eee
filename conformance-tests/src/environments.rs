//! The environments cases of the config-core suite ([`config_suite!`](crate::config_suite)):
//! inheritance and merge rules, views that concurrent writers never
//! clobber, associations at scale, deletion, pins, export and import, and
//! bad input that writes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kingpin_api::environment::{
    content_of, merge_chain, sources, Content, EnvPath, Environments, HostId, ServiceName,
};
use kingpin_api::{
    ChangeInfo, ConfigStore, CreateMode, ErrorKind, NodePath, WatchEvent, WatchKind,
};
use serde_json::{json, Value};

use crate::config_store::{snapshot, ConfigBackends};

fn who(message: &str) -> ChangeInfo {
    ChangeInfo::new("conformance", message)
}

fn content(value: Value) -> Content {
    content_of("test content", value).expect("test content is an object")
}

fn env(path: &str) -> EnvPath {
    EnvPath::parse(path).expect("test paths are valid")
}

fn host(name: &str) -> HostId {
    HostId::parse(name).expect("test hosts are valid")
}

async fn environments(backends: &dyn ConfigBackends) -> Environments {
    Environments::new(ConfigStore::new(backends.session().await, backends.blobs()))
}

/// root → /prod → /prod/east, as the cases share it.
async fn depth_three(envs: &Environments, service: &ServiceName) {
    envs.create(
        service,
        &EnvPath::root(),
        content(json!({"db": {"host": "a", "pool": 5}, "debug": true, "name": "svc"})),
        &who("root"),
    )
    .await
    .unwrap();
    envs.create(
        service,
        &env("/prod"),
        content(json!({"db": {"pool": 20}, "debug": null})),
        &who("prod"),
    )
    .await
    .unwrap();
    envs.create(
        service,
        &env("/prod/east"),
        content(json!({"db": {"host": "b"}, "region": "east"})),
        &who("east"),
    )
    .await
    .unwrap();
}

/// Each view is the merge of the current contents of its chain, and its
/// record names exactly the versions merged.
async fn assert_views_consistent(envs: &Environments, service: &ServiceName) {
    for path in envs.tree(service).await.unwrap() {
        let mut chain = Vec::new();
        let mut expected_sources = Vec::new();
        for link in path.chain() {
            let found = envs.read(service, &link).await.unwrap().unwrap();
            expected_sources.push((
                service.content_config(&link).unwrap().to_string(),
                found.record.version,
            ));
            chain.push(found.content);
        }
        let view = envs.view(service, &path).await.unwrap().unwrap();
        assert_eq!(
            view.content,
            merge_chain(chain.iter()),
            "the view of {path}"
        );
        let recorded: Vec<(String, u64)> = view
            .record
            .sources
            .iter()
            .map(|s| (s.config.clone(), s.version))
            .collect();
        assert_eq!(recorded, expected_sources, "the provenance of {path}");
    }
}

/// Deep merge, deletion by `null`, replacement, provenance, history and
/// rollback, through a tree of depth 3.
pub async fn environment_inheritance_at_depth_3(backends: &dyn ConfigBackends) {
    let envs = environments(backends).await;
    let web = ServiceName::parse("web").unwrap();
    depth_three(&envs, &web).await;
    let leaf = env("/prod/east");
    let view = envs.view(&web, &leaf).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(view.content),
        json!({"db": {"host": "b", "pool": 20}, "name": "svc", "region": "east"})
    );
    let prod = envs.view(&web, &env("/prod")).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(prod.content),
        json!({"db": {"host": "a", "pool": 20}, "name": "svc"}),
        "null removed debug"
    );

    // A root write reaches every descendant view, in one commit.
    let write = envs
        .update(&web, &EnvPath::root(), &who("timeout"), |c| {
            let mut c = c.clone();
            c.insert("name".into(), json!("renamed"));
            c["db"]["timeout"] = json!(3);
            Ok(Some(c))
        })
        .await
        .unwrap();
    assert_eq!(write.record.version, 2);
    let rebuilt: Vec<String> = write.views.iter().map(|(e, _)| e.to_string()).collect();
    assert_eq!(rebuilt, ["/", "/prod", "/prod/east"]);
    let view = envs.view(&web, &leaf).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(view.content.clone()),
        json!({"db": {"host": "b", "pool": 20, "timeout": 3}, "name": "renamed", "region": "east"})
    );
    assert_views_consistent(&envs, &web).await;

    // Where each value comes from.
    let chain: Vec<(EnvPath, Content)> = {
        let mut chain = Vec::new();
        for link in leaf.chain() {
            chain.push((
                link.clone(),
                envs.read(&web, &link).await.unwrap().unwrap().content,
            ));
        }
        chain
    };
    let refs: Vec<(EnvPath, &Content)> = chain.iter().map(|(e, c)| (e.clone(), c)).collect();
    let from: BTreeMap<String, String> = sources(&refs)
        .into_iter()
        .map(|s| (s.pointer, s.environment.to_string()))
        .collect();
    assert_eq!(from["/db/host"], "/prod/east");
    assert_eq!(from["/db/pool"], "/prod");
    assert_eq!(from["/db/timeout"], "/");

    // A leaf removes a nested inherited key; an object replaces a scalar.
    envs.set(
        &web,
        &leaf,
        content(json!({"db": {"pool": null}, "name": {"short": "w"}})),
        &who("deep null"),
        Some(1),
    )
    .await
    .unwrap();
    let view = envs.view(&web, &leaf).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(view.content),
        json!({"db": {"host": "a", "timeout": 3}, "name": {"short": "w"}})
    );
    let stale = envs
        .set(&web, &leaf, content(json!({})), &who("stale"), Some(1))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::BadVersion, "{stale}");

    // History and rollback of an environment rebuild its view.
    let history = envs
        .store()
        .history(&web.content_config(&leaf).unwrap())
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        [1, 2]
    );
    envs.rollback(&web, &leaf, 1, &who("back")).await.unwrap();
    let view = envs.view(&web, &leaf).await.unwrap().unwrap();
    assert_eq!(
        view.content["db"],
        json!({"host": "b", "pool": 20, "timeout": 3})
    );
    assert_views_consistent(&envs, &web).await;
}

/// 8 writers on their own sessions, 4 on the root and 4 on a leaf of a
/// depth-3 tree, 100 read-modify-writes each: nothing is lost, and every
/// view is the merge of the final contents with matching provenance.
pub async fn environment_writers_never_clobber_views(backends: &dyn ConfigBackends) {
    let envs = environments(backends).await;
    let web = ServiceName::parse("web").unwrap();
    depth_three(&envs, &web).await;
    const WRITES: u64 = 100;
    let mut writers = Vec::new();
    for writer in 0..8u64 {
        let envs = environments(backends).await;
        let web = web.clone();
        let target = if writer < 4 {
            EnvPath::root()
        } else {
            env("/prod/east")
        };
        writers.push(tokio::spawn(async move {
            for n in 0..WRITES {
                envs.update(&web, &target, &who("writer"), |c| {
                    let mut c = c.clone();
                    c.insert(format!("w{writer}"), json!(n));
                    Ok(Some(c))
                })
                .await
                .unwrap_or_else(|e| panic!("writer {writer}, write {n}: {e}"));
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let root = envs.read(&web, &EnvPath::root()).await.unwrap().unwrap();
    let leaf = envs.read(&web, &env("/prod/east")).await.unwrap().unwrap();
    assert_eq!(root.record.version, 1 + 4 * WRITES, "no root write lost");
    assert_eq!(leaf.record.version, 1 + 4 * WRITES, "no leaf write lost");
    for writer in 0..8 {
        let holder = if writer < 4 { &root } else { &leaf };
        assert_eq!(holder.content[&format!("w{writer}")], json!(WRITES - 1));
    }
    assert_views_consistent(&envs, &web).await;
}

/// 10,000 hosts associated in one service, one node each; remapping one
/// host wakes its own watch and no other host's.
pub async fn environment_associations_at_scale(backends: &dyn ConfigBackends) {
    let envs = environments(backends).await;
    let web = ServiceName::parse("web").unwrap();
    depth_three(&envs, &web).await;
    let hosts: Vec<HostId> = (0..10_000)
        .map(|i| host(&format!("web-{i:05}.example.com")))
        .collect();
    let mut tasks = Vec::new();
    for (i, chunk) in hosts.chunks(1250).enumerate() {
        let envs = environments(backends).await;
        let (web, chunk) = (web.clone(), chunk.to_vec());
        let target = if i % 2 == 0 {
            env("/prod")
        } else {
            env("/prod/east")
        };
        tasks.push(tokio::spawn(async move {
            envs.associate_many(&web, &chunk, &target).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let in_prod = envs.hosts_in(&web, &env("/prod")).await.unwrap();
    let in_east = envs.hosts_in(&web, &env("/prod/east")).await.unwrap();
    assert_eq!((in_prod.len(), in_east.len()), (5000, 5000));

    let watcher = backends.session().await;
    let moved = &hosts[4321];
    let mut moved_watch = watcher
        .watch(&web.host_path(moved).unwrap(), WatchKind::Data)
        .await
        .unwrap();
    let mut others = Vec::new();
    for other in hosts.iter().step_by(50).filter(|h| *h != moved) {
        others.push((
            other.clone(),
            watcher
                .watch(&web.host_path(other).unwrap(), WatchKind::Data)
                .await
                .unwrap(),
        ));
    }
    let canary = NodePath::parse("/canary").unwrap();
    watcher
        .create(&canary, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let mut canary_watch = watcher.watch(&canary, WatchKind::Data).await.unwrap();

    envs.associate(&web, moved, &env("/")).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), moved_watch.next())
        .await
        .expect("the remapped host's watch fires");
    assert_eq!(event, Some(WatchEvent::Changed));
    // Whatever the remap woke has been delivered once a later change is.
    watcher.set(&canary, b"1", None).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(30), canary_watch.next())
        .await
        .expect("the canary fires");
    assert_eq!(event, Some(WatchEvent::Changed));
    for (other, watch) in &mut others {
        assert!(
            watch.next().now_or_never().is_none(),
            "remapping {moved} woke {other}"
        );
    }
    let (association, _) = envs.association(&web, moved).await.unwrap().unwrap();
    assert_eq!(association.environment, EnvPath::root());
    assert_eq!(
        envs.hosts_in(&web, &EnvPath::root()).await.unwrap(),
        std::slice::from_ref(moved)
    );
}

/// Deleting needs force when children or hosts remain and reports what it
/// removed; pins hold a view version until unpinned.
pub async fn environment_delete_and_pin(backends: &dyn ConfigBackends) {
    let envs = environments(backends).await;
    let web = ServiceName::parse("web").unwrap();
    depth_three(&envs, &web).await;
    let (h1, h2) = (host("h1.example.com"), host("h2.example.com"));
    envs.associate(&web, &h1, &env("/prod/east")).await.unwrap();
    envs.associate(&web, &h2, &env("/prod")).await.unwrap();

    let pinned = envs.pin(&web, &h1, 1).await.unwrap();
    assert_eq!(pinned.pinned_version, Some(1));
    assert_eq!(
        envs.pin(&web, &h1, 99).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    envs.set(
        &web,
        &env("/prod/east"),
        content(json!({"region": "east-2"})),
        &who("move"),
        None,
    )
    .await
    .unwrap();
    let kept = envs
        .view_at(&web, &env("/prod/east"), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.content["region"],
        json!("east"),
        "the pinned version is still there"
    );
    assert_eq!(envs.unpin(&web, &h1).await.unwrap().pinned_version, None);

    let refused = envs.delete(&web, &env("/prod"), false).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::NotEmpty);
    assert!(refused.to_string().contains("/prod/east"), "{refused}");
    assert!(envs.read(&web, &env("/prod/east")).await.unwrap().is_some());
    let deletion = envs.delete(&web, &env("/prod"), true).await.unwrap();
    assert_eq!(deletion.environments, [env("/prod"), env("/prod/east")]);
    let mut removed: Vec<String> = deletion
        .associations
        .iter()
        .map(|a| a.host.to_string())
        .collect();
    removed.sort();
    assert_eq!(removed, ["h1.example.com", "h2.example.com"]);
    assert!(envs.association(&web, &h1).await.unwrap().is_none());
    assert_eq!(envs.tree(&web).await.unwrap(), [EnvPath::root()]);
    // A deleted environment comes back with a history of its own.
    envs.create(
        &web,
        &env("/prod"),
        content(json!({"again": true})),
        &who("again"),
    )
    .await
    .unwrap();
    let history = envs
        .store()
        .history(&web.content_config(&env("/prod")).unwrap())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].message, "again");
}

/// `export` then `import` under another name gives the same views and
/// associations.
pub async fn environment_export_and_import(backends: &dyn ConfigBackends) {
    let envs = environments(backends).await;
    let web = ServiceName::parse("web").unwrap();
    depth_three(&envs, &web).await;
    envs.associate(&web, &host("h1.example.com"), &env("/prod/east"))
        .await
        .unwrap();
    let mut document = envs.export(&web).await.unwrap();
    assert_eq!(document.environments.len(), 3);
    document.service = "copy".into();
    let report = envs.import(&document, &who("import")).await.unwrap();
    assert_eq!((report.environments.len(), report.hosts), (3, 1));
    let copy = ServiceName::parse("copy").unwrap();
    for path in envs.tree(&web).await.unwrap() {
        let original = envs.view(&web, &path).await.unwrap().unwrap();
        let imported = envs.view(&copy, &path).await.unwrap().unwrap();
        assert_eq!(original.content, imported.content, "{path}");
    }
    assert_views_consistent(&envs, &copy).await;
    let (association, _) = envs
        .association(&copy, &host("h1.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(association.environment, env("/prod/east"));
    let again = envs.import(&document, &who("again")).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
}

/// Bad input is a clear error and writes nothing: non-object content,
/// invalid names, a child of a missing parent, an association with a
/// missing environment, views over the size limit.
pub async fn environment_bad_input_writes_nothing(backends: &dyn ConfigBackends) {
    let coordinator = backends.session().await;
    let store = ConfigStore::new(coordinator.clone(), backends.blobs()).with_max_size(1000);
    let envs = Environments::new(store);
    let web = ServiceName::parse("web").unwrap();
    let big = "x".repeat(600);
    envs.create(
        &web,
        &EnvPath::root(),
        content(json!({"big": big})),
        &who("root"),
    )
    .await
    .unwrap();
    // /prod's view (~930 bytes) fits; a bigger root would push it over.
    envs.create(
        &web,
        &env("/prod"),
        content(json!({"p": "z".repeat(300)})),
        &who("prod"),
    )
    .await
    .unwrap();
    let before = snapshot(coordinator.as_ref(), backends.blobs().as_ref()).await;

    for bad in ["[1, 2]", "\"text\"", "null", "{"] {
        let err =
            kingpin_api::environment::parse_content("the content", bad.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    assert!(ServiceName::parse("Web")
        .unwrap_err()
        .to_string()
        .contains("Web"));
    assert!(EnvPath::parse("prod/../x")
        .unwrap_err()
        .to_string()
        .contains(".."));
    assert!(HostId::parse("a/b").is_err());

    let err = envs
        .create(
            &web,
            &env("/staging/east"),
            content(json!({})),
            &who("orphan"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("/staging"), "{err}");
    let err = envs
        .create(
            &ServiceName::parse("nope").unwrap(),
            &env("/prod"),
            content(json!({})),
            &who("x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = envs
        .associate(&web, &host("h.example.com"), &env("/missing"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("/missing"), "{err}");
    let err = envs
        .pin(&web, &host("h.example.com"), 42)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // A child whose content fits but whose view does not.
    let err = envs
        .create(
            &web,
            &env("/prod/big"),
            content(json!({"more": "y".repeat(600)})),
            &who("too big"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(err.to_string().contains("views"), "names the view: {err}");
    // A root write whose own view fits but /prod's does not.
    let err = envs
        .set(
            &web,
            &EnvPath::root(),
            content(json!({"big": "x".repeat(700)})),
            &who("grows"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    let after = snapshot(coordinator.as_ref(), backends.blobs().as_ref()).await;
    assert_eq!(before, after, "refused changes wrote nothing");
}

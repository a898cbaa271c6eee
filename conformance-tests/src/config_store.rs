//! The config-core suite: the config store, managed data, the decider and
//! the metaconfig manager on a real coordinator and a real blob store,
//! through [`config_suite!`](crate::config_suite).
//!
//! Each case gets a [`ConfigBackends`] confined to a fresh namespace and
//! blob prefix; sessions are separate coordinator connections, as separate
//! hosts would have.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kingpin_api::decider::ManagedDecider;
use kingpin_api::managed::{
    managed_data_name, ManagedHashMap, ManagedJson, ManagedList, ManagedMappedList,
};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{
    BlobKey, BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator, ErrorKind, NodePath,
    WatchEvent, WatchKind,
};

use crate::coordinator::PROMPT_EVENT_TIMEOUT;
use crate::harness::{skip_unless, Capability};

pub use crate::environments::{
    environment_associations_at_scale, environment_bad_input_writes_nothing,
    environment_delete_and_pin, environment_export_and_import, environment_inheritance_at_depth_3,
    environment_writers_never_clobber_views,
};

/// A coordinator namespace and blob prefix of one test.
#[async_trait]
pub trait ConfigBackends: Send + Sync {
    /// A new coordinator session in the test's namespace.
    async fn session(&self) -> Arc<dyn Coordinator>;
    /// The test's blob store.
    fn blobs(&self) -> Arc<dyn BlobStore>;
    /// Short backend name for messages (skips, failures).
    fn name(&self) -> &str {
        "config"
    }
}

async fn store(backends: &dyn ConfigBackends) -> ConfigStore {
    ConfigStore::new(backends.session().await, backends.blobs())
}

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).expect("test names are valid")
}

fn change(message: &str) -> ChangeInfo {
    ChangeInfo::new("conformance", message)
}

/// Everything in the namespace and under the prefix, to show that a refused
/// change touched nothing.
pub(crate) async fn snapshot(coordinator: &dyn Coordinator, blobs: &dyn BlobStore) -> Vec<String> {
    let mut seen = Vec::new();
    let mut pending = vec![NodePath::root()];
    while let Some(path) = pending.pop() {
        let node = coordinator.get(&path).await;
        if let Ok(node) = node {
            seen.push(format!(
                "{path} v{} {}",
                node.stat.version,
                String::from_utf8_lossy(&node.data)
            ));
        }
        for child in coordinator.children(&path).await.unwrap_or_default() {
            pending.push(path.join(&child).expect("valid child"));
        }
    }
    for meta in blobs.list(None).await.expect("blob listing") {
        seen.push(format!("blob {} {}", meta.key, meta.size));
    }
    seen.sort();
    seen
}

/// Every managed structure round-trips and is stored in KingPin's format.
pub async fn managed_structures_in_kingpin_format(backends: &dyn ConfigBackends) {
    let store = store(backends).await;
    let list = ManagedList::<String>::new(
        store.clone(),
        managed_data_name("spam", "blacklist").unwrap(),
    );
    assert_eq!(
        list.add_many(["b".into(), "a".into(), "é".into()])
            .await
            .unwrap(),
        3
    );
    assert!(list.remove(&"b".into()).await.unwrap());
    assert_eq!(list.get().await.unwrap(), ["a", "é"]);
    let stored = store.read(list.name()).await.unwrap().unwrap();
    assert_eq!(&stored.content[..], br#"["a", "\u00e9"]"#);

    let map = ManagedHashMap::<f64>::new(store.clone(), name("config.manageddata.app.limits"));
    map.set_many([("zz".into(), 1.5), ("aa".into(), 2.0)])
        .await
        .unwrap();
    let stored = store.read(map.name()).await.unwrap().unwrap();
    assert_eq!(&stored.content[..], br#"{"aa": 2.0, "zz": 1.5}"#);

    let mapped =
        ManagedMappedList::<u32>::new(store.clone(), name("config.manageddata.app.shards"));
    mapped.add_many("east", [3, 1, 3]).await.unwrap();
    mapped.add("west", 2).await.unwrap();
    assert_eq!(mapped.get("east").await.unwrap(), [3, 1]);
    let stored = store.read(mapped.name()).await.unwrap().unwrap();
    assert_eq!(&stored.content[..], br#"{"east": [3, 1], "west": [2]}"#);

    let json = ManagedJson::<serde_json::Value>::new(store.clone(), name("config.app.settings"));
    json.set_text(r#"{"b": {"y": 1, "x": [true, null]}, "a": "s"}"#)
        .await
        .unwrap();
    let stored = store.read(json.name()).await.unwrap().unwrap();
    assert_eq!(
        &stored.content[..],
        br#"{"a": "s", "b": {"x": [true, null], "y": 1}}"#
    );
}

/// 8 writers, each on its own session, add 200 distinct items each to one
/// list: exactly 1600 items, because conflicts are retried, not lost.
pub async fn concurrent_list_adds_lose_nothing(backends: &dyn ConfigBackends) {
    let list_name = managed_data_name("load", "items").unwrap();
    let mut writers = Vec::new();
    for writer in 0..8 {
        let list = ManagedList::<String>::new(store(backends).await, list_name.clone())
            .with_author(format!("writer-{writer}"));
        writers.push(tokio::spawn(async move {
            for i in 0..200 {
                let added = list.add(format!("w{writer}-{i}")).await.unwrap();
                assert!(added, "each item is new");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let reader = ManagedList::<String>::new(store(backends).await, list_name);
    let items = reader.get().await.unwrap();
    assert_eq!(items.len(), 1600);
    assert_eq!(items.iter().collect::<BTreeSet<_>>().len(), 1600);
}

/// Invalid names are refused before any I/O: nothing in the store changes.
pub async fn invalid_names_touch_nothing(backends: &dyn ConfigBackends) {
    let coordinator = backends.session().await;
    let blobs = backends.blobs();
    let before = snapshot(&*coordinator, &*blobs).await;
    for bad in [
        "Config.Upper",
        "a..b",
        "a/b",
        "../etc/passwd",
        ".leading",
        "trailing.",
        "nul\0byte",
        "",
        "space here",
    ] {
        let err = ConfigName::parse(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    assert!(ConfigName::parse(&"a".repeat(256)).is_err());
    assert!(managed_data_name("spam.x", "list").is_err());
    assert!(MetaConfig::serverset("a/b", "prod").is_err());
    let manager = MetaConfigManager::new(coordinator.clone());
    let err = manager
        .create_dependency(&name("not_a_dependency"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(snapshot(&*coordinator, &*blobs).await, before);
}

/// Content that is not JSON of the right shape is refused by typed
/// structures, and the stored version stays as it was.
pub async fn non_json_content_for_typed_structures_changes_nothing(backends: &dyn ConfigBackends) {
    let store = store(backends).await;
    let n = name("config.manageddata.app.typed");
    store
        .write(&n, Bytes::from_static(b"not json"), &change("raw"))
        .await
        .unwrap();
    let before = snapshot(&*backends.session().await, &*backends.blobs()).await;
    let list = ManagedList::<String>::new(store.clone(), n.clone());
    let err = list.add("x".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("does not hold JSON"), "{err}");
    let map = ManagedHashMap::<u32>::new(store.clone(), n.clone());
    assert_eq!(
        map.set("k", 1).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        snapshot(&*backends.session().await, &*backends.blobs()).await,
        before
    );

    let json = ManagedJson::<Vec<u32>>::new(store.clone(), name("config.app.numbers"));
    json.set(&vec![1, 2]).await.unwrap();
    let before_json = snapshot(&*backends.session().await, &*backends.blobs()).await;
    for bad in ["{not json", r#"["one"]"#] {
        let err = json.set_text(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
    assert_eq!(json.get().await.unwrap(), Some(vec![1, 2]));
    assert_eq!(
        snapshot(&*backends.session().await, &*backends.blobs()).await,
        before_json
    );
}

/// Decider values outside [0, 100] are refused; nothing is written.
pub async fn decider_values_out_of_range_change_nothing(backends: &dyn ConfigBackends) {
    let decider = ManagedDecider::new(store(backends).await);
    decider.set("new_feed", 25.5).await.unwrap();
    let before = snapshot(&*backends.session().await, &*backends.blobs()).await;
    for bad in [-1.0, 100.5, f64::NAN] {
        let err = decider.set("new_feed", bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }
    assert_eq!(
        snapshot(&*backends.session().await, &*backends.blobs()).await,
        before
    );
    let loaded = decider.load().await.unwrap();
    assert_eq!(loaded.value("new_feed"), Some(25.5));
}

/// Replaces a blob's bytes, as bit rot or a bad actor would.
async fn overwrite_blob(blobs: &dyn BlobStore, key: &BlobKey, content: &'static [u8]) {
    blobs.delete(key).await.unwrap();
    blobs
        .put_if_absent(key, Bytes::from_static(content))
        .await
        .unwrap();
}

/// A blob whose sha256 does not match its record is an error for readers
/// and writers alike; the record is untouched.
pub async fn corrupt_blob_is_an_error_and_changes_nothing(backends: &dyn ConfigBackends) {
    let writer = store(backends).await;
    let n = name("config.app.corrupt");
    let record = writer
        .write(&n, Bytes::from_static(b"[1]"), &change("good"))
        .await
        .unwrap();
    overwrite_blob(&*backends.blobs(), &record.blob().unwrap(), b"[2]").await;
    let reader = store(backends).await;
    let err = reader.read(&n).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(
        err.to_string().contains("corrupt") && err.to_string().contains(n.as_str()),
        "{err}"
    );
    let list = ManagedList::<u32>::new(reader.clone(), n.clone());
    assert!(list
        .add(3)
        .await
        .unwrap_err()
        .to_string()
        .contains("corrupt"));
    assert_eq!(reader.record(&n).await.unwrap().unwrap().0, record);
}

/// A record pointing at a missing blob is an error naming the blob.
pub async fn missing_blob_is_an_error(backends: &dyn ConfigBackends) {
    let store = store(backends).await;
    let n = name("config.app.missing");
    let record = store
        .write(&n, Bytes::from_static(b"x"), &change("one"))
        .await
        .unwrap();
    backends
        .blobs()
        .delete(&record.blob().unwrap())
        .await
        .unwrap();
    let err = store.read(&n).await.unwrap_err();
    assert!(
        err.to_string().contains("missing") && err.to_string().contains(&record.blob_key),
        "{err}"
    );
    assert_eq!(store.record(&n).await.unwrap().unwrap().0, record);
}

/// A writer that stops between the blob put and the record's
/// compare-and-set (it lost the race, or died) leaves the old version
/// readable; its blob is an orphan that garbage collection removes.
pub async fn failure_between_blob_put_and_cas_keeps_the_old_version(backends: &dyn ConfigBackends) {
    let store = store(backends).await;
    let n = name("config.app.race");
    let v1 = store
        .write(&n, Bytes::from_static(b"one"), &change("1"))
        .await
        .unwrap();
    let (current, node_version) = store.record(&n).await.unwrap().unwrap();
    store
        .write(&n, Bytes::from_static(b"two"), &change("2"))
        .await
        .unwrap();
    // A writer still holding version 1's record: its blob lands, its CAS fails.
    let err = store
        .write_if(
            &n,
            Bytes::from_static(b"lost"),
            &change("stale"),
            Some((&current, node_version)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadVersion);
    let read = store.read(&n).await.unwrap().unwrap();
    assert_eq!(&read.content[..], b"two");
    assert_eq!(read.record.version, v1.version + 1);
    let report = store.gc(&n, 10).await.unwrap();
    assert_eq!(report.blobs_deleted, 1, "the lost writer's orphan");
    assert_eq!(&store.read(&n).await.unwrap().unwrap().content[..], b"two");
}

/// History lists every version with its author and message; rollback
/// writes an old version's content as a new version; GC keeps the newest.
pub async fn history_rollback_and_gc(backends: &dyn ConfigBackends) {
    let store = store(backends).await;
    let n = name("config.app.history");
    for i in 1..=5 {
        store
            .write(
                &n,
                Bytes::from(format!("v{i}")),
                &change(&format!("write {i}")),
            )
            .await
            .unwrap();
    }
    let rolled = store.rollback(&n, 2, &change("back to 2")).await.unwrap();
    assert_eq!(rolled.version, 6);
    assert_eq!(&store.read(&n).await.unwrap().unwrap().content[..], b"v2");
    let history = store.history(&n).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(history[2].message, "write 3");
    assert_eq!(history[2].author, "conformance");
    let report = store.gc(&n, 2).await.unwrap();
    assert_eq!(report.blobs_deleted, 4);
    assert_eq!(store.history(&n).await.unwrap().len(), 2);
    assert_eq!(&store.read(&n).await.unwrap().unwrap().content[..], b"v2");
}

/// Metaconfigs and nested, cyclic dependencies with `base.dep`, and
/// removal of references, on the real coordinator.
pub async fn metaconfig_dependencies(backends: &dyn ConfigBackends) {
    let manager = MetaConfigManager::new(backends.session().await);
    let list = MetaConfig::config(managed_data_name("spam", "blacklist").unwrap()).unwrap();
    let serverset = MetaConfig::serverset("web", "prod").unwrap();
    let base_config = MetaConfig::config(name("config.base.flags")).unwrap();
    for m in [&list, &serverset, &base_config] {
        manager.create(m).await.unwrap();
    }
    for dep in ["web.dep", "shared.dep", "base.dep"] {
        manager.create_dependency(&name(dep)).await.unwrap();
    }
    manager
        .add_to_dependency(&name("web.dep"), &name("shared.dep"))
        .await
        .unwrap();
    manager
        .add_to_dependency(&name("shared.dep"), &name("web.dep"))
        .await
        .unwrap();
    manager
        .add_to_dependency(&name("shared.dep"), &list.name)
        .await
        .unwrap();
    manager
        .add_to_dependency(&name("web.dep"), &serverset.name)
        .await
        .unwrap();
    manager
        .add_to_dependency(&name("base.dep"), &base_config.name)
        .await
        .unwrap();
    let err = manager
        .add_to_dependency(&name("ghost.dep"), &list.name)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let resolved = manager.resolve(&name("web.dep")).await.unwrap();
    let names: Vec<&str> = resolved
        .metaconfigs
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "config.base.flags",
            "config.manageddata.spam.blacklist",
            "discovery.web.prod"
        ]
    );
    assert_eq!(resolved.dependencies.len(), 3);

    assert!(manager.remove(&list.name).await.unwrap());
    assert!(manager.members(&name("shared.dep")).await.unwrap() == [name("web.dep")]);
    let resolved = manager.resolve(&name("web.dep")).await.unwrap();
    assert_eq!(resolved.metaconfigs.len(), 2);
}

/// What each case of the config suite relies on of the coordinator: a
/// case whose backend lacks one is skipped, and says so.
pub const CASE_NEEDS: &[(&str, &[Capability])] = &[
    ("metaconfig_dependencies", &[Capability::Transactions]),
    ("config_watchers_see_every_write", &[Capability::Watches]),
    (
        "environment_inheritance_at_depth_3",
        &[Capability::Transactions],
    ),
    (
        "environment_writers_never_clobber_views",
        &[Capability::Transactions],
    ),
    (
        "environment_associations_at_scale",
        &[Capability::Transactions, Capability::Watches],
    ),
    ("environment_delete_and_pin", &[Capability::Transactions]),
    ("environment_export_and_import", &[Capability::Transactions]),
    (
        "environment_bad_input_writes_nothing",
        &[Capability::Transactions],
    ),
];

fn needs_of(case: &str) -> &'static [Capability] {
    CASE_NEEDS
        .iter()
        .find(|(name, _)| *name == case)
        .map_or(&[], |(_, needs)| needs)
}

/// Whether `case` must be skipped (and says so) because the coordinator
/// lacks a capability it relies on, as listed in [`CASE_NEEDS`]. Run by
/// [`config_suite!`](crate::config_suite) before each case.
pub async fn skipped(backends: &dyn ConfigBackends, case: &str) -> bool {
    let needs = needs_of(case);
    if needs.is_empty() {
        return false;
    }
    let session = backends.session().await;
    let capabilities = session.capabilities();
    let _ = session.close().await;
    skip_unless(backends.name(), case, &capabilities, needs)
}

/// Prints, past the test harness's capture, one line with the config cases
/// the coordinator's declared capabilities skip.
pub async fn print_capabilities_summary(backends: &dyn ConfigBackends) {
    let session = backends.session().await;
    let capabilities = session.capabilities();
    let _ = session.close().await;
    let skipped: Vec<&str> = CASE_NEEDS
        .iter()
        .filter(|(_, needs)| !crate::harness::missing(&capabilities, needs).is_empty())
        .map(|(name, _)| *name)
        .collect();
    let mut line = format!(
        "CAPABILITIES {} (config suite): {} config cases skip",
        backends.name(),
        skipped.len()
    );
    if !skipped.is_empty() {
        line.push_str(&format!(": {}", skipped.join(", ")));
    }
    crate::harness::uncaptured(&line);
}

/// A host following a config sees every write to it, one at a time, each
/// within [`PROMPT_EVENT_TIMEOUT`]: a coordinator whose watches lose events
/// leaves a host on an old version, and fails here in seconds.
pub async fn config_watchers_see_every_write(backends: &dyn ConfigBackends) {
    let host = store(backends).await;
    let writer = store(backends).await;
    let config = name("config.watched.flags");
    let mut watch = host
        .coordinator()
        .watch(config.node_path(), WatchKind::Data)
        .await
        .unwrap();
    for i in 0..8 {
        let content = format!("{{\"generation\": {i}}}");
        writer
            .write(&config, Bytes::from(content.clone()), &change("next"))
            .await
            .unwrap();
        match tokio::time::timeout(PROMPT_EVENT_TIMEOUT, watch.next()).await {
            Ok(Some(WatchEvent::Changed | WatchEvent::Resync)) => {}
            Ok(other) => panic!("write {i}: {other:?} instead of Changed"),
            Err(_) => panic!("write {i} was not reported within {PROMPT_EVENT_TIMEOUT:?}"),
        }
        let seen = host.read(&config).await.unwrap().expect("written");
        assert_eq!(seen.content, content.as_bytes(), "after write {i}");
    }
}

/// Generates one test per case for a backend pair, and a
/// `config_capabilities_summary` test that prints which cases the
/// coordinator's declared capabilities skip. `$backends` is an async fn
/// taking the case name and returning `Option<impl ConfigBackends>`
/// (`None`: the run opted out of servers). Cases relying on a capability
/// the coordinator lacks ([`CASE_NEEDS`]) are skipped, and say so.
///
/// The tests are plain `#[test]`s that run the case on a runtime of the
/// kit's own: the calling crate needs no `tokio`.
#[macro_export]
macro_rules! config_suite {
    ($backends:path) => {
        $crate::config_suite!(@cases $backends;
            managed_structures_in_kingpin_format,
            concurrent_list_adds_lose_nothing,
            invalid_names_touch_nothing,
            non_json_content_for_typed_structures_changes_nothing,
            decider_values_out_of_range_change_nothing,
            corrupt_blob_is_an_error_and_changes_nothing,
            missing_blob_is_an_error,
            failure_between_blob_put_and_cas_keeps_the_old_version,
            history_rollback_and_gc,
            metaconfig_dependencies,
            config_watchers_see_every_write,
            environment_inheritance_at_depth_3,
            environment_writers_never_clobber_views,
            environment_associations_at_scale,
            environment_delete_and_pin,
            environment_export_and_import,
            environment_bad_input_writes_nothing);

        #[test]
        fn config_capabilities_summary() {
            $crate::harness::run_case(async {
                if let Some(backends) = $backends("config_capabilities_summary").await {
                    $crate::config_store::print_capabilities_summary(&backends).await;
                }
            });
        }
    };
    (@cases $backends:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::harness::run_case(async {
                    if let Some(backends) = $backends(stringify!($case)).await {
                        if !$crate::config_store::skipped(&backends, stringify!($case)).await {
                            $crate::config_store::$case(&backends).await;
                        }
                    }
                });
            }
        )*
    };
}

//! Least privilege (`kingpin_api::access`) on every backend with access
//! control: readers read everything and write nothing but their status
//! node, registrars join and leave serversets and write no config, writers
//! do everything, and clients without identity get what the policy gives
//! anonymous users and nothing more. Run by
//! [`access_suite!`](crate::access_suite) against a server with access
//! control enabled and a policy set up on the test's namespace.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kingpin_api::access::{AnonymousAccess, Role, STATUS_ROOT};
use kingpin_api::discovery::{Member, ServerSet};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{
    BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator, CreateMode, ErrorKind,
    MemoryBlobStore, NodePath, Op, WatchEvent, WatchKind,
};
use kingpin_client::Endpoint;

use crate::coordinator::{p, EVENT_TIMEOUT};

/// A namespace with an access policy in force, on which sessions can be
/// opened as each role.
#[async_trait]
pub trait AccessHarness: Send + Sync {
    /// Short backend name for messages.
    fn name(&self) -> &str;

    /// What the policy gives clients without identity.
    fn anonymous(&self) -> AnonymousAccess;

    /// A session with `role`'s identity, or without any for `None`. A
    /// backend may refuse an anonymous session outright (`Unauthorized`).
    async fn connect(&self, role: Option<Role>) -> kingpin_api::Result<Arc<dyn Coordinator>>;

    /// Every password or key the harness's identities use: none may appear
    /// in an error message.
    fn secrets(&self) -> Vec<String>;
}

async fn session(h: &dyn AccessHarness, role: Role) -> Arc<dyn Coordinator> {
    h.connect(Some(role))
        .await
        .unwrap_or_else(|e| panic!("{}: cannot connect as {role}: {e}", h.name()))
}

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).expect("test names are valid")
}

fn change() -> ChangeInfo {
    ChangeInfo::new("access-suite", "test")
}

/// Asserts that `result` is `Unauthorized` and that its message names no
/// secret.
fn refused<T: std::fmt::Debug>(h: &dyn AccessHarness, what: &str, result: kingpin_api::Result<T>) {
    let err = match result {
        Ok(value) => panic!("{}: {what} was allowed: {value:?}", h.name()),
        Err(e) => e,
    };
    assert_eq!(
        err.kind(),
        ErrorKind::Unauthorized,
        "{}: {what}: {err}",
        h.name()
    );
    let text = format!("{err} {err:?}");
    for secret in h.secrets() {
        assert!(
            !text.contains(&secret),
            "{}: {what}: a secret in {text}",
            h.name()
        );
    }
}

/// The writer's config, metaconfig, dependency and serverset, for the
/// other roles to read.
struct Fixture {
    blobs: Arc<dyn BlobStore>,
    config: ConfigName,
    dependency: ConfigName,
}

async fn fixture(writer: &Arc<dyn Coordinator>) -> Fixture {
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let store = ConfigStore::new(writer.clone(), blobs.clone());
    let config = name("config.manageddata.access.list");
    store
        .write(&config, Bytes::from_static(b"[\"a\"]"), &change())
        .await
        .expect("the writer writes a config");
    let manager = MetaConfigManager::new(writer.clone());
    manager
        .create(&MetaConfig::config(config.clone()).expect("a config metaconfig"))
        .await
        .expect("the writer writes a metaconfig");
    let dependency = name("access.dep");
    manager
        .create_dependency(&dependency)
        .await
        .expect("the writer creates a dependency");
    Fixture {
        blobs,
        config,
        dependency,
    }
}

/// Writers change configs, metaconfigs, dependencies, serversets and
/// status nodes, and delete what they made.
pub async fn writer_does_everything(h: &dyn AccessHarness) {
    let writer = session(h, Role::Writer).await;
    let fixture = fixture(&writer).await;
    let store = ConfigStore::new(writer.clone(), fixture.blobs.clone());
    store
        .write(&fixture.config, Bytes::from_static(b"[\"b\"]"), &change())
        .await
        .expect("the writer writes a second version");
    let node = p("/config/manageddata/access/scratch");
    writer
        .create(&node, b"x", CreateMode::Persistent)
        .await
        .expect("create");
    writer.set(&node, b"y", Some(0)).await.expect("set");
    writer
        .transaction(vec![
            Op::Check {
                path: node.clone(),
                version: 1,
            },
            Op::Delete {
                path: node.clone(),
                expected_version: None,
            },
        ])
        .await
        .expect("transaction");
    let serverset = ServerSet::new(writer.clone(), "access", "writer").expect("serverset");
    let membership = serverset
        .join(Member::new(Endpoint::new("10.0.0.1", 80)))
        .await
        .expect("the writer joins a serverset");
    membership.leave().await.expect("and leaves it");
    let status = p(STATUS_ROOT).join("writer-host").expect("status path");
    writer
        .create(&status, b"{}", CreateMode::Ephemeral)
        .await
        .expect("the writer creates a status node");
    writer.delete(&status, None).await.expect("and deletes it");
    MetaConfigManager::new(writer.clone())
        .remove_dependency(&fixture.dependency)
        .await
        .expect("the writer removes a dependency");
}

/// Readers read configs, metaconfigs, dependencies and serversets, watch
/// them, and every write they attempt is refused with `Unauthorized`.
pub async fn reader_reads_everything_and_writes_nothing(h: &dyn AccessHarness) {
    let writer = session(h, Role::Writer).await;
    let fixture = fixture(&writer).await;
    let serverset = ServerSet::new(writer.clone(), "access", "reader").expect("serverset");
    let _member = serverset
        .join(Member::new(Endpoint::new("10.0.0.2", 80)))
        .await
        .expect("the writer joins a serverset");

    let reader = session(h, Role::Reader).await;
    let store = ConfigStore::new(reader.clone(), fixture.blobs.clone());
    let config = store
        .read(&fixture.config)
        .await
        .expect("the reader reads a config")
        .expect("which exists");
    assert_eq!(&config.content[..], b"[\"a\"]");
    let manager = MetaConfigManager::new(reader.clone());
    assert!(manager
        .list()
        .await
        .expect("the reader lists metaconfigs")
        .contains(&fixture.config));
    assert!(manager
        .list_dependencies()
        .await
        .expect("the reader lists dependencies")
        .contains(&fixture.dependency));
    let members = ServerSet::new(reader.clone(), "access", "reader")
        .expect("serverset")
        .members()
        .await
        .expect("the reader reads a serverset");
    assert_eq!(members.len(), 1);
    let mut watch = reader
        .watch(fixture.config.node_path(), WatchKind::Data)
        .await
        .expect("the reader watches a config");

    // Every kind of write, on every kind of node.
    refused(
        h,
        "reader writes a config",
        store
            .write(&fixture.config, Bytes::from_static(b"[]"), &change())
            .await,
    );
    refused(
        h,
        "reader creates a config",
        store
            .write(
                &name("config.access.new"),
                Bytes::from_static(b"x"),
                &change(),
            )
            .await,
    );
    refused(
        h,
        "reader creates a metaconfig",
        manager
            .create(&MetaConfig::config(name("config.access.other")).expect("metaconfig"))
            .await,
    );
    refused(
        h,
        "reader removes a metaconfig",
        manager.remove(&fixture.config).await,
    );
    refused(
        h,
        "reader removes a dependency",
        manager.remove_dependency(&fixture.dependency).await,
    );
    refused(
        h,
        "reader joins a serverset",
        ServerSet::new(reader.clone(), "access", "reader")
            .expect("serverset")
            .join(Member::new(Endpoint::new("10.0.0.3", 80)))
            .await,
    );
    let path = fixture.config.node_path().clone();
    refused(h, "reader sets a node", reader.set(&path, b"x", None).await);
    refused(h, "reader deletes a node", reader.delete(&path, None).await);
    refused(
        h,
        "reader creates at the root",
        reader.create(&p("/x"), b"", CreateMode::Persistent).await,
    );
    refused(
        h,
        "reader writes in a transaction",
        reader
            .transaction(vec![Op::Set {
                path: path.clone(),
                data: b"x".to_vec(),
                expected_version: None,
            }])
            .await,
    );
    for member in writer.children(serverset.path()).await.expect("members") {
        let member = serverset.path().join(&member).expect("member path");
        refused(
            h,
            "reader deletes a member",
            reader.delete(&member, None).await,
        );
    }

    // Nothing it tried changed anything: the config is still the writer's.
    let after = ConfigStore::new(writer.clone(), fixture.blobs.clone())
        .read(&fixture.config)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(after.record.version, 1);
    // And it still sees the writer's changes.
    ConfigStore::new(writer.clone(), fixture.blobs.clone())
        .write(&fixture.config, Bytes::from_static(b"[\"c\"]"), &change())
        .await
        .expect("the writer writes again");
    let event = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .expect("the reader's watch fires");
    assert!(
        matches!(event, Some(WatchEvent::Changed) | Some(WatchEvent::Resync)),
        "{event:?}"
    );
}

/// Readers create, update and delete their own ephemeral status node under
/// the status root, and nothing else there is theirs to change.
pub async fn reader_keeps_its_own_status_node(h: &dyn AccessHarness) {
    let reader = session(h, Role::Reader).await;
    let own = p(STATUS_ROOT).join("host-a").expect("status path");
    reader
        .create(&own, b"{\"synced\":1}", CreateMode::Ephemeral)
        .await
        .expect("the reader creates its status node");
    reader
        .set(&own, b"{\"synced\":2}", Some(0))
        .await
        .expect("the reader updates its status node");
    let other = session(h, Role::Reader).await;
    assert_eq!(
        other.get(&own).await.expect("readers read status").data,
        b"{\"synced\":2}"
    );
    let registrar = session(h, Role::Registrar).await;
    refused(
        h,
        "registrar writes a status node",
        registrar.set(&own, b"{}", None).await,
    );
    reader
        .delete(&own, None)
        .await
        .expect("the reader deletes its status node");
}

/// Registrars join and leave their serverset (creating the serverset's
/// nodes when missing), and cannot write a config or anything outside
/// the serversets.
pub async fn registrar_joins_and_leaves_but_writes_no_config(h: &dyn AccessHarness) {
    let writer = session(h, Role::Writer).await;
    let fixture = fixture(&writer).await;
    let registrar = session(h, Role::Registrar).await;
    let serverset = ServerSet::new(registrar.clone(), "access", "registrar").expect("serverset");
    let membership = serverset
        .join(Member::new(Endpoint::new("10.0.0.4", 8080)))
        .await
        .expect("the registrar joins a new serverset");
    let reader = session(h, Role::Reader).await;
    let seen = ServerSet::new(reader.clone(), "access", "registrar")
        .expect("serverset")
        .members()
        .await
        .expect("the reader reads the member");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].endpoint.port, 8080);
    membership.leave().await.expect("the registrar leaves");
    assert!(ServerSet::new(reader.clone(), "access", "registrar")
        .expect("serverset")
        .members()
        .await
        .expect("members")
        .is_empty());

    let store = ConfigStore::new(registrar.clone(), fixture.blobs.clone());
    assert!(store.read(&fixture.config).await.expect("read").is_some());
    refused(
        h,
        "registrar writes a config",
        store
            .write(&fixture.config, Bytes::from_static(b"[]"), &change())
            .await,
    );
    refused(
        h,
        "registrar creates a metaconfig",
        MetaConfigManager::new(registrar.clone())
            .create(&MetaConfig::config(name("config.access.reg")).expect("metaconfig"))
            .await,
    );
    let path = fixture.config.node_path().clone();
    refused(
        h,
        "registrar sets a config node",
        registrar.set(&path, b"x", None).await,
    );
    refused(
        h,
        "registrar deletes a config node",
        registrar.delete(&path, None).await,
    );
    refused(
        h,
        "registrar creates a status node",
        registrar
            .create(
                &p(STATUS_ROOT).join("registrar").expect("path"),
                b"",
                CreateMode::Ephemeral,
            )
            .await,
    );
}

/// A client without identity reads what the policy lets anonymous users
/// read (or nothing), and writes nothing.
pub async fn anonymous_gets_what_the_policy_gives(h: &dyn AccessHarness) {
    let writer = session(h, Role::Writer).await;
    let fixture = fixture(&writer).await;
    let anonymous = match h.connect(None).await {
        Ok(session) => session,
        Err(e) => {
            assert_eq!(h.anonymous(), AnonymousAccess::None, "{}: {e}", h.name());
            refused(h, "an anonymous session", Err::<(), _>(e));
            return;
        }
    };
    let path: NodePath = fixture.config.node_path().clone();
    match h.anonymous() {
        AnonymousAccess::Read => {
            anonymous.get(&path).await.expect("anonymous reads");
            anonymous
                .children(&p("/config"))
                .await
                .expect("anonymous lists");
        }
        AnonymousAccess::None => {
            refused(h, "anonymous reads", anonymous.get(&path).await);
            refused(
                h,
                "anonymous lists",
                anonymous.children(&p("/config")).await,
            );
        }
    }
    refused(
        h,
        "anonymous writes",
        anonymous.set(&path, b"x", None).await,
    );
    refused(
        h,
        "anonymous creates",
        anonymous
            .create(&p("/config/anonymous"), b"", CreateMode::Persistent)
            .await,
    );
    refused(
        h,
        "anonymous joins a serverset",
        ServerSet::new(anonymous.clone(), "access", "anonymous")
            .expect("serverset")
            .join(Member::new(Endpoint::new("10.0.0.5", 80)))
            .await,
    );
    refused(
        h,
        "anonymous creates a status node",
        anonymous
            .create(
                &p(STATUS_ROOT).join("anonymous").expect("path"),
                b"",
                CreateMode::Ephemeral,
            )
            .await,
    );
}

/// One test per case for an access harness: `$harness(case)` returns
/// `Option<impl AccessHarness>` (`None`: skipped).
#[macro_export]
macro_rules! access_suite {
    ($harness:path) => {
        $crate::access_suite!(@cases $harness;
            writer_does_everything, reader_reads_everything_and_writes_nothing,
            reader_keeps_its_own_status_node, registrar_joins_and_leaves_but_writes_no_config,
            anonymous_gets_what_the_policy_gives);
    };
    (@cases $harness:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(harness) = $harness(stringify!($case)).await {
                    $crate::access::$case(&harness).await;
                }
            }
        )*
    };
}

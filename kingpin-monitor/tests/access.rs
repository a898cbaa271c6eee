//! The monitor with the reader identity on ZooKeeper with digest ACLs: it
//! syncs every config and serverset of its dependency, follows changes,
//! is refused nothing it needs, and its logs and admin pages never show a
//! credential. The monitor binary runs as a child process with
//! `KINGPIN_ZK_DIGEST` set to the reader's `user:password`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kingpin_api::access::{AccessPolicy, AnonymousAccess, Role};
use kingpin_api::discovery::{Member, ServerSet};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore, Coordinator, ErrorKind};
use kingpin_client::Endpoint;
use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::{free_port, ServerKind};
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_zookeeper::{apply_policy, digest_identity, ZooKeeperConfig, ZooKeeperCoordinator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).unwrap()
}

/// The body of `GET path` on the admin server.
async fn admin_get(port: u16, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the admin server listens");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
}

/// Polls `file` (written by another process) until it holds `want`.
async fn wait_for_file(file: &Path, want: &str, log: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::read_to_string(file).ok().as_deref() != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never became {want:?}; monitor log:\n{}",
            file.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_monitor_syncs_everything_and_shows_no_credential() {
    let case = "a_reader_monitor_syncs_everything";
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let namespace = unique_namespace();
    let credential = |role: Role| {
        (
            format!("kp-{role}"),
            format!("pw-{role}-{}", unique_suffix()),
        )
    };
    let (reader, registrar, writer) = (
        credential(Role::Reader),
        credential(Role::Registrar),
        credential(Role::Writer),
    );
    let config_for = |(user, password): &(String, String)| {
        ZooKeeperConfig::new([hosts.clone()])
            .with_chroot(&namespace)
            .unwrap()
            .with_digest(format!("{user}:{password}"))
            .unwrap()
    };
    let id =
        |(user, password): &(String, String)| format!("digest:{}", digest_identity(user, password));
    let policy = AccessPolicy {
        anonymous: AnonymousAccess::None,
        readers: vec![id(&reader)],
        registrars: vec![id(&registrar)],
        writers: vec![id(&writer)],
    };
    apply_policy(&config_for(&writer), &policy, false)
        .await
        .expect("the policy is set up");

    // The writer's config, metaconfigs and dependency; the registrar's member.
    let dir = tempfile::tempdir().unwrap();
    let blobstore = format!("file://{}", dir.path().join("blobs").display());
    let blobs = kingpin::open_blob_store(&blobstore).await.unwrap();
    let writer_session: Arc<dyn Coordinator> = Arc::new(
        ZooKeeperCoordinator::connect(config_for(&writer))
            .await
            .unwrap(),
    );
    let store = ConfigStore::new(writer_session.clone(), blobs);
    let config = name("config.app.flags");
    let change = ChangeInfo::new("writer", "access test");
    store
        .write(&config, Bytes::from_static(b"{\"v\":1}"), &change)
        .await
        .unwrap();
    let manager = MetaConfigManager::new(writer_session.clone());
    manager
        .create(&MetaConfig::config(config.clone()).unwrap())
        .await
        .unwrap();
    manager
        .create(&MetaConfig::serverset("api", "prod").unwrap())
        .await
        .unwrap();
    let dependency = name("host.dep");
    manager.create_dependency(&dependency).await.unwrap();
    manager
        .add_to_dependency(&dependency, &config)
        .await
        .unwrap();
    manager
        .add_to_dependency(&dependency, &name("discovery.api.prod"))
        .await
        .unwrap();
    let registrar_session: Arc<dyn Coordinator> = Arc::new(
        ZooKeeperCoordinator::connect(config_for(&registrar))
            .await
            .unwrap(),
    );
    let _member = ServerSet::new(registrar_session, "api", "prod")
        .unwrap()
        .join(Member::new(Endpoint::new("10.1.2.3", 8080)))
        .await
        .expect("the registrar joins");

    // The monitor, as the reader.
    let out = dir.path().join("out");
    let admin_port = free_port().unwrap();
    let settings = dir.path().join("monitor.toml");
    std::fs::write(
        &settings,
        format!(
            "coordinator = \"zk://{hosts}{namespace}?session_timeout=4s\"\nblobstore = \"{blobstore}\"\n\
             dependency = \"host.dep\"\nconfig_dir = \"{}\"\nserverset_dir = \"{}\"\n\
             admin_addr = \"127.0.0.1:{admin_port}\"\n",
            out.join("config").display(),
            out.join("serverset").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("monitor.log");
    let mut monitor = tokio::process::Command::new(env!("CARGO_BIN_EXE_kingpin-monitor"))
        .arg("--config")
        .arg(&settings)
        .env_remove("KINGPIN_ZK_DIGEST")
        .env("KINGPIN_ZK_DIGEST", format!("{}:{}", reader.0, reader.1))
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(dir.path().join("monitor.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the monitor starts");

    wait_for_file(&out.join("config/config.app.flags"), "{\"v\":1}", &log).await;
    wait_for_file(
        &out.join("serverset/discovery.api.prod"),
        "10.1.2.3:8080\n",
        &log,
    )
    .await;
    // It follows changes as they come.
    store
        .write(&config, Bytes::from_static(b"{\"v\":2}"), &change)
        .await
        .unwrap();
    wait_for_file(&out.join("config/config.app.flags"), "{\"v\":2}", &log).await;

    // Its admin pages show no credential.
    let mut pages = String::new();
    for path in [
        "/admin/healthcheck",
        "/admin/watched_metaconfigs",
        "/admin/watched_dependencies",
        "/config",
        "/config/config.app.flags",
        "/serverset",
        "/serverset/discovery.api.prod",
        "/metrics",
    ] {
        let page = admin_get(admin_port, path).await;
        assert!(
            page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
            "{path}: {page}"
        );
        pages.push_str(&page);
    }
    assert!(pages.contains("config.app.flags"));

    // The reader's identity writes nothing: the same credentials are
    // refused a write.
    let reader_session = ZooKeeperCoordinator::connect(config_for(&reader))
        .await
        .unwrap();
    let err = reader_session
        .set(config.node_path(), b"{}", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    monitor.start_kill().unwrap();
    monitor.wait().await.unwrap();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("zookeeper_client"), "trace logs were written");
    // Everything it needed, it was allowed.
    assert!(!logs.contains("refused access"), "{logs}");
    for secret in [&reader.1, &registrar.1, &writer.1] {
        assert!(
            !logs.contains(secret.as_str()),
            "a password in the monitor's log"
        );
        assert!(
            !pages.contains(secret.as_str()),
            "a password on an admin page"
        );
    }
}

/// Everyone may read and enter `dir` and everything below it; only its
/// owner (root) may write.
fn readable_by_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            readable_by_all(&path);
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The embedded stack with file permissions as the README describes: the
/// database and blobs owned and written by the writer's user, readable by
/// the monitor's, which syncs and follows changes without any write access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_of_another_user_reads_the_embedded_stack() {
    const NOBODY: u32 = 65534;
    if !nix::unistd::geteuid().is_root() {
        kingpin_conformance_tests::harness::skip(
            "sqlite",
            "a_monitor_of_another_user_reads_the_embedded_stack",
            "running the monitor as another user needs root",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let coordinator = format!("sqlite://{}", dir.path().join("state/kingpin.db").display());
    let blobstore = format!("file://{}", dir.path().join("blobs").display());
    let writer = kingpin::open_coordinator(&coordinator).await.unwrap();
    let store = ConfigStore::new(
        writer.clone(),
        kingpin::open_blob_store(&blobstore).await.unwrap(),
    );
    let config = name("config.app.flags");
    let change = ChangeInfo::new("writer", "permissions test");
    store
        .write(&config, Bytes::from_static(b"{\"v\":1}"), &change)
        .await
        .unwrap();
    let manager = MetaConfigManager::new(writer.clone());
    manager
        .create(&MetaConfig::config(config.clone()).unwrap())
        .await
        .unwrap();
    manager.create_dependency(&name("host.dep")).await.unwrap();
    manager
        .add_to_dependency(&name("host.dep"), &config)
        .await
        .unwrap();

    let binary = dir.path().join("kingpin-monitor");
    std::fs::copy(env!("CARGO_BIN_EXE_kingpin-monitor"), &binary).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let settings = dir.path().join("monitor.toml");
    std::fs::write(
        &settings,
        format!(
            "coordinator = \"{coordinator}\"\nblobstore = \"{blobstore}\"\ndependency = \"host.dep\"\n\
             config_dir = \"{}\"\nserverset_dir = \"{}\"\nadmin_addr = \"off\"\n",
            out.join("config").display(),
            out.join("serverset").display()
        ),
    )
    .unwrap();
    readable_by_all(dir.path());
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The monitor's own output directory is the only thing it may write.
    std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).unwrap();
    let log = dir.path().join("monitor.log");
    let mut monitor = tokio::process::Command::new(&binary)
        .arg("--config")
        .arg(&settings)
        .env("RUST_LOG", "info")
        .env("HOME", dir.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the monitor starts as nobody");
    wait_for_file(&out.join("config/config.app.flags"), "{\"v\":1}", &log).await;
    store
        .write(&config, Bytes::from_static(b"{\"v\":2}"), &change)
        .await
        .unwrap();
    wait_for_file(&out.join("config/config.app.flags"), "{\"v\":2}", &log).await;
    monitor.start_kill().unwrap();
    monitor.wait().await.unwrap();
}

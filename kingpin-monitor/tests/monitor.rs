//! The monitor against real backends: propagation, live dependency
//! changes, the admin pages, hooks, a corrupt blob, and outages of a
//! ZooKeeper of the test's own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use kingpin_api::discovery::Member;
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::BlobKey;
use kingpin_conformance_tests::endpoints::{private_server, shared_endpoint};
use kingpin_conformance_tests::partition::Partition;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_monitor::{Hook, Monitor, MonitorState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{change, name, sqlite_fs, wait_for, zookeeper_s3, Backends, WAIT};

fn file_is(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|c| c == content)
}

/// A plain HTTP/1.0 GET against the admin port.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Creates metaconfigs for `configs` and the dependency `dep` holding them.
async fn subscribe(backends: &Backends, dep: &str, configs: &[&str]) {
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    manager.create_dependency(&name(dep)).await.unwrap();
    for config in configs {
        let metaconfig = MetaConfig::config(name(config)).unwrap();
        manager.create(&metaconfig).await.unwrap();
        manager
            .add_to_dependency(&name(dep), &metaconfig.name)
            .await
            .unwrap();
    }
}

/// Writes `first` as `config.app.flags`, subscribes `host.dep` to it, and
/// starts a monitor writing under a fresh directory.
async fn start_on_flags(backends: &Backends, first: &'static [u8]) -> (tempfile::TempDir, Monitor) {
    let out = tempfile::tempdir().unwrap();
    backends
        .store()
        .write(
            &name("config.app.flags"),
            Bytes::from_static(first),
            &change(),
        )
        .await
        .unwrap();
    subscribe(backends, "host.dep", &["config.app.flags"]).await;
    let monitor = Monitor::start(backends.settings("host.dep", out.path()))
        .await
        .unwrap();
    (out, monitor)
}

/// Write → file; update → file; a config added to the dependency starts
/// syncing live; the admin pages and metrics show it all.
async fn propagation_and_live_dependencies(backends: Backends) {
    let out = tempfile::tempdir().unwrap();
    let store = backends.store();
    let a = name("config.app.a");
    store
        .write(&a, Bytes::from_static(b"[1]"), &change())
        .await
        .unwrap();
    subscribe(&backends, "host.dep", &["config.app.a"]).await;
    let monitor = Monitor::start(backends.settings("host.dep", out.path()))
        .await
        .unwrap();
    let file_a = out.path().join("config/config.app.a");
    let state = monitor.state().clone();
    wait_for(&state, "the first version on disk", |_| {
        file_is(&file_a, b"[1]")
    })
    .await;
    wait_for(&state, "ready", |s| s.health().ready).await;

    store
        .write(&a, Bytes::from_static(b"[1, 2]"), &change())
        .await
        .unwrap();
    wait_for(&state, "the update on disk", |_| {
        file_is(&file_a, b"[1, 2]")
    })
    .await;

    let b = name("config.app.b");
    store
        .write(&b, Bytes::from_static(b"{}"), &change())
        .await
        .unwrap();
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    manager
        .create(&MetaConfig::config(b.clone()).unwrap())
        .await
        .unwrap();
    manager
        .create_dependency(&name("nested.dep"))
        .await
        .unwrap();
    manager
        .add_to_dependency(&name("nested.dep"), &b)
        .await
        .unwrap();
    manager
        .add_to_dependency(&name("host.dep"), &name("nested.dep"))
        .await
        .unwrap();
    let file_b = out.path().join("config/config.app.b");
    wait_for(&state, "a config added to a nested dependency", |_| {
        file_is(&file_b, b"{}")
    })
    .await;

    let admin = monitor.admin_addr().unwrap();
    assert_eq!(http_get(admin, "/admin/ping").await, (200, "pong".into()));
    let (status, body) = http_get(admin, "/admin/healthcheck").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = http_get(admin, "/admin/watched_metaconfigs").await;
    assert_eq!(body, r#"["config.app.a","config.app.b"]"#);
    let (_, body) = http_get(admin, "/admin/watched_dependencies").await;
    assert!(
        body.contains("host.dep") && body.contains("nested.dep"),
        "{body}"
    );
    let (status, body) = http_get(admin, "/config/config.app.a").await;
    assert_eq!(status, 200);
    let entry: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(entry["version"], 2);
    assert!(entry["last_fetch_ms"].as_u64().is_some() && entry["error"].is_null());
    assert_eq!(http_get(admin, "/config/config.app.zzz").await.0, 404);
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains("kingpin_monitor_propagation_lag_seconds_count 3"),
        "{metrics}"
    );
    assert!(metrics.contains("kingpin_monitor_entries 2"), "{metrics}");

    manager.remove(&b).await.unwrap();
    wait_for(&state, "the removed config to be unwatched", |s| {
        s.entry(&b).is_none()
    })
    .await;
    assert!(file_is(&file_b, b"{}"), "unsubscribing keeps the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_on_sqlite_and_files() {
    propagation_and_live_dependencies(sqlite_fs().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagation_on_zookeeper_and_s3() {
    if let Some(backends) = zookeeper_s3("propagation_on_zookeeper_and_s3", None).await {
        propagation_and_live_dependencies(backends).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_after_a_file_changes() {
    let backends = sqlite_fs().await;
    let out = tempfile::tempdir().unwrap();
    subscribe(&backends, "host.dep", &["config.app.flags"]).await;
    let marker = out.path().join("hook-ran");
    let mut settings = backends.settings("host.dep", out.path());
    settings.hooks.push(Hook {
        names: glob::Pattern::new("config.app.*").unwrap(),
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("cat \"$KINGPIN_FILE\" > {}", marker.display()),
        ],
        timeout: Duration::from_secs(10),
    });
    let monitor = Monitor::start(settings).await.unwrap();
    backends
        .store()
        .write(
            &name("config.app.flags"),
            Bytes::from_static(b"on"),
            &change(),
        )
        .await
        .unwrap();
    wait_for(monitor.state(), "the hook", |_| file_is(&marker, b"on")).await;
}

/// A blob whose sha256 does not match its record: the file keeps its last
/// good version, and the error shows in `/config/{name}` and the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_keeps_the_last_good_file() {
    let backends = sqlite_fs().await;
    let n = name("config.app.flags");
    let (out, monitor) = start_on_flags(&backends, b"good").await;
    let store = backends.store();
    let file = out.path().join("config/config.app.flags");
    wait_for(monitor.state(), "the good version", |_| {
        file_is(&file, b"good")
    })
    .await;

    // Bad bytes where version 2's blob goes; the writer finds the key taken
    // (same version and hash: assumed identical) and commits the record.
    let next = b"next";
    let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(next));
    let key = BlobKey::parse(&format!("config/app/flags/@versions/0000000002-{sha}")).unwrap();
    backends
        .blobs
        .put_if_absent(&key, Bytes::from_static(b"evil"))
        .await
        .unwrap();
    store
        .write(&n, Bytes::from_static(next), &change())
        .await
        .unwrap();

    wait_for(monitor.state(), "the corruption to be reported", |s| {
        s.entry(&n)
            .and_then(|e| e.error)
            .is_some_and(|e| e.contains("corrupt"))
    })
    .await;
    assert!(file_is(&file, b"good"), "the last good version stays");
    let admin = monitor.admin_addr().unwrap();
    let (_, body) = http_get(admin, "/config/config.app.flags").await;
    assert!(body.contains("corrupt"), "{body}");
    let (status, _) = http_get(admin, "/admin/healthcheck").await;
    assert_eq!(status, 503);
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains(r#"kingpin_monitor_errors_total{stage="fetch"}"#),
        "{metrics}"
    );
}

/// ZooKeeper stops while the monitor runs: files stay, health degrades.
/// It restarts: the monitor resyncs and a change made right away lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_outage_keeps_files_and_recovers() {
    let case = "zookeeper_outage_keeps_files_and_recovers";
    let Some(mut zk) = private_server(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let Some(backends) = zookeeper_s3(case, Some(zk.endpoint())).await else {
        return;
    };
    let n = name("config.app.flags");
    let (out, monitor) = start_on_flags(&backends, b"v1").await;
    let state = monitor.state().clone();
    let file = out.path().join("config/config.app.flags");
    wait_for(&state, "v1", |s| file_is(&file, b"v1") && s.health().ready).await;

    zk.stop();
    wait_for(&state, "degraded health", |s| !s.health().ready).await;
    assert!(file_is(&file, b"v1"), "the file stays during the outage");
    let admin = monitor.admin_addr().unwrap();
    assert_eq!(http_get(admin, "/admin/healthcheck").await.0, 503);

    zk.resume().await.unwrap();
    backends
        .store()
        .write(&n, Bytes::from_static(b"v2"), &change())
        .await
        .unwrap();
    wait_for(&state, "v2 after the restart", |s| {
        file_is(&file, b"v2") && s.health().ready
    })
    .await;
}

/// The monitor's session expires (a partition longer than its timeout)
/// while versions are written: its watches come back and the newest
/// version lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_misses_no_version() {
    let case = "session_expiry_misses_no_version";
    let Some(hosts) = shared_endpoint(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let partition = Partition::start(hosts.clone()).await.unwrap();
    let Some(mut backends) = zookeeper_s3(case, Some(hosts)).await else {
        return;
    };
    // The monitor goes through the proxy; the writer does not.
    backends.coordinator_url = format!(
        "zk://{}{}?session_timeout=4s",
        partition.endpoint(),
        backends.namespace
    );
    let n = name("config.app.flags");
    let (out, monitor) = start_on_flags(&backends, b"0").await;
    let store = backends.store();
    let state = monitor.state().clone();
    let file = out.path().join("config/config.app.flags");
    wait_for(&state, "version 1", |s| {
        file_is(&file, b"0") && s.health().ready
    })
    .await;

    partition.cut();
    wait_for(&state, "the lost connection", |s| !s.health().ready).await;
    for i in 1..=5u32 {
        store
            .write(&n, Bytes::from(i.to_string()), &change())
            .await
            .unwrap();
    }
    // Past the 4 s session timeout, the server has expired the session.
    tokio::time::sleep(Duration::from_secs(8)).await;
    partition.heal();
    wait_for(&state, "the newest version after expiry", |_| {
        file_is(&file, b"5")
    })
    .await;
    store
        .write(&n, Bytes::from_static(b"6"), &change())
        .await
        .unwrap();
    wait_for(
        &state,
        "a version after expiry (watches re-established)",
        |_| file_is(&file, b"6"),
    )
    .await;
}

/// Started while the coordinator is down: keeps the files, not ready;
/// converges when the coordinator comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_during_an_outage_converges() {
    let case = "started_during_an_outage_converges";
    let Some(mut zk) = private_server(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let Some(backends) = zookeeper_s3(case, Some(zk.endpoint())).await else {
        return;
    };
    let n = name("config.app.flags");
    backends
        .store()
        .write(&n, Bytes::from_static(b"new"), &change())
        .await
        .unwrap();
    subscribe(&backends, "host.dep", &["config.app.flags"]).await;
    let out = tempfile::tempdir().unwrap();
    let file: PathBuf = out.path().join("config/config.app.flags");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"last good").unwrap();

    zk.stop();
    let monitor = Monitor::start(backends.settings("host.dep", out.path()))
        .await
        .unwrap();
    let state = monitor.state().clone();
    wait_for(&state, "a failed connection attempt", |s| {
        s.health().reasons.iter().any(|r| r.contains("unreachable"))
    })
    .await;
    assert!(file_is(&file, b"last good"));
    assert_eq!(
        http_get(monitor.admin_addr().unwrap(), "/admin/healthcheck")
            .await
            .0,
        503
    );
    zk.resume().await.unwrap();
    wait_for(&state, "convergence", |s| {
        file_is(&file, b"new") && s.health().ready
    })
    .await;
}

/// A version big enough that a non-atomic write would be caught half done:
/// a header naming the version, then filler derived from it.
fn big_version(version: u32) -> Vec<u8> {
    let mut content = format!("version {version:08}\n").into_bytes();
    let filler = b'a' + (version % 26) as u8;
    content.resize(256 * 1024, filler);
    content
}

/// Whether `content` is exactly one whole version.
fn is_whole_version(content: &[u8]) -> bool {
    let Some(header) = content.get(..17) else {
        return false;
    };
    let Some(version) = std::str::from_utf8(header)
        .ok()
        .and_then(|h| h.strip_prefix("version "))
        .and_then(|v| v.trim_end().parse::<u32>().ok())
    else {
        return false;
    };
    content == big_version(version).as_slice()
}

/// `kill -9` of the monitor process while it writes many updates: the
/// file on disk is always a whole version, and a restarted monitor cleans
/// up and converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_write_never_leaves_a_torn_file() {
    let case = "kill_9_mid_write_never_leaves_a_torn_file";
    let Some(backends) = zookeeper_s3(case, None).await else {
        return;
    };
    let n = name("config.app.big");
    let store = backends.store();
    store
        .write(&n, Bytes::from(big_version(0)), &change())
        .await
        .unwrap();
    subscribe(&backends, "host.dep", &["config.app.big"]).await;
    let out = tempfile::tempdir().unwrap();
    let settings_file = out.path().join("monitor.toml");
    std::fs::write(
        &settings_file,
        format!(
            "coordinator = \"{}\"\nblobstore = \"{}\"\ndependency = \"host.dep\"\nconfig_dir = \"{}\"\nserverset_dir = \"{}\"\nadmin_addr = \"off\"\n",
            backends.coordinator_url,
            backends.blobstore_url,
            out.path().join("config").display(),
            out.path().join("serverset").display()
        ),
    )
    .unwrap();
    let start_monitor = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kingpin-monitor"))
            .arg("--config")
            .arg(&settings_file)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("the monitor binary starts")
    };
    let mut monitor = start_monitor();
    let writer = {
        let store = store.clone();
        let n = n.clone();
        tokio::spawn(async move {
            for version in 1..=400u32 {
                store
                    .write(&n, Bytes::from(big_version(version)), &change())
                    .await
                    .unwrap();
            }
        })
    };
    // Another process writes the file; its changes are polled.
    let file = out.path().join("config/config.app.big");
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the monitor wrote {seen:?} only"
        );
        if let Ok(content) = std::fs::read(&file) {
            assert!(is_whole_version(&content), "a torn file while running");
            seen.insert(content[8..16].to_vec());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    monitor.kill().unwrap(); // SIGKILL
    monitor.wait().unwrap();
    let content = std::fs::read(&file).unwrap();
    assert!(is_whole_version(&content), "a torn file after kill -9");

    writer.await.unwrap();
    let mut monitor = start_monitor();
    let last = big_version(400);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !file_is(&file, &last) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no convergence after restart"
        );
        let content = std::fs::read(&file).unwrap();
        assert!(is_whole_version(&content), "a torn file after restart");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config_dir = out.path().join("config");
    let names = |dir: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    // No temp file left, beside the config or its version stamp.
    assert_eq!(
        names(&config_dir),
        [kingpin_client::STAMP_DIR, "config.app.big"]
    );
    let stamps = config_dir.join(kingpin_client::STAMP_DIR);
    assert_eq!(names(&stamps), ["config.app.big"]);
    let stamp = kingpin_client::VersionStamp::read(&config_dir, "config.app.big").unwrap();
    let (newest, _) = store.record(&n).await.unwrap().unwrap();
    let newest = newest.version;
    assert_eq!(
        stamp.version_of(&kingpin_client::content_sha256(&last)),
        Some(newest),
        "the stamp names the version on disk"
    );
    monitor.kill().unwrap();
    monitor.wait().unwrap();
}

/// A serverset's live members (Finagle JSON, or KingPin's `<id>-host:port`
/// names) become sorted `host:port` lines; a member leaving is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serversets_become_sorted_host_port_lines() {
    let backends = sqlite_fs().await;
    let out = tempfile::tempdir().unwrap();
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    let serverset = MetaConfig::serverset("web", "prod").unwrap();
    manager.create(&serverset).await.unwrap();
    manager.create_dependency(&name("host.dep")).await.unwrap();
    manager
        .add_to_dependency(&name("host.dep"), &serverset.name)
        .await
        .unwrap();
    let member = |host: &str, port: u16| {
        format!(
            r#"{{"serviceEndpoint":{{"host":"{host}","port":{port}}},"additionalEndpoints":{{}},"status":"ALIVE","shard":0}}"#
        )
    };
    let members = serverset.node_path.join("member_").unwrap();
    let coordinator = &backends.coordinator;
    let b = coordinator
        .create(
            &members,
            member("10.0.0.2", 80).as_bytes(),
            kingpin_api::CreateMode::EphemeralSequential,
        )
        .await
        .unwrap();
    coordinator
        .create(
            &members,
            member("10.0.0.1", 80).as_bytes(),
            kingpin_api::CreateMode::EphemeralSequential,
        )
        .await
        .unwrap();
    coordinator
        .create(
            &serverset
                .node_path
                .join("0000000009-10.0.0.3:8080")
                .unwrap(),
            b"",
            kingpin_api::CreateMode::Ephemeral,
        )
        .await
        .unwrap();
    let monitor = Monitor::start(backends.settings("host.dep", out.path()))
        .await
        .unwrap();
    let file = out.path().join("serverset/discovery.web.prod");
    wait_for(monitor.state(), "the members", |_| {
        file_is(&file, b"10.0.0.1:80\n10.0.0.2:80\n10.0.0.3:8080\n")
    })
    .await;
    coordinator.delete(&b, None).await.unwrap();
    wait_for(monitor.state(), "a member leaving", |_| {
        file_is(&file, b"10.0.0.1:80\n10.0.0.3:8080\n")
    })
    .await;
    let (_, body) = http_get(
        monitor.admin_addr().unwrap(),
        "/serverset/discovery.web.prod",
    )
    .await;
    assert!(body.contains(r#""members":2"#), "{body}");
}

/// A serverset update that empties the serverset, or removes more than
/// `serverset_max_shrink` of it at once, is refused: the file keeps its
/// members, `/serverset/{name}`, the health check (degraded, still 200)
/// and the metrics say so, and the next acceptable update is written.
async fn serverset_guard_refuses_and_recovers(backends: Backends) {
    let out = tempfile::tempdir().unwrap();
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    let serverset = MetaConfig::serverset("api", "prod").unwrap();
    manager.create(&serverset).await.unwrap();
    manager.create_dependency(&name("host.dep")).await.unwrap();
    manager
        .add_to_dependency(&name("host.dep"), &serverset.name)
        .await
        .unwrap();
    let coordinator = backends.coordinator.clone();
    let join = |host: &'static str| {
        let coordinator = coordinator.clone();
        let prefix = serverset.node_path.join("member_").unwrap();
        async move {
            let member = Member::new(kingpin_client::Endpoint::new(host, 80));
            coordinator
                .create(
                    &prefix,
                    &member.to_json(),
                    kingpin_api::CreateMode::EphemeralSequential,
                )
                .await
                .unwrap()
        }
    };
    let leave_all = |paths: Vec<kingpin_api::NodePath>| {
        let coordinator = coordinator.clone();
        async move {
            let ops = paths
                .into_iter()
                .map(|path| kingpin_api::Op::Delete {
                    path,
                    expected_version: None,
                })
                .collect();
            coordinator.transaction(ops).await.unwrap();
        }
    };
    let a = join("10.0.0.1").await;
    let b = join("10.0.0.2").await;
    let c = join("10.0.0.3").await;
    let mut settings = backends.settings("host.dep", out.path());
    settings.serverset_max_shrink = Some(0.5);
    let monitor = Monitor::start(settings).await.unwrap();
    let admin = monitor.admin_addr().unwrap();
    let file = out.path().join("serverset/discovery.api.prod");
    let entry = |state: &MonitorState| state.entry(&serverset.name).unwrap_or_default();
    wait_for(monitor.state(), "three members", |_| {
        file_is(&file, b"10.0.0.1:80\n10.0.0.2:80\n10.0.0.3:80\n")
    })
    .await;

    // Two of three leave at once: 67% > 50%.
    leave_all(vec![a, b]).await;
    wait_for(monitor.state(), "the shrink refused", |s| {
        entry(s).refused.is_some()
    })
    .await;
    assert!(file_is(&file, b"10.0.0.1:80\n10.0.0.2:80\n10.0.0.3:80\n"));
    let (status, body) = http_get(admin, "/serverset/discovery.api.prod").await;
    assert_eq!(status, 200);
    assert!(body.contains("removes 2 of 3 members"), "{body}");
    assert!(body.contains(r#""refusals":1"#), "{body}");
    let (status, body) = http_get(admin, "/admin/healthcheck").await;
    assert_eq!(
        status, 200,
        "a refused update degrades health without failing the host: {body}"
    );
    assert!(body.contains(r#""status":"degraded""#), "{body}");
    assert!(body.contains("update refused"), "{body}");
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains(
            r#"kingpin_monitor_serverset_refusals_total{serverset="discovery.api.prod"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kingpin_monitor_serverset_refused{serverset="discovery.api.prod"} 1"#),
        "{metrics}"
    );

    // One comes back: 2 of 3 on disk is a 33% shrink, accepted.
    let d = join("10.0.0.4").await;
    wait_for(monitor.state(), "the acceptable update", |_| {
        file_is(&file, b"10.0.0.3:80\n10.0.0.4:80\n")
    })
    .await;
    assert_eq!(entry(monitor.state()).refused, None);
    let (status, _) = http_get(admin, "/admin/healthcheck").await;
    assert_eq!(status, 200);
    let (_, metrics) = http_get(admin, "/metrics").await;
    assert!(
        metrics.contains(r#"kingpin_monitor_serverset_refused{serverset="discovery.api.prod"} 0"#),
        "{metrics}"
    );

    // Everyone leaves: emptying is refused whatever the limit.
    leave_all(vec![c, d]).await;
    wait_for(monitor.state(), "the emptying refused", |s| {
        entry(s)
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("empties"))
    })
    .await;
    assert!(file_is(&file, b"10.0.0.3:80\n10.0.0.4:80\n"));
    assert_eq!(entry(monitor.state()).refusals, 2);
    join("10.0.0.5").await;
    wait_for(monitor.state(), "a member after the emptying", |_| {
        file_is(&file, b"10.0.0.5:80\n")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverset_guard_on_sqlite() {
    serverset_guard_refuses_and_recovers(sqlite_fs().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverset_guard_on_zookeeper() {
    if let Some(backends) = zookeeper_s3("serverset_guard_on_zookeeper", None).await {
        serverset_guard_refuses_and_recovers(backends).await;
    }
}

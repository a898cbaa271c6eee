//! kingpin's monitor, as a library, on the PostgreSQL coordinator (and the
//! in-memory blob store): a config write reaches the monitor's file on
//! disk, and so does one made after the monitor's session expired.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore, MemoryBlobStore};
use kingpin_conformance_tests::harness::run_case;
use kingpin_monitor::{Monitor, MonitorSettings, MonitorState};

/// Generous: a failing wait means the behaviour is missing, not slow.
const WAIT: Duration = Duration::from_secs(30);

fn name(s: &str) -> ConfigName {
    ConfigName::parse(s).expect("test names are valid")
}

fn file_is(path: &Path, content: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|c| c == content)
}

async fn wait_for(
    state: &MonitorState,
    what: &str,
    mut condition: impl FnMut(&MonitorState) -> bool,
) {
    tokio::time::timeout(WAIT, state.wait_for(&mut condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", state.health()));
    assert!(condition(state), "the monitor stopped before {what}");
}

#[test]
fn the_monitor_syncs_configs_from_postgres() {
    run_case(async {
        let Some(endpoint) = support::shared_server("the_monitor_syncs_configs_from_postgres")
        else {
            return;
        };
        let schema = support::fresh_schema();
        let writer = Arc::new(support::open(&endpoint, &schema).await);
        let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
        let store = ConfigStore::new(writer.clone(), blobs.clone());
        let flags = name("config.app.flags");
        let change = ChangeInfo::new("test", "monitor on PostgreSQL");
        store
            .write(&flags, b"[1]".to_vec().into(), &change)
            .await
            .unwrap();
        let manager = MetaConfigManager::new(writer.clone());
        manager.create_dependency(&name("host.dep")).await.unwrap();
        let metaconfig = MetaConfig::config(flags.clone()).unwrap();
        manager.create(&metaconfig).await.unwrap();
        manager
            .add_to_dependency(&name("host.dep"), &flags)
            .await
            .unwrap();

        // The monitor's own session, which the test can expire.
        let monitor_session = Arc::new(support::open(&endpoint, &schema).await);
        let out = tempfile::tempdir().unwrap();
        // The URLs only label the backends: they are passed opened.
        let mut settings = MonitorSettings::new("postgres", "memory://", name("host.dep"));
        settings.config_dir = out.path().join("config");
        settings.serverset_dir = out.path().join("serverset");
        settings.admin_addr = None;
        let monitor = Monitor::start_with_backends(settings, monitor_session.clone(), blobs)
            .await
            .unwrap();
        let file = out.path().join("config/config.app.flags");
        let state = monitor.state().clone();
        wait_for(&state, "the first version on disk", |s| {
            file_is(&file, b"[1]") && s.health().ready
        })
        .await;

        store
            .write(&flags, b"[1, 2]".to_vec().into(), &change)
            .await
            .unwrap();
        wait_for(&state, "the update on disk", |_| file_is(&file, b"[1, 2]")).await;

        monitor_session.force_expire().await.unwrap();
        store
            .write(&flags, b"[1, 2, 3]".to_vec().into(), &change)
            .await
            .unwrap();
        wait_for(&state, "the write after the session expired", |_| {
            file_is(&file, b"[1, 2, 3]")
        })
        .await;
        monitor.stop();
    });
}

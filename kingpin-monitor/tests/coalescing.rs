//! When the monitor fetches, on ZooKeeper and S3: versions written while a
//! fetch is in flight become one fetch of the newest version, and a
//! metaconfig's maximum random delay spreads the fetches of a change.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::{BlobKey, BlobMeta, BlobStore, ConfigName};
use kingpin_monitor::{Monitor, MonitorState};
use tokio::sync::{mpsc, watch};

mod support;
use support::{change, name, wait_for, zookeeper_s3, Backends, WAIT};

fn version_of(state: &MonitorState, config: &ConfigName) -> Option<u64> {
    state.entry(config).and_then(|e| e.version)
}

/// The monitor's blob store: the real one, recording every `get` and
/// holding them while its gate is closed.
#[derive(Debug)]
struct GatedBlobStore {
    inner: Arc<dyn BlobStore>,
    fetched: Mutex<Vec<BlobKey>>,
    open: watch::Sender<bool>,
    // Each `get` that reaches the closed gate sends its key here first, so
    // the test awaits "the monitor is fetching" instead of guessing.
    held: mpsc::UnboundedSender<BlobKey>,
}

impl GatedBlobStore {
    /// An open gate over `inner`, and the receiver of held keys.
    fn new(inner: Arc<dyn BlobStore>) -> (Arc<Self>, mpsc::UnboundedReceiver<BlobKey>) {
        let (held, held_keys) = mpsc::unbounded_channel();
        let store = GatedBlobStore {
            inner,
            fetched: Mutex::default(),
            open: watch::Sender::new(true),
            held,
        };
        (Arc::new(store), held_keys)
    }

    fn close_gate(&self) {
        self.open.send_replace(false);
    }

    fn open_gate(&self) {
        self.open.send_replace(true);
    }

    /// Every key fetched so far, in call order.
    fn fetched(&self) -> Vec<BlobKey> {
        self.fetched.lock().unwrap().clone()
    }
}

// Written out as `#[async_trait]` expands the trait's methods; this crate
// does not depend on async-trait.
impl BlobStore for GatedBlobStore {
    fn put_if_absent<'store, 'key, 'call>(
        &'store self,
        key: &'key BlobKey,
        data: Bytes,
    ) -> BoxFuture<'call, kingpin_api::Result<()>>
    where
        'store: 'call,
        'key: 'call,
        Self: 'call,
    {
        self.inner.put_if_absent(key, data)
    }

    fn get<'store, 'key, 'call>(
        &'store self,
        key: &'key BlobKey,
    ) -> BoxFuture<'call, kingpin_api::Result<Bytes>>
    where
        'store: 'call,
        'key: 'call,
        Self: 'call,
    {
        Box::pin(async move {
            self.fetched.lock().unwrap().push(key.clone());
            let mut open = self.open.subscribe();
            if !*open.borrow_and_update() {
                let _ = self.held.send(key.clone());
                // `wait_for` checks the current value first: an opening
                // between the check above and here is not missed.
                let _ = open.wait_for(|open| *open).await;
            }
            self.inner.get(key).await
        })
    }

    fn delete<'store, 'key, 'call>(
        &'store self,
        key: &'key BlobKey,
    ) -> BoxFuture<'call, kingpin_api::Result<()>>
    where
        'store: 'call,
        'key: 'call,
        Self: 'call,
    {
        self.inner.delete(key)
    }

    fn list<'store, 'key, 'call>(
        &'store self,
        prefix: Option<&'key BlobKey>,
    ) -> BoxFuture<'call, kingpin_api::Result<Vec<BlobMeta>>>
    where
        'store: 'call,
        'key: 'call,
        Self: 'call,
    {
        self.inner.list(prefix)
    }
}

/// Subscribes `host.dep` to `metaconfig` and starts a monitor on `blobs`,
/// writing under `out`.
async fn start_monitor(
    backends: &Backends,
    out: &Path,
    metaconfig: &MetaConfig,
    blobs: Arc<dyn BlobStore>,
) -> Monitor {
    let manager = MetaConfigManager::new(backends.coordinator.clone());
    let dep = name("host.dep");
    manager.create_dependency(&dep).await.unwrap();
    manager.create(metaconfig).await.unwrap();
    manager
        .add_to_dependency(&dep, &metaconfig.name)
        .await
        .unwrap();
    let mut settings = backends.settings("host.dep", out);
    settings.admin_addr = None;
    Monitor::start_with_blob_store(settings, blobs)
        .await
        .unwrap()
}

/// The fetch of v2 is held while v3..v10 are written. Once it is let go,
/// the monitor fetches v10 and nothing in between: every fetch reads the
/// current record, and a version already on disk is not fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_during_a_fetch_becomes_one_fetch_of_the_newest_version() {
    let case = "a_burst_during_a_fetch_becomes_one_fetch_of_the_newest_version";
    let Some(backends) = zookeeper_s3(case, None).await else {
        return;
    };
    let config = name("config.app.flags");
    let store = backends.store();
    let write = |version: u64| {
        let (store, config) = (store.clone(), config.clone());
        async move {
            let record = store
                .write(&config, Bytes::from(format!("v{version}")), &change())
                .await
                .unwrap();
            assert_eq!(record.version, version);
            record.blob().unwrap()
        }
    };
    write(1).await;
    let (blobs, mut held) = GatedBlobStore::new(backends.blobs.clone());
    let out = tempfile::tempdir().unwrap();
    let metaconfig = MetaConfig::config(config.clone()).unwrap();
    let monitor = start_monitor(&backends, out.path(), &metaconfig, blobs.clone()).await;
    let state = monitor.state().clone();
    wait_for(&state, "v1", |s| version_of(s, &config) == Some(1)).await;
    let fetched_before = blobs.fetched().len();
    let written_before = monitor.metrics().files_written.get();

    blobs.close_gate();
    let v2 = write(2).await;
    let first_held = tokio::time::timeout(WAIT, held.recv())
        .await
        .expect("the monitor fetches v2")
        .expect("the store is alive");
    assert_eq!(first_held, v2, "the held fetch is v2's");
    let mut burst = Vec::new();
    for version in 3..=10 {
        burst.push(write(version).await);
    }
    let v10 = burst.pop().unwrap();
    blobs.open_gate();
    wait_for(&state, "v10", |s| version_of(s, &config) == Some(10)).await;
    assert_eq!(
        blobs.fetched()[fetched_before..],
        [v2.clone(), v10.clone()],
        "after the held v2, only the newest version is fetched (never {burst:?})"
    );
    assert_eq!(
        monitor.metrics().files_written.get() - written_before,
        2,
        "v2 and v10 written, nothing else"
    );

    // A fence: ZooKeeper delivers the monitor's notifications in order, so
    // by the time v11 is on disk every notification of v3..v10 was handled
    // too. One arriving after v10 was on disk must not fetch v10 again.
    let v11 = write(11).await;
    wait_for(&state, "v11", |s| version_of(s, &config) == Some(11)).await;
    assert_eq!(blobs.fetched()[fetched_before..], [v2, v10, v11]);
    assert_eq!(monitor.metrics().files_written.get() - written_before, 3);
    assert!(held.try_recv().is_err(), "only v2's fetch was ever held");
}

/// A metaconfig's `max_random_delay_ms` delays each fetch by a uniform
/// random time in [0, max], so a fleet does not hit the store at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metaconfigs_max_random_delay_spreads_fetches() {
    let case = "a_metaconfigs_max_random_delay_spreads_fetches";
    let Some(backends) = zookeeper_s3(case, None).await else {
        return;
    };
    const MAX_DELAY_MS: u64 = 1000;
    const WRITES: u64 = 10;
    // Fetch, verify and rename take milliseconds; seconds of slack still
    // catch a delay that ignores the maximum.
    const SLACK: Duration = Duration::from_secs(2);
    let config = name("config.app.flags");
    let store = backends.store();
    store
        .write(&config, Bytes::from_static(b"v1"), &change())
        .await
        .unwrap();
    let metaconfig = MetaConfig::config(config.clone())
        .unwrap()
        .with_max_random_delay_ms(MAX_DELAY_MS);
    let out = tempfile::tempdir().unwrap();
    let monitor = start_monitor(&backends, out.path(), &metaconfig, backends.blobs.clone()).await;
    let state = monitor.state().clone();
    wait_for(&state, "v1", |s| version_of(s, &config) == Some(1)).await;

    let mut lags = Vec::new();
    for _ in 0..WRITES {
        let record = store
            .write(&config, Bytes::from(format!("{}", lags.len())), &change())
            .await
            .unwrap();
        let acked = Instant::now();
        wait_for(&state, "the next version", |s| {
            version_of(s, &config) == Some(record.version)
        })
        .await;
        lags.push(acked.elapsed());
    }

    let max = Duration::from_millis(MAX_DELAY_MS);
    assert!(
        lags.iter().all(|lag| *lag <= max + SLACK),
        "a lag past the maximum delay: {lags:?}"
    );
    // The delays are random. Each is uniform in [0, 1000] ms and the rest of
    // a lag (notification, fetch, rename) only adds to it, so all ten lags
    // stay under 200 ms with probability at most 0.2^10 ≈ 1e-7: this cannot
    // flake. Without the delay the lags are under ~50 ms, so it fails.
    assert!(
        lags.iter().any(|lag| *lag >= Duration::from_millis(200)),
        "no delay applied: {lags:?}"
    );
    // Not always the maximum: all ten at 1000 ms or more needs every delay
    // past 1000 ms minus the few milliseconds of fetching, as likely as
    // (a few ms / 1000 ms)^10.
    assert!(
        lags.iter().any(|lag| *lag < max),
        "every fetch waited the whole maximum: {lags:?}"
    );
}

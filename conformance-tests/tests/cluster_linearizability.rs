//! Linearizability of one config on real 3-node clusters: four clients
//! read, compare-and-set and `update` it while the leader is killed with
//! `kill -9` and one client is cut off from every member; the recorded
//! history is checked against a register with a version (see
//! `kingpin_conformance_tests::linearizability`). A deliberately broken
//! writer (read, then write whatever is there, no compare-and-set on what
//! it read) is caught by the same check, so the check can fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::{ChangeInfo, ConfigName, ConfigStore, ErrorKind};
use kingpin_conformance_tests::cluster::{ClientRuntime, Cluster, ClusterKind};
use kingpin_conformance_tests::linearizability::{check, CheckError, Model, Operation};
use kingpin_conformance_tests::unique_namespace;
use rand::Rng;

const CLIENTS: usize = 4;
const INITIAL: &str = "init;";

/// What a client asked.
#[derive(Debug, Clone)]
enum Input {
    Read,
    /// Write `content` if the config is still at `expected`.
    CompareAndSet {
        expected: u64,
        content: String,
    },
    /// Append `token` to whatever the content is.
    Append {
        token: String,
    },
}

/// What it was answered.
#[derive(Debug, Clone)]
enum Output {
    Read { version: u64, content: String },
    Written { version: u64 },
    Refused,
}

/// The config as a register: its version and content.
struct VersionedConfig;

impl Model for VersionedConfig {
    type State = (u64, String);
    type Input = Input;
    type Output = Output;

    fn init(&self) -> (u64, String) {
        (1, INITIAL.to_owned())
    }

    fn step(
        &self,
        state: &(u64, String),
        input: &Input,
        output: Option<&Output>,
    ) -> Option<(u64, String)> {
        let (version, content) = state;
        match (input, output) {
            (
                Input::Read,
                Some(Output::Read {
                    version: v,
                    content: c,
                }),
            ) => (v == version && c == content).then(|| state.clone()),
            (Input::Read, None) => Some(state.clone()),
            (
                Input::CompareAndSet {
                    expected,
                    content: new,
                },
                Some(Output::Written { version: v }),
            ) => (expected == version && *v == version + 1).then(|| (*v, new.clone())),
            (
                Input::CompareAndSet {
                    expected,
                    content: new,
                },
                None,
            ) => (expected == version).then(|| (version + 1, new.clone())),
            (Input::CompareAndSet { expected, .. }, Some(Output::Refused)) => {
                (expected != version).then(|| state.clone())
            }
            (Input::Append { token }, Some(Output::Written { version: v })) => {
                (*v == version + 1).then(|| (*v, format!("{content}{token}")))
            }
            (Input::Append { token }, None) => Some((version + 1, format!("{content}{token}"))),
            _ => None,
        }
    }
}

type History = Arc<Mutex<Vec<Operation<Input, Output>>>>;

fn who() -> ChangeInfo {
    ChangeInfo::new("test", "linearizability")
}

/// One client's loop: random reads, compare-and-sets of what it last read,
/// and appends, each recorded with its call and return times, until `stop`.
/// `broken`: appends read, then write without a compare-and-set on what
/// they read.
async fn client_loop(
    client: usize,
    store: ConfigStore,
    config: ConfigName,
    epoch: Instant,
    history: History,
    stop: Arc<AtomicBool>,
    broken: bool,
) -> usize {
    let now = move || epoch.elapsed().as_nanos() as u64;
    let mut last_read: Option<u64> = None;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let token = format!("c{client}.{n};");
        let choice = if broken {
            2
        } else {
            rand::rng().random_range(0..3)
        };
        let call = now();
        let (input, outcome) = match (choice, last_read) {
            (1, Some(expected)) => {
                let content = format!("cas-{token}");
                let outcome = match store.record(&config).await {
                    Ok(Some((record, node_version))) if record.version == expected => store
                        .write_if(
                            &config,
                            Bytes::from(content.clone()),
                            &who(),
                            Some((&record, node_version)),
                        )
                        .await
                        .map(|r| Output::Written { version: r.version }),
                    // What it read is gone already: a refused write all the same.
                    Ok(Some(_)) => Ok(Output::Refused),
                    Ok(None) => panic!("the config vanished"),
                    Err(e) => Err(e),
                };
                let outcome = match outcome {
                    Err(e) if e.kind() == ErrorKind::BadVersion => Ok(Output::Refused),
                    other => other,
                };
                (Input::CompareAndSet { expected, content }, outcome)
            }
            (2, _) if broken => {
                let outcome = match store.read(&config).await {
                    Ok(Some(current)) => {
                        let mut next = current.content.to_vec();
                        next.extend_from_slice(token.as_bytes());
                        store
                            .write(&config, Bytes::from(next), &who())
                            .await
                            .map(|r| Output::Written { version: r.version })
                    }
                    Ok(None) => panic!("the config vanished"),
                    Err(e) => Err(e),
                };
                (Input::Append { token }, outcome)
            }
            (2, _) => {
                let appended = token.clone();
                let outcome = store
                    .update(&config, &who(), move |current| {
                        let mut next = current.map(|c| c.to_vec()).unwrap_or_default();
                        next.extend_from_slice(appended.as_bytes());
                        Ok(Some(Bytes::from(next)))
                    })
                    .await
                    .map(|r| Output::Written {
                        version: r.map_or(0, |r| r.version),
                    });
                (Input::Append { token }, outcome)
            }
            _ => {
                let outcome = store.read(&config).await.map(|c| {
                    let c = c.expect("the config exists");
                    Output::Read {
                        version: c.record.version,
                        content: String::from_utf8_lossy(&c.content).into_owned(),
                    }
                });
                if let Ok(Output::Read { version, .. }) = &outcome {
                    last_read = Some(*version);
                }
                (Input::Read, outcome)
            }
        };
        let operation = match outcome {
            Ok(output) => Operation {
                client,
                call,
                completed: Some((now(), output)),
                input,
            },
            // A failed read changed nothing: leave it out.
            Err(_) if matches!(input, Input::Read) => continue,
            // Anything else may or may not have landed.
            Err(_) => Operation {
                client,
                call,
                completed: None,
                input,
            },
        };
        history.lock().unwrap().push(operation);
    }
    n
}

struct Recording {
    epoch: Instant,
    history: History,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<usize>>,
}

/// Opens a store on `url` (with a file blob store at `blobs`) that rides
/// through elections and short partitions, as the CLI does: operations of
/// unknown outcome stay rare, which keeps the check's search small.
async fn store(url: &str, blobs: &str) -> ConfigStore {
    ConfigStore::new(
        kingpin::open_coordinator(url).await.unwrap(),
        kingpin::open_blob_store(blobs).await.unwrap(),
    )
    .with_resolve_timeout(Duration::from_secs(5))
    .with_unavailable_retry(Duration::from_secs(10))
}

/// A config at version 1 and `CLIENTS` clients on it, the last one in
/// `cut_off`'s namespace.
async fn record(url: &str, blobs: &str, cut_off: &ClientRuntime, broken: bool) -> Recording {
    let config = ConfigName::parse("config.lin.register").unwrap();
    store(url, blobs)
        .await
        .write(&config, Bytes::from_static(INITIAL.as_bytes()), &who())
        .await
        .unwrap();
    let epoch = Instant::now();
    let history = History::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        if client + 1 == CLIENTS {
            let (url, blobs) = (url.to_owned(), blobs.to_owned());
            let config = config.clone();
            let (history, stop) = (history.clone(), stop.clone());
            let task = cut_off.spawn(async move {
                let store = store(&url, &blobs).await;
                client_loop(client, store, config, epoch, history, stop, broken).await
            });
            tasks.push(task);
        } else {
            tasks.push(tokio::spawn(client_loop(
                client,
                store(url, blobs).await,
                config.clone(),
                epoch,
                history.clone(),
                stop.clone(),
                broken,
            )));
        }
    }
    Recording {
        epoch,
        history,
        stop,
        tasks,
    }
}

impl Recording {
    /// Stops the clients and, once every one returned, reads the config
    /// once more (on `url`): the history, with that read last, and how
    /// many calls the clients made.
    async fn finish(self, url: &str, blobs: &str) -> (Vec<Operation<Input, Output>>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let mut calls = 0;
        for task in self.tasks {
            calls += task.await.unwrap();
        }
        let mut history = std::mem::take(&mut *self.history.lock().unwrap());
        let config = ConfigName::parse("config.lin.register").unwrap();
        let store = store(url, blobs)
            .await
            .with_unavailable_retry(Duration::from_secs(30));
        let call = self.epoch.elapsed().as_nanos() as u64;
        let last = store.read(&config).await.unwrap().unwrap();
        history.push(Operation {
            client: CLIENTS,
            call,
            completed: Some((
                self.epoch.elapsed().as_nanos() as u64,
                Output::Read {
                    version: last.record.version,
                    content: String::from_utf8_lossy(&last.content).into_owned(),
                },
            )),
            input: Input::Read,
        });
        (history, calls)
    }
}

fn summary(history: &[Operation<Input, Output>]) -> String {
    let count =
        |f: &dyn Fn(&Operation<Input, Output>) -> bool| history.iter().filter(|o| f(o)).count();
    format!(
        "{} operations: {} reads, {} compare-and-sets written, {} refused, {} appends, {} of unknown outcome",
        history.len(),
        count(&|o| matches!(o.input, Input::Read)),
        count(&|o| matches!(o.input, Input::CompareAndSet { .. }) && matches!(o.completed, Some((_, Output::Written { .. })))),
        count(&|o| matches!(o.completed, Some((_, Output::Refused)))),
        count(&|o| matches!(o.input, Input::Append { .. })),
        count(&|o| o.completed.is_none()),
    )
}

async fn linearizable_under_faults(kind: ClusterKind) {
    let Some(mut cluster) = Cluster::for_test(kind, 3, "linearizable_under_faults").await else {
        return;
    };
    let options = match kind {
        ClusterKind::ZooKeeper => "session_timeout=4s&connection_timeout=1s",
        ClusterKind::Etcd => "lease_ttl=4s",
    };
    let url = cluster.url(&unique_namespace(), options);
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", blobs_dir.path().display());
    let cut_off = ClientRuntime::new(&cluster.add_client("lin").unwrap()).unwrap();
    let recording = record(&url, &blobs, &cut_off, false).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster.leader().await.unwrap();
    cluster.kill(leader).unwrap();
    let next = cluster.wait_for_new_leader(leader).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(leader).await.unwrap();
    for m in 0..3 {
        cluster
            .network()
            .block(cut_off.node().addr, cluster.member_addr(m))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.heal().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (history, calls) = recording.finish(&url, &blobs).await;

    let summary = summary(&history);
    println!("{kind:?}: checking {summary}");
    let checked = Instant::now();
    let result = check(&VersionedConfig, &history);
    println!(
        "{kind:?}: {CLIENTS} clients, {calls} calls; leader m{} killed (m{} led), restarted; client {} cut off 2 s; {}; \
         checked in {:?}: {}",
        leader + 1,
        next + 1,
        CLIENTS - 1,
        summary,
        checked.elapsed(),
        result.as_ref().map_or_else(ToString::to_string, |()| "linearizable".into()),
    );
    assert!(history.len() > 50, "enough operations to mean something");
    assert_eq!(result, Ok(()), "zero violations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_config_is_linearizable_under_faults() {
    linearizable_under_faults(ClusterKind::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_config_is_linearizable_under_faults() {
    linearizable_under_faults(ClusterKind::Etcd).await;
}

/// The broken writer loses updates, and the check says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_modify_write_without_compare_and_set_is_caught() {
    let Some(cluster) = Cluster::for_test(ClusterKind::Etcd, 3, "broken_writer_caught").await
    else {
        return;
    };
    let url = cluster.url(&unique_namespace(), "");
    let blobs_dir = tempfile::tempdir().unwrap();
    let blobs = format!("file://{}", blobs_dir.path().display());
    let other = ClientRuntime::new(&cluster.add_client("broken").unwrap()).unwrap();
    let recording = record(&url, &blobs, &other, true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (history, _) = recording.finish(&url, &blobs).await;
    let appended = history
        .iter()
        .filter(|o| matches!(o.input, Input::Append { .. }))
        .count();
    // The last read shows what survived.
    let survived = match history.last().and_then(|o| o.completed.as_ref()) {
        Some((_, Output::Read { content, .. })) => content.matches(';').count() - 1,
        _ => unreachable!("finish ends with a read"),
    };
    let result = check(&VersionedConfig, &history);
    println!(
        "broken writer: {appended} appends acknowledged, {survived} in the final content; {}",
        result
            .as_ref()
            .map_or_else(ToString::to_string, |()| "linearizable".into()),
    );
    assert!(
        matches!(result, Err(CheckError::NotLinearizable(_))),
        "the checker catches the lost updates"
    );
}

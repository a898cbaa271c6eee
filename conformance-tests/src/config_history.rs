//! Histories of one config's reads, compare-and-sets and `update`s by
//! concurrent clients, and the model they are checked against with
//! [`crate::linearizability`]: the config as a register of a version and a
//! content.
//!
//! ```no_run
//! # async fn f(store: kingpin_api::ConfigStore) -> kingpin_api::Result<()> {
//! use kingpin_api::ConfigName;
//! use kingpin_conformance_tests::config_history::{Recording, VersionedConfig};
//! use kingpin_conformance_tests::linearizability::check;
//! let config = ConfigName::parse("config.lin.register")?;
//! let mut recording = Recording::new(config.clone());
//! for client in 0..3 {
//!     let run = recording.client(client, store.clone(), false);
//!     recording.add(tokio::spawn(run));
//! }
//! // ... faults ...
//! let finished = recording.finish(&store).await?;
//! let model = VersionedConfig::starting_at(1, "init;");
//! assert!(check(&model, &finished.history).is_ok());
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kingpin_api::{ChangeInfo, Config, ConfigName, ConfigStore, Error, ErrorKind};
use rand::Rng;

use crate::linearizability::{Model, Operation};

/// What a client asked.
#[derive(Debug, Clone)]
pub enum Input {
    /// Read the version and content.
    Read,
    /// Write `content` if the config is still at `expected`.
    CompareAndSet {
        /// The version the client read.
        expected: u64,
        /// What it writes.
        content: String,
    },
    /// Append `token` to whatever the content is (`ConfigStore::update`).
    Append {
        /// What it appends.
        token: String,
    },
}

/// What a client was answered.
#[derive(Debug, Clone)]
pub enum Output {
    /// A read's answer.
    Read {
        /// The version read.
        version: u64,
        /// The content read.
        content: String,
    },
    /// A write landed as `version`.
    Written {
        /// The version written.
        version: u64,
    },
    /// A compare-and-set was refused: the config had moved on.
    Refused,
}

/// One recorded operation.
pub type ConfigOperation = Operation<Input, Output>;

/// The config as a register: its version and content, from a known start.
#[derive(Debug, Clone)]
pub struct VersionedConfig {
    initial: (u64, String),
}

impl VersionedConfig {
    /// A config that was at `version` with `content` before the history.
    pub fn starting_at(version: u64, content: &str) -> Self {
        VersionedConfig {
            initial: (version, content.to_owned()),
        }
    }
}

impl Model for VersionedConfig {
    type State = (u64, String);
    type Input = Input;
    type Output = Output;

    fn init(&self) -> (u64, String) {
        self.initial.clone()
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

/// Which kind of operation, for tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationKind {
    /// [`Input::Read`].
    Read,
    /// [`Input::CompareAndSet`].
    CompareAndSet,
    /// [`Input::Append`] through `ConfigStore::update`.
    Update,
}

impl OperationKind {
    /// What `input` is.
    pub fn of(input: &Input) -> Self {
        match input {
            Input::Read => OperationKind::Read,
            Input::CompareAndSet { .. } => OperationKind::CompareAndSet,
            Input::Append { .. } => OperationKind::Update,
        }
    }
}

/// An operation that failed: the error's kind and whether it said to try
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// What failed.
    pub operation: OperationKind,
    /// The error's kind.
    pub kind: ErrorKind,
    /// `Error::is_retryable`.
    pub retryable: bool,
}

impl Failure {
    fn of(operation: OperationKind, error: &Error) -> Self {
        Failure {
            operation,
            kind: error.kind(),
            retryable: error.is_retryable(),
        }
    }
}

/// What one client did: how many calls, and which failed.
#[derive(Debug, Clone, Default)]
pub struct ClientRun {
    /// Calls made.
    pub calls: usize,
    /// Calls that failed (a failed write's outcome is unknown).
    pub failures: Vec<Failure>,
}

fn who() -> ChangeInfo {
    ChangeInfo::new("test", "linearizability")
}

type SharedHistory = Arc<Mutex<Vec<ConfigOperation>>>;

/// Clients recording one history: start their loops with
/// [`Recording::client`], run them anywhere (a [`tokio::spawn`], a
/// partitioned client's runtime), hand the handles to [`Recording::add`],
/// and [`Recording::finish`].
#[derive(Debug)]
pub struct Recording {
    config: ConfigName,
    epoch: Instant,
    history: SharedHistory,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<ClientRun>>,
}

/// A finished recording.
#[derive(Debug)]
pub struct Finished {
    /// Every operation, with a last read made after every client stopped.
    pub history: Vec<ConfigOperation>,
    /// What each client did.
    pub clients: Vec<ClientRun>,
}

impl Recording {
    /// A recording of `config`'s history, its clock starting now.
    pub fn new(config: ConfigName) -> Self {
        Recording {
            config,
            epoch: Instant::now(),
            history: SharedHistory::default(),
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        }
    }

    /// Client `client`'s loop on `store`: random reads, compare-and-sets of
    /// what it last read, and appends through `update`, each recorded with
    /// its call and return times, until the recording finishes. `broken`:
    /// appends read, then write without a compare-and-set on what they
    /// read (a writer that loses updates, for showing the check can fail).
    pub fn client(
        &self,
        client: usize,
        store: ConfigStore,
        broken: bool,
    ) -> impl std::future::Future<Output = ClientRun> + Send + 'static {
        client_loop(
            client,
            store,
            self.config.clone(),
            self.epoch,
            self.history.clone(),
            self.stop.clone(),
            broken,
        )
    }

    /// Waits for `task` (a running [`Recording::client`]) at the finish.
    pub fn add(&mut self, task: tokio::task::JoinHandle<ClientRun>) {
        self.tasks.push(task);
    }

    /// Stops the clients and, once every one returned, reads the config
    /// once more through `store` (with [`read_settled`]): the history,
    /// with that read last.
    pub async fn finish(self, store: &ConfigStore) -> kingpin_api::Result<Finished> {
        self.stop.store(true, Ordering::Relaxed);
        let mut clients = Vec::new();
        for task in self.tasks {
            match task.await {
                Ok(run) => clients.push(run),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("a recording client ended early: {e}"),
            }
        }
        let mut history = std::mem::take(&mut *lock(&self.history));
        let call = self.epoch.elapsed().as_nanos() as u64;
        let last = read_settled(store, &self.config).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{} vanished during the recording", self.config),
            )
        })?;
        history.push(Operation {
            client: clients.len(),
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
        Ok(Finished { history, clients })
    }
}

/// How long [`read_settled`] waits out retryable errors.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `config`, waiting out retryable errors for up to
/// [`SETTLE_TIMEOUT`]: for bookkeeping reads after the faults (a member
/// that was just restarted may refuse a connection or two), not for
/// operations under test.
pub async fn read_settled(
    store: &ConfigStore,
    config: &ConfigName,
) -> kingpin_api::Result<Option<Config>> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        match store.read(config).await {
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn lock(history: &SharedHistory) -> std::sync::MutexGuard<'_, Vec<ConfigOperation>> {
    // A client that panicked holding the lock left whole operations only.
    history
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn client_loop(
    client: usize,
    store: ConfigStore,
    config: ConfigName,
    epoch: Instant,
    history: SharedHistory,
    stop: Arc<AtomicBool>,
    broken: bool,
) -> ClientRun {
    let now = move || epoch.elapsed().as_nanos() as u64;
    let vanished = || Error::new(ErrorKind::NotFound, format!("{config} vanished"));
    let mut last_read: Option<u64> = None;
    let mut run = ClientRun::default();
    while !stop.load(Ordering::Relaxed) {
        run.calls += 1;
        let token = format!("c{client}.{};", run.calls);
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
                    Ok(None) => Err(vanished()),
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
                    Ok(None) => Err(vanished()),
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
                let outcome = store.read(&config).await.and_then(|c| {
                    let c = c.ok_or_else(vanished)?;
                    Ok(Output::Read {
                        version: c.record.version,
                        content: String::from_utf8_lossy(&c.content).into_owned(),
                    })
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
            Err(e) => {
                run.failures
                    .push(Failure::of(OperationKind::of(&input), &e));
                if matches!(input, Input::Read) {
                    // A failed read changed nothing: leave it out.
                    continue;
                }
                // Anything else may or may not have landed.
                Operation {
                    client,
                    call,
                    completed: None,
                    input,
                }
            }
        };
        lock(&history).push(operation);
    }
    run
}

/// How many operations of each kind a history holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryCounts {
    /// Every operation.
    pub operations: usize,
    /// Reads answered.
    pub reads: usize,
    /// Compare-and-sets that wrote.
    pub compare_and_sets_written: usize,
    /// Compare-and-sets refused.
    pub refused: usize,
    /// Appends through `update`, whatever their outcome.
    pub updates: usize,
    /// Writes whose outcome is unknown.
    pub unknown: usize,
}

impl HistoryCounts {
    /// Counts `history`.
    pub fn of(history: &[ConfigOperation]) -> Self {
        let count = |f: &dyn Fn(&ConfigOperation) -> bool| history.iter().filter(|o| f(o)).count();
        HistoryCounts {
            operations: history.len(),
            reads: count(&|o| matches!(o.input, Input::Read)),
            compare_and_sets_written: count(&|o| {
                matches!(o.input, Input::CompareAndSet { .. })
                    && matches!(o.completed, Some((_, Output::Written { .. })))
            }),
            refused: count(&|o| matches!(o.completed, Some((_, Output::Refused)))),
            updates: count(&|o| matches!(o.input, Input::Append { .. })),
            unknown: count(&|o| o.completed.is_none()),
        }
    }
}

impl std::fmt::Display for HistoryCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} operations: {} reads, {} compare-and-sets written, {} refused, {} appends, {} of unknown outcome",
            self.operations,
            self.reads,
            self.compare_and_sets_written,
            self.refused,
            self.updates,
            self.unknown,
        )
    }
}

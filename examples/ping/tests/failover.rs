//! Three `ping-server` processes registered in one ZooKeeper serverset
//! (`KINGPIN_TEST_ZK`), a kingpin-thrift client under load, and servers
//! killed with SIGKILL: with retries on, no call fails while one is
//! killed; with all three killed, calls fail with a clear error within the
//! call's timeout.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kingpin::kingpin_api::discovery::ServerSet;
use kingpin_client::Endpoint;
use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use kingpin_example_ping::gen::ping::{PingClient, PingClientBuilder, PingRequest};
use kingpin_thrift::{
    CallFailure, ClientBuilder, ClientMetrics, ErrorKind, RetryPolicy, ServersetDiscover,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use volo_thrift::MaybeException;

/// The longest any awaited change may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// Concurrent callers in the load.
const CALLERS: usize = 16;

/// A `ping-server` process.
struct PingServerProcess {
    endpoint: Endpoint,
    child: Child,
}

impl PingServerProcess {
    async fn start(coordinator_url: &str, name: &str) -> PingServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ping-server"))
            .args([
                "--coordinator",
                coordinator_url,
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
            ])
            .env_remove("KINGPIN_COORDINATOR")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting ping-server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("ping-server says where it listens")
            .unwrap()
            .expect("a line from ping-server");
        let address = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let endpoint = address.parse().expect("host:port");
        PingServerProcess { endpoint, child }
    }

    /// SIGKILL: no goodbye, the member stays until its session expires.
    async fn kill(&mut self) {
        self.child.kill().await.expect("killing ping-server");
    }
}

fn request() -> PingRequest {
    PingRequest {
        message: "load".into(),
    }
}

/// Callers that ping until told to stop, recording which server answered
/// each call and every failure.
struct Load {
    answered_by: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    calls: Arc<AtomicUsize>,
    stop: Arc<tokio::sync::Notify>,
    callers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &PingClient) -> Load {
        let load = Load {
            answered_by: Arc::default(),
            failures: Arc::default(),
            calls: Arc::default(),
            stop: Arc::default(),
            callers: Vec::new(),
        };
        let callers = (0..CALLERS)
            .map(|_| {
                let client = client.clone();
                let (answered_by, failures, calls, stop) = (
                    load.answered_by.clone(),
                    load.failures.clone(),
                    load.calls.clone(),
                    load.stop.clone(),
                );
                tokio::spawn(async move {
                    let stopped = stop.notified();
                    tokio::pin!(stopped);
                    loop {
                        tokio::select! {
                            _ = &mut stopped => return,
                            answer = client.ping(request()) => {
                                match answer {
                                    Ok(MaybeException::Ok(pong)) => {
                                        answered_by.lock().unwrap().push(pong.server.to_string())
                                    }
                                    Ok(MaybeException::Exception(e)) => {
                                        failures.lock().unwrap().push(format!("{e:?}"))
                                    }
                                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                                }
                                calls.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Load { callers, ..load }
    }

    /// Waits until `more` calls have completed since `since`.
    async fn until_calls(&self, since: usize, more: usize) {
        let deadline = Instant::now() + WAIT;
        while self.calls.load(Ordering::Relaxed) < since + more {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::task::yield_now().await;
        }
    }

    fn answers_from(&self, from: usize) -> HashSet<String> {
        self.answered_by.lock().unwrap()[from..]
            .iter()
            .cloned()
            .collect()
    }

    async fn stop(self) -> Vec<String> {
        self.stop.notify_waiters();
        for caller in self.callers {
            caller.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        failures
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_killed_under_load_fail_no_call_then_all_killed_fail_clearly() {
    let Some(zk) = shared_endpoint(ServerKind::ZooKeeper, "servers_killed_under_load").await else {
        return;
    };
    // Killed servers' members go when their sessions expire, 4 s on.
    let url = format!("zk://{zk}{}?session_timeout=4s", unique_namespace());
    let mut servers = Vec::new();
    for name in ["s1", "s2", "s3"] {
        servers.push(PingServerProcess::start(&url, name).await);
    }

    let coordinator = kingpin::open_coordinator(&url).await.unwrap();
    let serverset = ServerSet::new(coordinator, "ping", "dev").unwrap();
    let discover = ServersetDiscover::coordinator(&serverset).await.unwrap();
    let hosts = discover.hosts().clone();
    let (changed, mut changes) = mpsc::unbounded_channel();
    hosts.on_change(move |hosts| {
        let _ = changed.send(hosts.len());
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    while hosts.hosts().len() < 3 {
        tokio::time::timeout_at(deadline, changes.recv())
            .await
            .expect("the client sees the three servers");
    }

    let metrics = ClientMetrics::new();
    let timeout = Duration::from_secs(1);
    let client = ClientBuilder::new(PingClientBuilder::new("ping"), discover)
        .timeout(timeout)
        .retry(RetryPolicy::default().max_attempts(3))
        .metrics(metrics.clone())
        .build();

    // One server of three killed under load.
    let load = Load::start(&client);
    load.until_calls(0, 2000).await;
    assert_eq!(
        load.answers_from(0),
        HashSet::from(["s1".into(), "s2".into(), "s3".into()])
    );
    servers[1].kill().await;
    let killed_at = load.answered_by.lock().unwrap().len();
    let calls_at_kill = load.calls.load(Ordering::Relaxed);
    // Until its session expires, s2 is still a member: the client finds it
    // dead by itself, retries elsewhere and skips it.
    load.until_calls(calls_at_kill, 3000).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while hosts.hosts().contains(&servers[1].endpoint) {
        tokio::time::timeout_at(deadline, changes.recv())
            .await
            .expect("s2 leaves the serverset when its session expires");
    }
    let calls_after_expiry = load.calls.load(Ordering::Relaxed);
    load.until_calls(calls_after_expiry, 1000).await;
    let late_answers = load.answers_from(killed_at + CALLERS);
    let failures = load.stop().await;
    assert!(
        failures.is_empty(),
        "{} calls failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert_eq!(late_answers, HashSet::from(["s1".into(), "s3".into()]));
    let transport_failures = metrics.attempt_failures("ping", "ping", ErrorKind::Transport);
    assert!(transport_failures >= 1, "the kill was noticed");
    assert_eq!(metrics.retries("ping", "ping"), transport_failures);
    assert!(metrics.invalidations("ping") >= 1);
    println!(
        "one of three killed: {} calls, none failed, {transport_failures} attempts retried",
        metrics.calls("ping", "ping", "ok")
    );

    // All three killed: a clear error within the call's timeout.
    servers[0].kill().await;
    servers[2].kill().await;
    let started = Instant::now();
    let error = match client.ping(request()).await {
        Err(error) => error,
        Ok(_) => panic!("a call was answered with every server killed"),
    };
    let elapsed = started.elapsed();
    assert!(elapsed < timeout, "failed after {elapsed:?}: {error}");
    let failure = CallFailure::of(&error).expect("a CallFailure");
    assert_eq!(failure.kind(), ErrorKind::Transport);
    let message = error.to_string();
    assert!(
        message.contains("ping.ping failed after 3 attempts"),
        "{message}"
    );
    match &error {
        volo_thrift::ClientError::Transport(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{message}")
        }
        other => panic!("{other}"),
    }
    for attempt in &failure.attempts {
        assert!(
            attempt.error.to_lowercase().contains("connection refused"),
            "{message}"
        );
    }
    let live: HashSet<Endpoint> = [&servers[0], &servers[2]]
        .iter()
        .map(|s| s.endpoint.clone())
        .collect();
    let tried: HashSet<Endpoint> = failure.attempts.iter().map(|a| a.host.clone()).collect();
    assert_eq!(tried, live, "both remaining hosts tried: {message}");
}

//! The client and the server helper against real servers: ping servers
//! (volo-thrift) registered by `ServerBuilder` in a ZooKeeper serverset
//! (`KINGPIN_TEST_ZK`), hosts that refuse connections, and hosts that
//! accept and never answer.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kingpin::kingpin_api::discovery::ServerSet;
use kingpin_client::{Endpoint, HostsProvider, Selector};
use kingpin_conformance_tests::endpoints::shared_endpoint;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use kingpin_example_ping::gen::ping::{PingClient, PingClientBuilder, PingRequest, PingServer};
use kingpin_example_ping::{PingHandler, FAILING_MESSAGE};
use kingpin_thrift::{
    default_hosts, CallFailure, ClientBuilder, ClientMetrics, ErrorKind, FailureReason, Recycle,
    RetryBudget, RetryPolicy, RunningServer, ServerBuilder, ServersetDiscover,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use volo_thrift::MaybeException;

const SERVICE: &str = "ping";

/// The longest any awaited change may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// A serverset of its own on the run's ZooKeeper.
async fn serverset(case: &str) -> Option<ServerSet> {
    let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
    let url = format!("zk://{hosts}{}", unique_namespace());
    let coordinator = kingpin::open_coordinator(&url)
        .await
        .expect("a ZooKeeper session");
    Some(ServerSet::new(coordinator, SERVICE, "test").unwrap())
}

/// A ping server answering as `name`, registered in `serverset`.
async fn serve(serverset: &ServerSet, name: &str) -> RunningServer {
    ServerBuilder::new(serverset.clone())
        .drain(Duration::from_millis(200))
        .serve(
            PingServer::new(PingHandler::new(name)),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .expect("serving")
}

fn request(message: &str) -> PingRequest {
    PingRequest {
        message: message.to_owned().into(),
    }
}

/// Which server answered `client`'s ping.
async fn ping(client: &PingClient) -> String {
    match client.ping(request("hi")).await.expect("an answer") {
        MaybeException::Ok(pong) => pong.server.to_string(),
        MaybeException::Exception(e) => panic!("unexpected exception {e:?}"),
    }
}

/// Addresses where nothing listens: connections are refused.
async fn refusing_hosts(n: usize) -> Vec<Endpoint> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    listeners
        .iter()
        .map(|l| endpoint(l.local_addr().unwrap()))
        .collect()
}

/// A host that accepts connections and never answers.
async fn silent_host() -> (Endpoint, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (endpoint(address), task)
}

/// A host that accepts a connection, reads the start of a request and
/// hangs up: the request reached it, and no answer comes.
async fn hanging_up_host() -> (Endpoint, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut start = [0u8; 4];
            let _ = stream.read_exact(&mut start).await;
        }
    });
    (endpoint(address), task)
}

/// The error of a ping that must fail.
async fn call_error(client: &PingClient) -> volo_thrift::ClientError {
    match client.ping(request("hi")).await {
        Err(error) => error,
        Ok(_) => panic!("the call was answered"),
    }
}

fn endpoint(address: SocketAddr) -> Endpoint {
    Endpoint::new(address.ip().to_string(), address.port())
}

fn client_of(
    hosts: HostsProvider,
) -> ClientBuilder<
    kingpin_example_ping::gen::ping::MkPingGenericClient,
    kingpin_example_ping::gen::ping::PingRequestSend,
    kingpin_example_ping::gen::ping::PingResponseRecv,
> {
    ClientBuilder::new(
        PingClientBuilder::new(SERVICE),
        ServersetDiscover::new(hosts),
    )
}

#[tokio::test]
async fn the_server_is_registered_while_it_serves_and_leaves_when_stopped() {
    let Some(serverset) = serverset("the_server_is_registered").await else {
        return;
    };
    let server = serve(&serverset, "a").await;
    let address = server.local_addr();
    let members = serverset.members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].endpoint, endpoint(address));
    assert_eq!(*server.endpoint(), endpoint(address));

    let discover = ServersetDiscover::coordinator(&serverset).await.unwrap();
    let client = ClientBuilder::new(PingClientBuilder::new(SERVICE), discover).build();
    assert_eq!(ping(&client).await, "a");

    server.stop().await.unwrap();
    assert!(serverset.members().await.unwrap().is_empty());
    let refused = TcpStream::connect(address).await;
    assert!(refused.is_err(), "still listening after stop");
}

#[tokio::test]
async fn calls_spread_over_the_serverset_and_a_stopped_server_fails_none() {
    let Some(serverset) = serverset("calls_spread").await else {
        return;
    };
    let a = serve(&serverset, "a").await;
    let b = serve(&serverset, "b").await;
    let c = serve(&serverset, "c").await;
    let discover = ServersetDiscover::coordinator(&serverset).await.unwrap();
    let hosts = discover.hosts().clone();
    let (changed, mut changes) = mpsc::unbounded_channel();
    hosts.on_change(move |hosts| {
        let _ = changed.send(hosts.to_vec());
    });
    let metrics = ClientMetrics::new();
    let client = ClientBuilder::new(PingClientBuilder::new(SERVICE), discover)
        .metrics(metrics.clone())
        .build();

    let mut seen = HashSet::new();
    for _ in 0..300 {
        seen.insert(ping(&client).await);
    }
    assert_eq!(seen, HashSet::from(["a".into(), "b".into(), "c".into()]));

    // Eight callers keep calling while b leaves, drains and stops.
    let calls = Arc::new(AtomicUsize::new(0));
    let stop_calling = Arc::new(tokio::sync::Notify::new());
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (client, calls, stop) = (client.clone(), calls.clone(), stop_calling.clone());
        callers.push(tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => return Ok::<(), String>(()),
                    answer = client.ping(request("load")) => {
                        answer.map_err(|e| e.to_string())?;
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let b_endpoint = b.endpoint().clone();
    b.stop().await.unwrap();
    // The client's view loses b.
    let deadline = Instant::now() + WAIT;
    while hosts.hosts().contains(&b_endpoint) {
        tokio::time::timeout_at(deadline.into(), changes.recv())
            .await
            .expect("the client sees b leave");
    }
    let before = calls.load(Ordering::Relaxed);
    // A few hundred more calls with b gone.
    while calls.load(Ordering::Relaxed) < before + 300 {
        tokio::task::yield_now().await;
    }
    stop_calling.notify_waiters();
    for caller in callers {
        caller.await.unwrap().expect("no call failed");
    }
    assert_eq!(metrics.calls(SERVICE, "ping", "transport"), 0);
    assert_eq!(metrics.calls(SERVICE, "ping", "timeout"), 0);

    let mut seen = HashSet::new();
    for _ in 0..100 {
        seen.insert(ping(&client).await);
    }
    assert_eq!(seen, HashSet::from(["a".into(), "c".into()]));
    a.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test]
async fn an_answer_is_final_and_counted_per_method() {
    let Some(serverset) = serverset("an_answer_is_final").await else {
        return;
    };
    let server = serve(&serverset, "a").await;
    let metrics = ClientMetrics::new();
    let client = client_of(default_hosts().static_hosts([server.endpoint().clone()]))
        .metrics(metrics.clone())
        .build();

    match client.ping(request(FAILING_MESSAGE)).await.unwrap() {
        MaybeException::Exception(e) => assert!(format!("{e:?}").contains("asked to fail")),
        MaybeException::Ok(pong) => panic!("expected PingError, got {pong:?}"),
    }
    for _ in 0..3 {
        client.slow_ping(request("x"), 1).await.unwrap();
    }
    assert_eq!(metrics.calls(SERVICE, "ping", "ok"), 1);
    assert_eq!(metrics.calls(SERVICE, "slow_ping", "ok"), 3);
    assert_eq!(metrics.retries(SERVICE, "ping"), 0);
    let text = metrics.encode();
    assert!(
        text.contains(r#"kingpin_thrift_client_call_duration_seconds_count{service="ping",method="slow_ping"} 3"#),
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_host_times_out_and_the_call_is_retried_elsewhere() {
    let Some(serverset) = serverset("a_silent_host").await else {
        return;
    };
    let server = serve(&serverset, "good").await;
    let (silent, _silent_task) = silent_host().await;
    // Round robin starts with the silent host.
    let hosts = default_hosts()
        .selector(Selector::RoundRobin)
        .static_hosts([silent.clone(), server.endpoint().clone()]);
    let metrics = ClientMetrics::new();
    let client = client_of(hosts.clone())
        .timeout(Duration::from_secs(5))
        .attempt_timeout(Duration::from_millis(100))
        .metrics(metrics.clone())
        .build();

    for _ in 0..20 {
        assert_eq!(ping(&client).await, "good");
    }
    // The silent host was tried once, timed out, and is skipped since.
    assert_eq!(
        metrics.attempt_failures(SERVICE, "ping", ErrorKind::Timeout),
        1
    );
    assert_eq!(hosts.invalid_hosts(), [silent]);
    assert_eq!(metrics.invalidations(SERVICE), 1);
    assert_eq!(
        metrics.retries(SERVICE, "ping"),
        metrics.attempt_failures(SERVICE, "ping", ErrorKind::Timeout)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn all_hosts_down_fail_with_every_host_named_within_the_timeout() {
    let dead = refusing_hosts(3).await;
    let metrics = ClientMetrics::new();
    let client = client_of(default_hosts().static_hosts(dead.clone()))
        .timeout(Duration::from_secs(1))
        .retry(RetryPolicy::default().max_attempts(3))
        .metrics(metrics.clone())
        .build();

    let started = Instant::now();
    let error = call_error(&client).await;
    assert!(started.elapsed() < Duration::from_secs(1), "{error}");
    let failure = CallFailure::of(&error).expect("a CallFailure inside");
    assert_eq!(failure.reason, FailureReason::AttemptsExhausted);
    let tried: HashSet<_> = failure.attempts.iter().map(|a| a.host.clone()).collect();
    assert_eq!(
        tried,
        dead.iter().cloned().collect(),
        "three different hosts"
    );
    let message = error.to_string();
    for host in &dead {
        assert!(message.contains(&host.to_string()), "{message}");
    }
    assert!(
        message.contains("ping.ping failed after 3 attempts"),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert_eq!(metrics.calls(SERVICE, "ping", "transport"), 1);
    assert_eq!(
        metrics.attempt_failures(SERVICE, "ping", ErrorKind::Transport),
        3
    );
}

#[tokio::test]
async fn a_method_that_is_not_idempotent_is_retried_only_when_its_request_never_left() {
    let Some(serverset) = serverset("not_idempotent").await else {
        return;
    };
    let server = serve(&serverset, "good").await;
    let (hanging_up, _task) = hanging_up_host().await;
    // Round robin: the first call's first attempt goes to the first host.
    let client_first_to = |first: Endpoint, policy: RetryPolicy| {
        let metrics = ClientMetrics::new();
        let hosts = default_hosts()
            .selector(Selector::RoundRobin)
            .static_hosts([first, server.endpoint().clone()]);
        let client = client_of(hosts)
            .retry(policy)
            .metrics(metrics.clone())
            .build();
        (client, metrics)
    };
    let careful = || RetryPolicy::default().not_idempotent(["ping"]);

    // The request reached a host that hung up: not made again elsewhere.
    let (client, metrics) = client_first_to(hanging_up.clone(), careful());
    let error = call_error(&client).await;
    let failure = CallFailure::of(&error).expect("a CallFailure inside");
    assert_eq!(failure.reason, FailureReason::MayHaveArrived, "{error}");
    assert_eq!(failure.attempts.len(), 1, "{error}");
    assert_eq!(failure.attempts[0].host, hanging_up);
    assert!(error.to_string().contains("not idempotent"), "{error}");
    assert_eq!(metrics.retries(SERVICE, "ping"), 0);

    // Refused: the request never left, so it is retried, and answered.
    let refused = refusing_hosts(1).await.remove(0);
    let (client, metrics) = client_first_to(refused, careful());
    assert_eq!(ping(&client).await, "good");
    assert_eq!(metrics.retries(SERVICE, "ping"), 1);

    // An idempotent method after the same hang-up is retried, and answered.
    let (client, metrics) = client_first_to(hanging_up, RetryPolicy::default());
    assert_eq!(ping(&client).await, "good");
    assert_eq!(metrics.retries(SERVICE, "ping"), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn silent_hosts_fail_the_call_at_its_timeout() {
    let (one, _t1) = silent_host().await;
    let (two, _t2) = silent_host().await;
    let client = client_of(default_hosts().static_hosts([one, two]))
        .timeout(Duration::from_millis(300))
        .attempt_timeout(Duration::from_millis(100))
        .retry(RetryPolicy::default().max_attempts(10))
        .build();
    let started = Instant::now();
    let error = call_error(&client).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200),
        "{elapsed:?}: {error}"
    );
    assert!(
        elapsed < Duration::from_millis(1000),
        "{elapsed:?}: {error}"
    );
    let failure = CallFailure::of(&error).unwrap();
    assert_eq!(failure.kind(), ErrorKind::Timeout);
    assert!(
        matches!(failure.reason, FailureReason::CallTimeout(_)),
        "{failure}"
    );
    match &error {
        volo_thrift::ClientError::Transport(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut)
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn no_hosts_fail_clearly() {
    let (hosts, _updater) = default_hosts().manual();
    let client = client_of(hosts).build();
    let error = call_error(&client).await;
    let failure = CallFailure::of(&error).unwrap();
    assert_eq!(failure.kind(), ErrorKind::NoHosts);
    assert!(failure.attempts.is_empty());
    assert!(error.to_string().contains("no host to select"), "{error}");
}

#[tokio::test]
async fn the_retry_budget_stops_retries_when_every_call_fails() {
    let dead = refusing_hosts(3).await;
    let metrics = ClientMetrics::new();
    let client = client_of(default_hosts().static_hosts(dead))
        .retry_budget(RetryBudget::new(0.0, 0))
        .metrics(metrics.clone())
        .build();
    let error = call_error(&client).await;
    let failure = CallFailure::of(&error).unwrap();
    assert_eq!(failure.reason, FailureReason::BudgetExhausted);
    assert_eq!(failure.attempts.len(), 1);
    assert_eq!(metrics.retries_refused(SERVICE, "ping"), 1);
    assert!(
        error.to_string().contains("retry budget exhausted"),
        "{error}"
    );
}

/// Forwards connections to `target`, counting them.
async fn counting_proxy(target: SocketAddr) -> (Endpoint, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (endpoint(address), accepted)
}

#[tokio::test]
async fn connections_are_recycled_after_their_requests_and_their_age() {
    let Some(serverset) = serverset("connections_are_recycled").await else {
        return;
    };
    let server = serve(&serverset, "a").await;

    let (proxy, connections) = counting_proxy(server.local_addr()).await;
    let metrics = ClientMetrics::new();
    let client = client_of(default_hosts().static_hosts([proxy]))
        .recycle(Recycle::never().max_requests(10))
        .metrics(metrics.clone())
        .build();
    for _ in 0..100 {
        ping(&client).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 10);
    assert_eq!(metrics.recycled(SERVICE), 10);

    let (proxy, connections) = counting_proxy(server.local_addr()).await;
    let client = client_of(default_hosts().static_hosts([proxy]))
        .recycle(Recycle::never().max_age(Duration::from_millis(200)))
        .build();
    for _ in 0..10 {
        ping(&client).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "young: reused");
    // Time passing is the point here: the connection ages past its limit
    // (200 ms, give or take a tenth).
    tokio::time::sleep(Duration::from_millis(300)).await;
    ping(&client).await;
    assert_eq!(connections.load(Ordering::SeqCst), 2, "old: made anew");
    server.stop().await.unwrap();
}

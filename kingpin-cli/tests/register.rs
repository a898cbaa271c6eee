//! `kingpin register` end to end against ZooKeeper (`KINGPIN_TEST_ZK`, else
//! a testcontainers one; the restart case starts a private server). The
//! binary runs as a child process; the test follows the serverset through
//! a session of its own and waits on watch events, never on sleeps.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kingpin::kingpin_api::discovery::{Member, ServerSet};
use kingpin::kingpin_api::{Coordinator, NodePath, WatchStream};
use kingpin_conformance_tests::endpoints::{private_server, shared_endpoint};
use kingpin_conformance_tests::partition::Partition;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::unique_namespace;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SERVICE: &str = "api";
const ENV: &str = "test";

/// The longest any one awaited change may take: past a 4 s session
/// timeout, with room for a loaded machine.
const WAIT: Duration = Duration::from_secs(40);

/// Checks 100 ms apart; two failures deregister, two passes register again.
const FAST: [&str; 8] = [
    "--interval",
    "100ms",
    "--timeout",
    "100ms",
    "--rise",
    "2",
    "--fall",
    "2",
];

/// Environment variables that would pick other backends or settings.
const SETTINGS_VARS: [&str; 6] = [
    "KINGPIN_COORDINATOR",
    "KINGPIN_BLOBSTORE",
    "KINGPIN_CONFIG",
    "KINGPIN_AUTHOR",
    "XDG_CONFIG_HOME",
    "RUST_LOG",
];

/// A namespace (chroot) of its own on a ZooKeeper server.
struct Zk {
    hosts: String,
    namespace: String,
}

impl Zk {
    async fn shared(case: &str) -> Option<Zk> {
        let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
        Some(Zk::on(hosts))
    }

    fn on(hosts: String) -> Zk {
        Zk {
            hosts,
            namespace: unique_namespace(),
        }
    }

    /// The URL `kingpin register` gets: through `via` (a proxy) when
    /// given, with `options` as the query.
    fn url(&self, via: Option<&str>, options: &str) -> String {
        let hosts = via.unwrap_or(&self.hosts);
        format!("zk://{hosts}{}{options}", self.namespace)
    }

    /// The test's own session, in the same namespace.
    async fn observer(&self) -> Observer {
        let coordinator = kingpin::open_coordinator(&self.url(None, ""))
            .await
            .expect("the test's ZooKeeper session");
        let serverset = ServerSet::new(coordinator.clone(), SERVICE, ENV).unwrap();
        let watch = serverset.watch().await.expect("a serverset watch");
        Observer {
            coordinator,
            serverset,
            watch,
        }
    }

    /// Whether the namespace exists: a command that fails validation must
    /// not even create it.
    async fn namespace_exists(&self) -> bool {
        let root = kingpin::open_coordinator(&format!("zk://{}", self.hosts))
            .await
            .expect("a ZooKeeper session");
        let path = NodePath::parse(&self.namespace).unwrap();
        let exists = root.exists(&path).await.unwrap().is_some();
        let _ = root.close().await;
        exists
    }
}

/// The test's view of the serverset.
struct Observer {
    coordinator: Arc<dyn Coordinator>,
    serverset: ServerSet,
    watch: WatchStream,
}

impl Observer {
    /// Re-reads the members now and on every watch event until `done`
    /// holds; fails with kingpin's log after [`WAIT`].
    async fn until(
        &mut self,
        what: &str,
        kingpin: &Registrar,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            // Reads fail while the test's own session is cut off; the
            // watch says when to try again.
            if let Ok(members) = self.serverset.members().await {
                let endpoints = endpoints(&members);
                if done(&endpoints) {
                    return endpoints;
                }
            }
            match tokio::time::timeout_at(deadline, self.watch.next()).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("{what}: the watch ended\n{}", kingpin.log()),
                Err(_) => panic!("{what}: not within {WAIT:?}\n{}", kingpin.log()),
            }
        }
    }

    async fn members(&self) -> Vec<String> {
        endpoints(&self.serverset.members().await.unwrap())
    }

    /// The member nodes' names.
    async fn nodes(&self) -> Vec<String> {
        self.coordinator
            .children(self.serverset.path())
            .await
            .unwrap()
    }
}

fn endpoints(members: &[Member]) -> Vec<String> {
    members.iter().map(|m| m.endpoint.to_string()).collect()
}

/// A running `kingpin register`, killed if the test ends first. Its stderr
/// goes to a file that failed assertions show.
struct Registrar {
    child: tokio::process::Child,
    log: tempfile::NamedTempFile,
    _home: tempfile::TempDir,
}

impl Registrar {
    fn start(coordinator: &str, args: &[&str]) -> Registrar {
        let home = tempfile::tempdir().unwrap();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut all = vec!["--service", SERVICE, "--env", ENV, "--host", "127.0.0.1"];
        all.extend_from_slice(args);
        let mut command = command(coordinator, &all, home.path());
        command
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true);
        Registrar {
            child: command.spawn().expect("kingpin runs"),
            log,
            _home: home,
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        format!("kingpin's stderr:\n{text}")
    }

    fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("kingpin is running");
        kill(Pid::from_raw(pid as i32), signal).unwrap();
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    async fn exit_status(&mut self) -> ExitStatus {
        match tokio::time::timeout(WAIT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("kingpin did not exit\n{}", self.log()),
        }
    }

    /// SIGTERM, then a successful exit.
    async fn terminate(&mut self) {
        self.signal(Signal::SIGTERM);
        let status = self.exit_status().await;
        assert!(status.success(), "{status}\n{}", self.log());
    }
}

fn command(coordinator: &str, args: &[&str], home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kingpin"));
    for var in SETTINGS_VARS {
        command.env_remove(var);
    }
    command
        .arg("--coordinator")
        .arg(coordinator)
        .arg("register")
        .args(args)
        .current_dir(home)
        .env("KINGPIN_HOME", home)
        .env("XDG_CONFIG_HOME", home.join("xdg"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// A TCP server that accepts and closes connections until dropped.
struct TcpService {
    port: u16,
    task: JoinHandle<()>,
}

impl TcpService {
    async fn bind(port: u16) -> TcpService {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                drop(connection);
            }
        });
        TcpService { port, task }
    }

    /// Stops listening: the port refuses connections once this returns.
    async fn close(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// An HTTP server answering `200 OK` or `503` as the test says, and
/// remembering the request line it got.
struct HttpService {
    port: u16,
    healthy: Arc<AtomicBool>,
    request_line: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl HttpService {
    async fn start() -> HttpService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let healthy = Arc::new(AtomicBool::new(true));
        let request_line = Arc::new(Mutex::new(String::new()));
        let (flag, line) = (healthy.clone(), request_line.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut connection, _)) = listener.accept().await {
                let (flag, line) = (flag.clone(), line.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match connection.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    *line.lock().unwrap() = text.lines().next().unwrap_or_default().to_owned();
                    let status = if flag.load(Ordering::SeqCst) {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = connection.write_all(response.as_bytes()).await;
                    let _ = connection.shutdown().await;
                });
            }
        });
        HttpService {
            port,
            healthy,
            request_line,
            task,
        }
    }
}

impl Drop for HttpService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn at(port: u16) -> Vec<String> {
    vec![format!("127.0.0.1:{port}")]
}

/// A service on a free port, and the registrar registering it with a TCP
/// check.
async fn start_with_tcp_check(zk: &Zk) -> (TcpService, Registrar) {
    let service = TcpService::bind(0).await;
    let port = service.port.to_string();
    let mut args = vec!["--port", &port, "--check", "tcp"];
    args.extend(FAST);
    let kingpin = Registrar::start(&zk.url(None, ""), &args);
    (service, kingpin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_check_deregisters_and_registers_again() {
    let Some(zk) = Zk::shared("a_tcp_check_deregisters_and_registers_again").await else {
        return;
    };
    let mut observer = zk.observer().await;
    let (service, mut kingpin) = start_with_tcp_check(&zk).await;
    let port = service.port;

    observer
        .until("registered", &kingpin, |m| m == at(port))
        .await;
    service.close().await;
    observer
        .until("deregistered", &kingpin, <[String]>::is_empty)
        .await;
    let _service = TcpService::bind(port).await;
    observer
        .until("registered again", &kingpin, |m| m == at(port))
        .await;

    kingpin.terminate().await;
    assert!(observer.members().await.is_empty());
    let log = kingpin.log();
    assert!(log.contains("deregistering"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_check_follows_the_status_code() {
    let Some(zk) = Zk::shared("an_http_check_follows_the_status_code").await else {
        return;
    };
    let mut observer = zk.observer().await;
    let service = HttpService::start().await;
    let url = format!("http://127.0.0.1:{}/health?deep=1", service.port);
    let mut args = vec!["--port", "8080", "--check", &url, "--shard", "3"];
    args.extend(FAST);
    let mut kingpin = Registrar::start(&zk.url(None, ""), &args);

    observer
        .until("registered", &kingpin, |m| m == at(8080))
        .await;
    let members = observer.serverset.members().await.unwrap();
    assert_eq!(members[0].shard, Some(3));
    assert_eq!(
        *service.request_line.lock().unwrap(),
        "GET /health?deep=1 HTTP/1.1"
    );

    service.healthy.store(false, Ordering::SeqCst);
    observer
        .until("deregistered on 503", &kingpin, <[String]>::is_empty)
        .await;
    service.healthy.store(true, Ordering::SeqCst);
    observer
        .until("registered again on 200", &kingpin, |m| m == at(8080))
        .await;
    kingpin.terminate().await;
    assert!(observer.members().await.is_empty());
    assert!(kingpin.log().contains("HTTP 503"), "{}", kingpin.log());
}

/// SIGTERM and SIGINT: the member is gone by the time kingpin has exited
/// (left, not merely expired), and the exit status is success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_leave_then_exit_zero() {
    let Some(zk) = Zk::shared("sigterm_and_sigint_leave_then_exit_zero").await else {
        return;
    };
    let mut observer = zk.observer().await;
    // A long session: only an explicit leave (or close) removes the nodes
    // before the exit.
    let url = zk.url(None, "?session_timeout=30s");
    let mut first = Registrar::start(&url, &["--port", "1001"]);
    let mut second = Registrar::start(&url, &["--port", "1002"]);
    observer
        .until("both registered", &first, |m| m.len() == 2)
        .await;

    first.signal(Signal::SIGTERM);
    let status = first.exit_status().await;
    assert!(status.success(), "{status}\n{}", first.log());
    assert_eq!(observer.members().await, at(1002));
    assert!(first.log().contains("SIGTERM"), "{}", first.log());

    second.signal(Signal::SIGINT);
    let status = second.exit_status().await;
    assert!(status.success(), "{status}\n{}", second.log());
    assert!(observer.members().await.is_empty());
    assert!(second.log().contains("SIGINT"), "{}", second.log());
}

/// A partition longer than the session timeout: the server expires the
/// session and its member node; once the network heals, kingpin's new
/// session registers the member again, as a new node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_comes_back_after_session_expiry() {
    let Some(zk) = Zk::shared("the_member_comes_back_after_session_expiry").await else {
        return;
    };
    let partition = Partition::start(zk.hosts.clone()).await.unwrap();
    let mut observer = zk.observer().await;
    let url = zk.url(Some(&partition.endpoint()), "?session_timeout=4s");
    let mut args = vec!["--port", "8080"];
    args.extend(FAST);
    let mut kingpin = Registrar::start(&url, &args);
    observer
        .until("registered", &kingpin, |m| m == at(8080))
        .await;
    let before = observer.nodes().await;

    partition.cut();
    // The server removes the node when it expires the session.
    observer
        .until("expired", &kingpin, <[String]>::is_empty)
        .await;
    partition.heal();
    observer
        .until("back after the heal", &kingpin, |m| m == at(8080))
        .await;
    let after = observer.nodes().await;
    assert_ne!(before, after, "a new node");
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(kingpin.is_running());
    kingpin.terminate().await;
    assert!(observer.members().await.is_empty());
}

/// ZooKeeper restarts under a registered member: it stays registered, and
/// the registration still follows its check afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_survives_a_zookeeper_restart() {
    let case = "registration_survives_a_zookeeper_restart";
    let Some(mut server) = private_server(ServerKind::ZooKeeper, case).await else {
        return;
    };
    let zk = Zk::on(server.endpoint());
    let mut observer = zk.observer().await;
    let (service, mut kingpin) = start_with_tcp_check(&zk).await;
    let port = service.port;
    observer
        .until("registered", &kingpin, |m| m == at(port))
        .await;

    server.stop();
    server.resume().await.unwrap();
    observer
        .until("registered after the restart", &kingpin, |m| m == at(port))
        .await;
    service.close().await;
    observer
        .until(
            "deregistered after the restart",
            &kingpin,
            <[String]>::is_empty,
        )
        .await;
    assert!(kingpin.is_running());
    kingpin.terminate().await;
}

/// Bad input is refused before the coordinator is opened: nothing is
/// registered, and the namespace is not even created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_registers_nothing() {
    let Some(zk) = Zk::shared("bad_input_registers_nothing").await else {
        return;
    };
    let cases: [(&[&str], i32, &str); 9] = [
        (&["--port", "0"], 2, "--port"),
        (
            &["--port", "80", "--check", "ftp://x"],
            2,
            "expected http://",
        ),
        (&["--port", "80", "--check", "https://h/x"], 2, "https"),
        (&["--port", "80", "--rise", "0"], 2, "--rise"),
        (
            &["--port", "80", "--check", "cmd"],
            6,
            "--check cmd needs the command",
        ),
        (
            &["--port", "80", "--", "true"],
            6,
            "only run with --check cmd",
        ),
        (
            &["--port", "80", "--interval", "1s", "--timeout", "2s"],
            6,
            "timeout",
        ),
        (&["--port", "80", "--host", "a b"], 6, "--host"),
        (&["--port", "80", "--service", "a.b"], 6, "\"a.b\""),
    ];
    let url = zk.url(None, "");
    for (args, code, message) in cases {
        let home = tempfile::tempdir().unwrap();
        let mut all: Vec<&str> = [
            ("--service", SERVICE),
            ("--env", ENV),
            ("--host", "127.0.0.1"),
        ]
        .into_iter()
        .filter(|(flag, _)| !args.contains(flag))
        .flat_map(|(flag, value)| [flag, value])
        .collect();
        all.extend_from_slice(args);
        let output = command(&url, &all, home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!zk.namespace_exists().await, "nothing was opened");
}

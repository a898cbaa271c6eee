//! Interop with Apache Thrift's own Python library (Debian's
//! `python3-thrift`, or `thrift` from PyPI), in both directions and with
//! both transports: kingpin-thrift's client calls a plain Python
//! `TThreadedServer`, and a plain Python client calls our volo server.
//!
//! The Python code for `idl/ping.thrift` is generated for each test by
//! Apache Thrift's compiler (Debian's `thrift-compiler`); the scripts are in
//! `tests/python/`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kingpin_api::discovery::ServerSet;
use kingpin_api::MemoryCoordinator;
use kingpin_client::Endpoint;
use kingpin_conformance_tests::endpoints::{skip_external, SKIP_EXTERNAL_ENV};
use kingpin_conformance_tests::harness::skip;
use kingpin_example_ping::gen::ping::{
    PingClientBuilder, PingPingException, PingRequest, PingResponse, PingServer,
};
use kingpin_example_ping::{PingHandler, FAILING_MESSAGE};
use kingpin_thrift::{default_hosts, ClientBuilder, ServerBuilder, ServersetDiscover, Transport};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use volo_thrift::{ClientError, MaybeException};

/// Where Thrift's Python library may be: `python3` on `PATH` first; then
/// Debian's own interpreter, which is where `apt-get install python3-thrift`
/// puts it even when a pyenv or venv `python3` comes first on `PATH`.
const PYTHONS: [&str; 2] = ["python3", "/usr/bin/python3"];

/// Apache Thrift's compiler, which generates the Python code.
const THRIFT_COMPILER: &str = "thrift";

/// How long a Python process may take to start listening or to finish.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What `slow_ping` is asked to wait, in milliseconds.
const SLOW_MILLIS: i32 = 50;

/// Sent and echoed unchanged: Thrift strings are UTF-8 on the wire.
const UNICODE_MESSAGE: &str = "héllo ☃";

/// The name the Python server answers with.
const PYTHON_NAME: &str = "python";

/// The name our server answers with.
const RUST_NAME: &str = "rust";

/// A Python that imports `thrift`, and the Python code for the IDL.
struct PythonThrift {
    python: &'static str,
    generated: TempDir,
}

impl PythonThrift {
    /// `None` when the run opted out of external tools; otherwise a missing
    /// Python library or compiler fails the test.
    async fn find(case: &str) -> Option<Self> {
        let python = match find_python().await {
            Ok(python) => python,
            Err(why) => return missing(case, &why),
        };
        let generated = tempfile::tempdir().expect("a temporary directory");
        let idl = Path::new(env!("CARGO_MANIFEST_DIR")).join("idl/ping.thrift");
        let compiled = Command::new(THRIFT_COMPILER)
            .args(["--gen", "py", "-out"])
            .arg(generated.path())
            .arg(&idl)
            .output()
            .await;
        match compiled {
            Ok(output) if output.status.success() => Some(PythonThrift { python, generated }),
            Ok(output) => panic!(
                "{THRIFT_COMPILER} --gen py {} failed with {}:\n{}",
                idl.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => missing(
                case,
                &format!("Apache Thrift's compiler `{THRIFT_COMPILER}` cannot run ({e})"),
            ),
        }
    }

    /// Runs one of `tests/python/`'s scripts with the generated code's
    /// directory and `args` as its arguments; killed when dropped.
    fn script(&self, name: &str, args: &[&str]) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/python")
            .join(name);
        let mut command = Command::new(self.python);
        command
            .arg(script)
            .arg(self.generated.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Starts `ping_server.py` on a free port of 127.0.0.1 and waits until
    /// it listens.
    async fn start_server(&self, transport: Transport) -> PythonServer {
        let mut command = self.script("ping_server.py", &[transport_name(transport), "127.0.0.1"]);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{} cannot run: {e}", self.python));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        let mut server = PythonServer {
            child,
            stderr: Some(stderr),
            port: 0,
        };
        let mut lines = BufReader::new(stdout).lines();
        let listening = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix("listening on ") {
                    return Ok(port.trim().parse::<u16>().ok());
                }
            }
            Ok::<_, std::io::Error>(None)
        };
        match tokio::time::timeout(SCRIPT_TIMEOUT, listening).await {
            Ok(Ok(Some(port))) => server.port = port,
            Ok(Ok(None)) => {
                server
                    .fail("ended without printing `listening on PORT`")
                    .await
            }
            Ok(Err(e)) => server.fail(&format!("cannot be read: {e}")).await,
            Err(_) => {
                let why = format!("did not listen within {SCRIPT_TIMEOUT:?}");
                server.fail(&why).await
            }
        }
        // Drain stdout so the server never blocks printing.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        server
    }

    /// Runs `ping_client.py` against our server on `port` and returns what it
    /// printed.
    async fn run_client(&self, transport: Transport, port: u16) -> Value {
        let port = port.to_string();
        let mut command = self.script(
            "ping_client.py",
            &[transport_name(transport), "127.0.0.1", &port],
        );
        let output = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("ping_client.py did not finish within {SCRIPT_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{} cannot run: {e}", self.python));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "ping_client.py exited with {}; stdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("ping_client.py printed {stdout:?}, not JSON ({e})"))
    }
}

/// The first of [`PYTHONS`] that imports `thrift`, or why none does.
async fn find_python() -> Result<&'static str, String> {
    let mut tried = Vec::new();
    for python in PYTHONS {
        match Command::new(python)
            .args(["-c", "import thrift"])
            .output()
            .await
        {
            Ok(output) if output.status.success() => return Ok(python),
            Ok(output) => {
                // The traceback's last line says what is wrong.
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.trim().lines().last().unwrap_or_default();
                tried.push(format!("{python}: {last}"));
            }
            Err(e) => tried.push(format!("{python}: {e}")),
        }
    }
    Err(format!("no Python imports thrift ({})", tried.join("; ")))
}

/// Skips the case if the run opted out of external tools; fails it
/// otherwise.
fn missing<T>(case: &str, why: &str) -> Option<T> {
    if skip_external() {
        skip(
            "python-thrift",
            case,
            &format!("{why}; {SKIP_EXTERNAL_ENV}=1"),
        );
        return None;
    }
    panic!(
        "{case} checks against Apache Thrift's Python library, but {why}. ./scripts/test \
         installs it (Debian: apt-get install python3-thrift thrift-compiler), or set \
         {SKIP_EXTERNAL_ENV}=1 to opt out"
    );
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Framed => "framed",
        Transport::Buffered => "buffered",
    }
}

/// A running `ping_server.py`, killed when dropped.
struct PythonServer {
    child: Child,
    stderr: Option<JoinHandle<String>>,
    port: u16,
}

impl PythonServer {
    /// Kills the server and panics with `why` and what it wrote to stderr.
    async fn fail(&mut self, why: &str) -> ! {
        let stderr = self.stop().await;
        panic!("the Python server {why}; its stderr:\n{stderr}");
    }

    /// Kills the server; returns what it wrote to stderr.
    async fn stop(&mut self) -> String {
        let _ = self.child.kill().await;
        match self.stderr.take() {
            Some(stderr) => stderr.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

fn request(message: &str) -> PingRequest {
    PingRequest {
        message: message.to_owned().into(),
    }
}

/// What a `ping` came back with, for failure messages (`MaybeException` is
/// not `Debug`).
fn describe(
    result: &Result<MaybeException<PingResponse, PingPingException>, ClientError>,
) -> String {
    match result {
        Ok(MaybeException::Ok(pong)) => format!("{pong:?}"),
        Ok(MaybeException::Exception(e)) => format!("the exception {e:?}"),
        Err(e) => format!("the error {e}"),
    }
}

fn assert_answer(response: &PingResponse, message: &str, server: &str) {
    assert_eq!(response.message.as_str(), message);
    assert_eq!(response.server.as_str(), server);
}

/// Our client, with `transport`, calls every method of a Python server
/// speaking the same.
async fn rust_client_calls_python_server(case: &str, transport: Transport) {
    let Some(python) = PythonThrift::find(case).await else {
        return;
    };
    let mut server = python.start_server(transport).await;
    let hosts = default_hosts().static_hosts([Endpoint::new("127.0.0.1", server.port)]);
    let client = ClientBuilder::new(
        PingClientBuilder::new("ping"),
        ServersetDiscover::new(hosts),
    )
    .transport(transport)
    .timeout(Duration::from_secs(5))
    .build();

    // Several calls, so that pooled connections are used again.
    for _ in 0..3 {
        match client.ping(request("hello")).await {
            Ok(MaybeException::Ok(pong)) => assert_answer(&pong, "hello", PYTHON_NAME),
            other => {
                server
                    .fail(&format!("answered ping with {}", describe(&other)))
                    .await
            }
        }
    }

    match client.ping(request(FAILING_MESSAGE)).await {
        Ok(MaybeException::Exception(PingPingException::Error(e))) => {
            assert_eq!(e.message.as_str(), "python was asked to fail");
        }
        other => {
            let why = format!("answered a failing ping with {}", describe(&other));
            server.fail(&why).await
        }
    }

    let started = Instant::now();
    match client.slow_ping(request("slow"), SLOW_MILLIS).await {
        Ok(pong) => assert_answer(&pong, "slow", PYTHON_NAME),
        Err(e) => server.fail(&format!("answered slow_ping with {e}")).await,
    }
    let slow = Duration::from_millis(u64::try_from(SLOW_MILLIS).expect("positive"));
    assert!(started.elapsed() >= slow, "{:?}", started.elapsed());

    match client.ping(request(UNICODE_MESSAGE)).await {
        Ok(MaybeException::Ok(pong)) => assert_answer(&pong, UNICODE_MESSAGE, PYTHON_NAME),
        other => {
            let why = format!("answered a non-ASCII ping with {}", describe(&other));
            server.fail(&why).await
        }
    }
    server.stop().await;
}

/// A Python client, with `transport`, calls every method of our server.
async fn python_client_calls_rust_server(case: &str, transport: Transport) {
    let Some(python) = PythonThrift::find(case).await else {
        return;
    };
    let coordinator = Arc::new(MemoryCoordinator::new());
    let serverset = ServerSet::new(coordinator, "ping", "interop").expect("a serverset");
    let address = "127.0.0.1:0".parse().expect("an address");
    let running = ServerBuilder::new(serverset)
        .drain(Duration::ZERO)
        .serve(PingServer::new(PingHandler::new(RUST_NAME)), address)
        .await
        .expect("the server starts");

    let results = python
        .run_client(transport, running.local_addr().port())
        .await;
    running.stop().await.expect("the server stops");

    let answer = |message: &str| json!({"message": message, "server": RUST_NAME});
    assert_eq!(results["ping"], answer("hello"), "{results}");
    assert_eq!(
        results["fail"],
        json!({"error": format!("{RUST_NAME} was asked to fail")}),
        "{results}"
    );
    let slow = &results["slow_ping"];
    assert_eq!(slow["message"], "slow", "{results}");
    assert_eq!(slow["server"], RUST_NAME, "{results}");
    let elapsed_ms = slow["elapsed_ms"].as_f64().expect("elapsed_ms");
    assert!(elapsed_ms >= f64::from(SLOW_MILLIS), "{results}");
    assert_eq!(results["unicode"], answer(UNICODE_MESSAGE), "{results}");
}

#[tokio::test]
async fn rust_client_calls_python_server_framed() {
    rust_client_calls_python_server("rust_client_calls_python_server_framed", Transport::Framed)
        .await;
}

#[tokio::test]
async fn rust_client_calls_python_server_buffered() {
    rust_client_calls_python_server(
        "rust_client_calls_python_server_buffered",
        Transport::Buffered,
    )
    .await;
}

#[tokio::test]
async fn python_client_calls_rust_server_framed() {
    python_client_calls_rust_server("python_client_calls_rust_server_framed", Transport::Framed)
        .await;
}

#[tokio::test]
async fn python_client_calls_rust_server_buffered() {
    python_client_calls_rust_server(
        "python_client_calls_rust_server_buffered",
        Transport::Buffered,
    )
    .await;
}

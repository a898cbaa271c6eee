//! Where the real servers are: named by the environment, started by
//! testcontainers when Docker is there, or, for cases that restart their
//! server, started here as local processes.

use std::path::PathBuf;

use testcontainers::core::wait::LogWaitStrategy;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::OnceCell;

use crate::certificates::TestCertificates;
use crate::harness::skip;
use crate::servers::{LocalServer, S3Credentials, ServerKind};

/// Set to `1` to let tests that need an external server pass without one
/// (each says it skipped). Without it, a missing server fails the test.
pub const SKIP_EXTERNAL_ENV: &str = "KINGPIN_TEST_SKIP_EXTERNAL";

pub use crate::harness::ServerNeeds;

fn env_var(kind: ServerKind) -> &'static str {
    match kind {
        ServerKind::ZooKeeper => "KINGPIN_TEST_ZK",
        ServerKind::Etcd => "KINGPIN_TEST_ETCD",
        ServerKind::S3 => "KINGPIN_TEST_S3",
        ServerKind::Postgres => "KINGPIN_TEST_POSTGRES",
    }
}

/// Whether the run opted out of external servers and tools
/// (`KINGPIN_TEST_SKIP_EXTERNAL=1`).
pub fn skip_external() -> bool {
    std::env::var(SKIP_EXTERNAL_ENV).is_ok_and(|v| v == "1" || v == "true")
}

fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists()
}

/// A shared server's `host:port` for `kind`: from `KINGPIN_TEST_ZK` /
/// `KINGPIN_TEST_ETCD`, else a testcontainers container when Docker is
/// available. `None` only when the run opted out; otherwise a missing server
/// fails the test with instructions.
pub async fn shared_endpoint(kind: ServerKind, test: &str) -> Option<String> {
    if let Ok(endpoint) = std::env::var(env_var(kind)) {
        if !endpoint.is_empty() {
            return Some(endpoint);
        }
    }
    if docker_available() {
        return Some(container_endpoint(kind).await);
    }
    missing(kind, test, "no server is named and Docker is not available")
}

/// A server of the test's own, as a local process, for cases that restart it.
pub async fn private_server(kind: ServerKind, test: &str) -> Option<LocalServer> {
    if !LocalServer::available(kind) {
        return missing(
            kind,
            test,
            "a restartable server needs the local binaries (see scripts/test)",
        );
    }
    let dir = scratch_dir(kind);
    match LocalServer::start(kind, &dir).await {
        Ok(server) => Some(server.remove_dir_on_drop()),
        Err(e) => panic!("cannot start a private {kind:?} for {test}: {e}"),
    }
}

/// An etcd of the test's own that serves clients over TLS and requires
/// client certificates, with certificates made for `clients` (common
/// names) and `root`.
pub async fn private_tls_etcd(
    test: &str,
    clients: &[&str],
) -> Option<(LocalServer, TestCertificates)> {
    if !LocalServer::available(ServerKind::Etcd) || !TestCertificates::available() {
        return missing(
            ServerKind::Etcd,
            test,
            "a TLS etcd needs the etcd binary and the openssl command (see scripts/test)",
        );
    }
    let dir = scratch_dir(ServerKind::Etcd);
    let mut names = vec!["root"];
    names.extend_from_slice(clients);
    let certificates = TestCertificates::create(&dir.join("certificates"), &names)
        .unwrap_or_else(|e| panic!("cannot make certificates for {test}: {e}"));
    match LocalServer::start_etcd_with_tls(&dir, certificates.clone()).await {
        Ok(server) => Some((server.remove_dir_on_drop(), certificates)),
        Err(e) => panic!("cannot start a private TLS etcd for {test}: {e}"),
    }
}

/// A ZooKeeper of the test's own that also serves clients over TLS
/// (`LocalServer::tls_endpoint`), knowing them by their certificates'
/// subjects, with certificates made for `clients` (common names).
pub async fn private_tls_zookeeper(
    test: &str,
    clients: &[&str],
) -> Option<(LocalServer, TestCertificates)> {
    if !LocalServer::available(ServerKind::ZooKeeper) || !TestCertificates::available() {
        return missing(
            ServerKind::ZooKeeper,
            test,
            "a TLS ZooKeeper needs Java, the zookeeper package and the openssl command \
             (see scripts/test)",
        );
    }
    let dir = scratch_dir(ServerKind::ZooKeeper);
    let certificates = TestCertificates::create(&dir.join("certificates"), clients)
        .unwrap_or_else(|e| panic!("cannot make certificates for {test}: {e}"));
    match LocalServer::start_zookeeper_with_tls(&dir, certificates.clone()).await {
        Ok(server) => Some((server.remove_dir_on_drop(), certificates)),
        Err(e) => panic!("cannot start a private TLS ZooKeeper for {test}: {e}"),
    }
}

fn missing<T>(kind: ServerKind, test: &str, why: &str) -> Option<T> {
    if skip_external() {
        skip(
            &format!("{kind:?}"),
            test,
            &format!("{why}; {SKIP_EXTERNAL_ENV}=1"),
        );
        return None;
    }
    panic!(
        "{test} needs a real {kind:?} server, but {why}. Run the README's test command \
         (./scripts/test), set {}=host:port, or opt out explicitly with {SKIP_EXTERNAL_ENV}=1",
        env_var(kind)
    );
}

fn scratch_dir(kind: ServerKind) -> PathBuf {
    let base = std::env::var_os("KINGPIN_TEST_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join(format!("kingpin-private-{kind:?}-{}", crate::unique_suffix()).to_lowercase())
}

/// For benchmarks: the server the environment names (`KINGPIN_TEST_ZK`,
/// `KINGPIN_TEST_ETCD`, `KINGPIN_TEST_S3`), else a local one started now and
/// kept in `keep` (stopped and removed when dropped). Returns `host:port`.
pub async fn bench_endpoint(kind: ServerKind, keep: &mut Vec<LocalServer>) -> String {
    if let Ok(endpoint) = std::env::var(env_var(kind)) {
        if !endpoint.is_empty() {
            return endpoint;
        }
    }
    let dir = scratch_dir(kind);
    let server = LocalServer::start(kind, &dir)
        .await
        .unwrap_or_else(|e| panic!("set {} or install the server: {e}", env_var(kind)))
        .remove_dir_on_drop();
    let endpoint = server.endpoint();
    keep.push(server);
    endpoint
}

/// For benchmarks: the S3 server's `http://` endpoint and keys, as
/// [`bench_endpoint`] finds or starts it.
pub async fn bench_s3(keep: &mut Vec<LocalServer>) -> (String, S3Credentials) {
    let endpoint = bench_endpoint(ServerKind::S3, keep).await;
    let credentials = match keep.last() {
        Some(server) if server.endpoint() == endpoint => server.s3_credentials(),
        _ => S3Credentials {
            access_key: std::env::var("KINGPIN_TEST_S3_ACCESS_KEY")
                .expect("KINGPIN_TEST_S3 is set but KINGPIN_TEST_S3_ACCESS_KEY is not"),
            secret_key: std::env::var("KINGPIN_TEST_S3_SECRET_KEY")
                .expect("KINGPIN_TEST_S3 is set but KINGPIN_TEST_S3_SECRET_KEY is not"),
        },
    };
    (format!("http://{endpoint}"), credentials)
}

static ZOOKEEPER_CONTAINER: OnceCell<(ContainerAsync<GenericImage>, String)> =
    OnceCell::const_new();
static ETCD_CONTAINER: OnceCell<(ContainerAsync<GenericImage>, String)> = OnceCell::const_new();
static MINIO_CONTAINER: OnceCell<(ContainerAsync<GenericImage>, String)> = OnceCell::const_new();
static POSTGRES_CONTAINER: OnceCell<(ContainerAsync<GenericImage>, String)> = OnceCell::const_new();

/// Credentials of the MinIO container testcontainers starts.
const MINIO_CREDENTIALS: (&str, &str) = ("kingpin-minio", "kingpin-minio-secret");

/// The shared S3 server's endpoint (`http://host:port`) and credentials:
/// `KINGPIN_TEST_S3` with `KINGPIN_TEST_S3_ACCESS_KEY` and
/// `KINGPIN_TEST_S3_SECRET_KEY`, else MinIO through testcontainers.
pub async fn shared_s3(test: &str) -> Option<(String, S3Credentials)> {
    if let Ok(endpoint) = std::env::var("KINGPIN_TEST_S3") {
        if !endpoint.is_empty() {
            let key = |var: &str| {
                std::env::var(var)
                    .unwrap_or_else(|_| panic!("KINGPIN_TEST_S3 is set but {var} is not"))
            };
            let credentials = S3Credentials {
                access_key: key("KINGPIN_TEST_S3_ACCESS_KEY"),
                secret_key: key("KINGPIN_TEST_S3_SECRET_KEY"),
            };
            return Some((format!("http://{endpoint}"), credentials));
        }
    }
    if docker_available() {
        let endpoint = container_endpoint(ServerKind::S3).await;
        let credentials = S3Credentials {
            access_key: MINIO_CREDENTIALS.0.to_owned(),
            secret_key: MINIO_CREDENTIALS.1.to_owned(),
        };
        return Some((format!("http://{endpoint}"), credentials));
    }
    missing(
        ServerKind::S3,
        test,
        "no server is named and Docker is not available",
    )
}

async fn container_endpoint(kind: ServerKind) -> String {
    let cell = match kind {
        ServerKind::ZooKeeper => &ZOOKEEPER_CONTAINER,
        ServerKind::Etcd => &ETCD_CONTAINER,
        ServerKind::S3 => &MINIO_CONTAINER,
        ServerKind::Postgres => &POSTGRES_CONTAINER,
    };
    let (_, endpoint) = cell
        .get_or_init(|| async move {
            let (image, port) = match kind {
                ServerKind::ZooKeeper => (
                    GenericImage::new("zookeeper", "3.8")
                        .with_wait_for(WaitFor::message_on_stdout("binding to port")),
                    2181,
                ),
                ServerKind::S3 => (
                    GenericImage::new("minio/minio", "latest")
                        .with_wait_for(WaitFor::message_on_stdout("API:")),
                    9000,
                ),
                ServerKind::Etcd => (
                    GenericImage::new("quay.io/coreos/etcd", "v3.4.34").with_wait_for(
                        WaitFor::message_on_stderr("ready to serve client requests"),
                    ),
                    2379,
                ),
                // The image's first server only initializes the database:
                // the second "ready" is the one that listens.
                ServerKind::Postgres => (
                    GenericImage::new("postgres", "15").with_wait_for(WaitFor::log(
                        LogWaitStrategy::stderr("database system is ready to accept connections")
                            .with_times(2),
                    )),
                    5432,
                ),
            };
            let request = image.with_exposed_port(port.tcp());
            let request = match kind {
                ServerKind::Etcd => request.with_cmd([
                    "etcd",
                    "--listen-client-urls=http://0.0.0.0:2379",
                    "--advertise-client-urls=http://127.0.0.1:2379",
                ]),
                ServerKind::ZooKeeper => testcontainers::ContainerRequest::from(request),
                ServerKind::S3 => request
                    .with_env_var("MINIO_ROOT_USER", MINIO_CREDENTIALS.0)
                    .with_env_var("MINIO_ROOT_PASSWORD", MINIO_CREDENTIALS.1)
                    .with_cmd(["server", "/data"]),
                // Trust, as the local server does: no password anywhere.
                ServerKind::Postgres => request.with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust"),
            };
            let container = request
                .start()
                .await
                .unwrap_or_else(|e| panic!("testcontainers could not start {kind:?}: {e}"));
            let host_port = container
                .get_host_port_ipv4(port)
                .await
                .unwrap_or_else(|e| panic!("no mapped port for {kind:?}: {e}"));
            (container, format!("127.0.0.1:{host_port}"))
        })
        .await;
    endpoint.clone()
}

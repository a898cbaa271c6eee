//! Real servers as local processes on loopback: ZooKeeper (Debian's
//! `zookeeper` package), etcd (`etcd-server`), the test S3 server, and
//! PostgreSQL (`postgresql`, for the PostgreSQL coordinator example). Used
//! by the test command for the shared servers and by cases that must
//! restart a server of their own.

mod postgres;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::certificates::TestCertificates;

/// Where Debian's `zookeeper` package puts the server, unless
/// `KINGPIN_ZOOKEEPER_CLASSPATH` says otherwise.
const ZOOKEEPER_CLASSPATH: &str = "/etc/zookeeper/conf_example:/usr/share/java/zookeeper.jar";
/// Appended to the class path of a ZooKeeper with a TLS port (Debian's
/// `libnetty-java`, which the `zookeeper` package depends on).
const NETTY_TLS_CLASSPATH: &str =
    ":/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Apache ZooKeeper, standalone.
    ZooKeeper,
    /// etcd, single member.
    Etcd,
    /// An S3-compatible server (`kingpin-test-s3`, on `s3s-fs`) with SigV4
    /// credentials.
    S3,
    /// PostgreSQL, trusting the `postgres` user on 127.0.0.1 (no password).
    Postgres,
}

/// The access key the local S3 server accepts.
pub const S3_ACCESS_KEY: &str = "kingpin-test-access";

/// Credentials of a local S3 server: fixed id, a secret fresh per server.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// A server process with its own data directory and ports, which can be
/// stopped and started again on the same ports and data.
#[derive(Debug)]
pub struct LocalServer {
    kind: ServerKind,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    remove_dir_on_drop: bool,
    s3_secret: String,
    s3_region: Option<String>,
    /// TLS with client certificates, and the one port besides the client
    /// port it needs: etcd's plain health port, ZooKeeper's TLS client port
    /// (its plain client port stays, for the health probe).
    tls: Option<(TestCertificates, u16)>,
}

/// Why a server could not be started.
pub type StartError = String;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl LocalServer {
    /// Whether this machine has what it takes to run `kind` locally.
    pub fn available(kind: ServerKind) -> bool {
        match kind {
            ServerKind::ZooKeeper => {
                which("java").is_some()
                    && zookeeper_classpath()
                        .split(':')
                        .any(|p| p.ends_with(".jar") && Path::new(p).exists())
            }
            ServerKind::Etcd => which("etcd").is_some(),
            ServerKind::S3 => s3_server_binary().is_some(),
            ServerKind::Postgres => postgres::binaries().is_some(),
        }
    }

    /// Starts a server with data under `dir` on fresh loopback ports, and
    /// waits until it serves.
    pub async fn start(kind: ServerKind, dir: &Path) -> Result<Self, StartError> {
        Self::start_with_region(kind, dir, None).await
    }

    /// Starts an S3 server that, like AWS, refuses requests signed for any
    /// region but `region`.
    pub async fn start_s3_in_region(dir: &Path, region: &str) -> Result<Self, StartError> {
        Self::start_with_region(ServerKind::S3, dir, Some(region.to_owned())).await
    }

    async fn start_with_region(
        kind: ServerKind,
        dir: &Path,
        s3_region: Option<String>,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let client_port = free_port().map_err(|e| e.to_string())?;
        let peer_port = free_port().map_err(|e| e.to_string())?;
        let mut server = LocalServer {
            kind,
            dir: dir.to_owned(),
            client_port,
            peer_port,
            child: None,
            remove_dir_on_drop: false,
            s3_secret: format!("secret-{:016x}", rand::random::<u64>()),
            s3_region,
            tls: None,
        };
        server.resume().await?;
        Ok(server)
    }

    /// Starts a ZooKeeper that also serves clients over TLS
    /// ([`tls_endpoint`](Self::tls_endpoint)), requires a client certificate
    /// signed by `certificates`' CA there, and knows such clients by their
    /// certificate's subject (`x509:CN=…`, ZooKeeper's x509 auth provider).
    pub async fn start_zookeeper_with_tls(
        dir: &Path,
        certificates: TestCertificates,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = LocalServer {
            kind: ServerKind::ZooKeeper,
            dir: dir.to_owned(),
            client_port: free_port().map_err(|e| e.to_string())?,
            peer_port: free_port().map_err(|e| e.to_string())?,
            child: None,
            remove_dir_on_drop: false,
            s3_secret: String::new(),
            s3_region: None,
            tls: Some((certificates, free_port().map_err(|e| e.to_string())?)),
        };
        server.resume().await?;
        Ok(server)
    }

    /// Starts an etcd that serves clients over TLS only and requires a
    /// client certificate signed by `certificates`' CA
    /// (`--client-cert-auth`: with auth enabled, the certificate's common
    /// name is the user).
    pub async fn start_etcd_with_tls(
        dir: &Path,
        certificates: TestCertificates,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = LocalServer {
            kind: ServerKind::Etcd,
            dir: dir.to_owned(),
            client_port: free_port().map_err(|e| e.to_string())?,
            peer_port: free_port().map_err(|e| e.to_string())?,
            child: None,
            remove_dir_on_drop: false,
            s3_secret: String::new(),
            s3_region: None,
            tls: Some((certificates, free_port().map_err(|e| e.to_string())?)),
        };
        server.resume().await?;
        Ok(server)
    }

    /// The credentials an S3 server accepts.
    pub fn s3_credentials(&self) -> S3Credentials {
        S3Credentials {
            access_key: S3_ACCESS_KEY.to_owned(),
            secret_key: self.s3_secret.clone(),
        }
    }

    /// Deletes the data directory when this value is dropped.
    pub fn remove_dir_on_drop(mut self) -> Self {
        self.remove_dir_on_drop = true;
        self
    }

    /// Leaves the process running after this value is dropped (for the
    /// test command, which stops it by its pid later).
    pub fn detach(mut self) -> u32 {
        let pid = self.pid().unwrap_or(0);
        self.child = None;
        pid
    }

    /// `host:port` clients connect to.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `host:port` TLS clients connect to, for a server started with TLS.
    pub fn tls_endpoint(&self) -> Option<String> {
        match (&self.tls, self.kind) {
            (Some((_, port)), ServerKind::ZooKeeper) => Some(format!("127.0.0.1:{port}")),
            (Some(_), _) => Some(self.endpoint()),
            (None, _) => None,
        }
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the process (SIGKILL: the harshest case for clients) and waits
    /// for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.kind == ServerKind::Postgres {
                return postgres::stop(&mut child);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// etcd only: adds `root` (with the root role) and `users`, each
    /// `(name, password)`, then enables auth, as an operator would before
    /// `kingpin acl setup`. From then on every client needs credentials.
    pub async fn enable_etcd_auth(
        &self,
        root_password: &str,
        users: &[(String, String)],
    ) -> Result<(), StartError> {
        if self.kind != ServerKind::Etcd {
            return Err(format!("{:?} has no etcd auth to enable", self.kind));
        }
        let fail = |what: &str, e: etcd_client::Error| format!("etcd auth setup: {what}: {e}");
        let mut client = etcd_client::Client::connect([self.endpoint()], self.root_options()?)
            .await
            .map_err(|e| fail("connect", e))?;
        client
            .user_add("root", root_password, None)
            .await
            .map_err(|e| fail("user add root", e))?;
        // The root role may already exist (it is built in on some versions).
        let _ = client.role_add("root").await;
        client
            .user_grant_role("root", "root")
            .await
            .map_err(|e| fail("grant root", e))?;
        for (name, password) in users {
            client
                .user_add(name.as_str(), password.as_str(), None)
                .await
                .map_err(|e| fail("user add", e))?;
        }
        client
            .auth_enable()
            .await
            .map_err(|e| fail("auth enable", e))?;
        Ok(())
    }

    /// How root connects: over TLS with the `root` client certificate when
    /// the server wants one.
    fn root_options(&self) -> Result<Option<etcd_client::ConnectOptions>, StartError> {
        let Some((certificates, _)) = &self.tls else {
            return Ok(None);
        };
        let read = |path: PathBuf| std::fs::read_to_string(&path).map_err(|e| e.to_string());
        let (cert, key) = certificates.client("root");
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(certificates.ca())?))
            .identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        Ok(Some(etcd_client::ConnectOptions::new().with_tls(tls)))
    }

    /// Starts the process again on the same ports and data.
    pub async fn resume(&mut self) -> Result<(), StartError> {
        let log = std::fs::File::create(self.dir.join("server.log")).map_err(|e| e.to_string())?;
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = match self.kind {
            ServerKind::ZooKeeper => self.zookeeper_command()?,
            ServerKind::Etcd => self.etcd_command(),
            ServerKind::S3 => self.s3_command()?,
            ServerKind::Postgres => postgres::command(&self.dir, self.client_port)?,
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", self.kind))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    fn zookeeper_command(&self) -> Result<Command, StartError> {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let config = self.dir.join("zoo.cfg");
        let mut text = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n\
             maxClientCnxns=0\n4lw.commands.whitelist=ruok,srvr,mntr\n",
            data.display(),
            self.client_port
        );
        let mut command = Command::new("java");
        if let Some((certificates, secure_port)) = &self.tls {
            text.push_str(&format!(
                "secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\n"
            ));
            // ZooKeeper's PEM key store holds the key and the certificate.
            let (cert, key) = certificates.server();
            let key_store = self.dir.join("server.pem");
            let pem = [key, cert]
                .iter()
                .map(std::fs::read_to_string)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?
                .concat();
            std::fs::write(&key_store, pem).map_err(|e| e.to_string())?;
            for (property, value) in [
                (
                    "serverCnxnFactory",
                    "org.apache.zookeeper.server.NettyServerCnxnFactory".to_owned(),
                ),
                (
                    "authProvider.x509",
                    "org.apache.zookeeper.server.auth.X509AuthenticationProvider".to_owned(),
                ),
                ("ssl.keyStore.location", key_store.display().to_string()),
                ("ssl.keyStore.type", "PEM".to_owned()),
                (
                    "ssl.trustStore.location",
                    certificates.ca().display().to_string(),
                ),
                ("ssl.trustStore.type", "PEM".to_owned()),
                ("ssl.clientAuth", "need".to_owned()),
            ] {
                command.arg(format!("-Dzookeeper.{property}={value}"));
            }
        }
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let mut classpath = zookeeper_classpath();
        if self.tls.is_some() {
            // Netty's codec and resolver, which the TLS port needs and the
            // zookeeper.jar manifest's class path leaves out (Debian).
            classpath.push_str(NETTY_TLS_CLASSPATH);
        }
        command
            .arg("-Xmx256m")
            .arg("-cp")
            .arg(classpath)
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(config);
        Ok(command)
    }

    fn etcd_command(&self) -> Command {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        if let Some((certificates, health_port)) = &self.tls {
            let (cert, key) = certificates.server();
            command
                .arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--trusted-ca-file={}", certificates.ca().display()))
                .arg("--client-cert-auth")
                .arg(format!(
                    "--listen-metrics-urls=http://127.0.0.1:{health_port}"
                ));
        }
        command
            .arg("--name=kingpin-test")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=kingpin-test={peer}"))
            .arg("--log-level=warn");
        command
    }

    fn s3_command(&self) -> Result<Command, StartError> {
        let root = self.dir.join("data");
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let binary = s3_server_binary().ok_or_else(|| {
            format!(
                "{S3_SERVER_BINARY} is not built: run `cargo build -p kingpin-test-s3-server` \
                 or set {S3_SERVER_ENV} to its path"
            )
        })?;
        let mut command = Command::new(binary);
        command
            .arg("--host=127.0.0.1")
            .arg(format!("--port={}", self.client_port))
            .arg(root)
            // The environment, not argv: `ps` shows argv to every user.
            .env("KINGPIN_TEST_S3_ACCESS_KEY", S3_ACCESS_KEY)
            .env("KINGPIN_TEST_S3_SECRET_KEY", &self.s3_secret);
        if let Some(region) = &self.s3_region {
            command.arg(format!("--region={region}"));
        }
        Ok(command)
    }

    /// Polls until the server answers its health probe: ZooKeeper's `ruok`,
    /// etcd's `/health`. A server has no event to await.
    async fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        // A TLS etcd answers its health probe on its plain metrics port; a
        // TLS ZooKeeper keeps its plain client port for the probe.
        let probe_port = match (&self.tls, self.kind) {
            (Some((_, health_port)), ServerKind::Etcd) => *health_port,
            _ => self.client_port,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], probe_port).into();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                    let tail: String = log
                        .lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n");
                    return Err(format!(
                        "{:?} exited with {status} while starting:\n{tail}",
                        self.kind
                    ));
                }
            }
            if self.probe(addr).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{:?} on {addr} not ready within {START_TIMEOUT:?}",
                    self.kind
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn probe(&self, addr: SocketAddr) -> bool {
        if self.kind == ServerKind::Postgres {
            return postgres::probe(addr).await;
        }
        let (request, expect): (&[u8], &str) = match self.kind {
            ServerKind::ZooKeeper => (b"ruok", "imok"),
            ServerKind::Etcd => (
                b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                "\"health\":\"true\"",
            ),
            // Any HTTP answer (anonymous requests are refused) means it serves.
            ServerKind::S3 | ServerKind::Postgres => {
                (b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", "HTTP/1.")
            }
        };
        let attempt = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(request).await.ok()?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.ok()?;
            Some(reply.contains(expect))
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), attempt).await,
            Ok(Some(true))
        )
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
        if self.remove_dir_on_drop {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn zookeeper_classpath() -> String {
    std::env::var("KINGPIN_ZOOKEEPER_CLASSPATH").unwrap_or_else(|_| ZOOKEEPER_CLASSPATH.to_owned())
}

/// The test S3 server's binary name, built from `conformance-tests/s3-server`.
const S3_SERVER_BINARY: &str = "kingpin-test-s3";
/// Names the test S3 server's binary when it is not where cargo builds it.
const S3_SERVER_ENV: &str = "KINGPIN_TEST_S3_SERVER";

/// `KINGPIN_TEST_S3_SERVER`, else the binary cargo built near the running
/// test or bench (tests run from `target/<profile>/deps/`, in either
/// profile), else `PATH`.
fn s3_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(S3_SERVER_ENV) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(3)
        .flat_map(|dir| [dir.to_path_buf(), dir.join("debug"), dir.join("release")])
        .map(|dir| dir.join(S3_SERVER_BINARY))
        .find(|p| p.is_file())
        .or_else(|| which(S3_SERVER_BINARY))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

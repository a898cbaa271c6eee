//! A PostgreSQL server of a test's own, which it may crash and restart:
//! Debian's `postgresql` binaries, a scratch data directory, a free
//! loopback port, trust authentication on loopback only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

/// Where the binaries are, unless `KINGPIN_POSTGRES_BIN` says otherwise.
const DEBIAN_BIN_DIRS: &str = "/usr/lib/postgresql";

/// A running (or stopped) private server.
pub struct PrivateServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The `postgres` user's ids, when running as root (the server refuses
    /// to run as root).
    user: Option<(u32, u32)>,
    child: Option<Child>,
}

impl PrivateServer {
    /// Initializes a data directory and starts the server on it.
    pub async fn start() -> PrivateServer {
        let bin = binaries().expect(
            "PostgreSQL binaries not found: install Debian's postgresql or set KINGPIN_POSTGRES_BIN",
        );
        let dir = tempfile::Builder::new()
            .prefix("kingpin-postgres-")
            .tempdir()
            .expect("a scratch directory");
        let user = running_as_root().then(postgres_user);
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the data dir");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = PrivateServer {
            dir,
            bin,
            port,
            user,
            child: None,
        };
        let status = server
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--pgdata",
            ])
            .arg(server.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed: {status}");
        server.resume().await;
        server
    }

    /// `host:port` clients connect to.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        command.current_dir(self.dir.path());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Stops the server as a crash would: an immediate shutdown (SIGQUIT)
    /// ends every backend without a checkpoint.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data; returns once it
    /// accepts connections.
    pub async fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("a log file");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        wait_ready(&self.endpoint(), self.dir.path()).await;
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls until a client connects: a starting server has no event to await.
async fn wait_ready(endpoint: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let config = super::connection(endpoint);
    loop {
        if let Ok((client, connection)) = config.connect(tokio_postgres_no_tls()).await {
            drop(client);
            drop(connection);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL on {endpoint} not ready in 60 s; see {}/server.log",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tokio_postgres_no_tls() -> kingpin_postgres_example::tokio_postgres::NoTls {
    kingpin_postgres_example::tokio_postgres::NoTls
}

/// `KINGPIN_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/<n>/bin`.
fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KINGPIN_POSTGRES_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_BIN_DIRS)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    id(&["-u"]).is_some_and(|uid| uid == 0)
}

fn postgres_user() -> (u32, u32) {
    let uid = id(&["-u", "postgres"]).expect("a `postgres` user (Debian's postgresql makes one)");
    let gid = id(&["-g", "postgres"]).expect("the `postgres` user's group");
    (uid, gid)
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

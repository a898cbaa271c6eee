//! PostgreSQL as a local server: Debian's `postgresql` binaries, a data
//! directory initialized on first start, trust authentication for the
//! `postgres` user on 127.0.0.1 only (no password anywhere), and the
//! `postgres` OS user when started by root, which the server requires.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::StartError;

/// Where Debian installs the server, one directory per major version.
const DEBIAN_DIR: &str = "/usr/lib/postgresql";
/// Names the directory of `initdb` and `postgres` when they are elsewhere.
const BIN_ENV: &str = "KINGPIN_POSTGRES_BIN";

/// `KINGPIN_POSTGRES_BIN`, else the newest `/usr/lib/postgresql/<n>/bin`.
pub(super) fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_DIR)
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

/// The server's command on `dir` (data in `dir/data`, its socket in
/// `dir`), after initializing the data directory if it is new.
pub(super) fn command(dir: &Path, port: u16) -> Result<Command, StartError> {
    let bin = binaries().ok_or_else(|| {
        format!("PostgreSQL is not installed: install Debian's postgresql or set {BIN_ENV}")
    })?;
    let user = if running_as_root() {
        let user = postgres_user()?;
        std::os::unix::fs::chown(dir, Some(user.0), Some(user.1))
            .map_err(|e| format!("cannot hand {} to the postgres user: {e}", dir.display()))?;
        Some(user)
    } else {
        None
    };
    let as_server_user = |program: &str| {
        let mut command = Command::new(bin.join(program));
        command.current_dir(dir);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        command
    };
    let data = dir.join("data");
    if !data.join("PG_VERSION").exists() {
        let out = as_server_user("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--pgdata",
            ])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}): {} (the postgres user must be able to reach {})",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                dir.display()
            ));
        }
    }
    let mut command = as_server_user("postgres");
    command
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(dir)
        // Scratch data: durability buys nothing in tests.
        .args(["-c", "fsync=off", "-c", "max_connections=500"]);
    Ok(command)
}

/// Stops the server as a crash would: an immediate shutdown (SIGQUIT)
/// ends every backend without a checkpoint. SIGKILL would leave the
/// backends running, holding the port and shared memory.
pub(super) fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
    }
    let _ = child.wait();
}

/// Whether the server accepts a session: a startup message for the
/// `postgres` user gets `AuthenticationOk` (trust), not an error such as
/// "the database system is starting up".
pub(super) async fn probe(addr: SocketAddr) -> bool {
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608_i32.to_be_bytes()); // protocol 3.0
    for part in ["user", "postgres", "database", "postgres"] {
        startup.extend_from_slice(part.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let length = i32::try_from(startup.len() + 4).unwrap_or(i32::MAX);
    let mut message = length.to_be_bytes().to_vec();
    message.extend_from_slice(&startup);
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(&message).await.ok()?;
        let mut reply = [0u8; 9];
        stream.read_exact(&mut reply).await.ok()?;
        // 'R', length 8, code 0: AuthenticationOk.
        Some(reply == [b'R', 0, 0, 0, 8, 0, 0, 0, 0])
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

fn running_as_root() -> bool {
    id(&["-u"]) == Some(0)
}

fn postgres_user() -> Result<(u32, u32), StartError> {
    match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(
            "PostgreSQL refuses to run as root and there is no `postgres` user \
                  (Debian's postgresql package creates it)"
                .to_owned(),
        ),
    }
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

//! Starts the test command's shared servers on loopback and leaves them
//! running: `kingpin-test-servers DIR zookeeper etcd s3 postgres`.
//!
//! Writes `DIR/env` (`KINGPIN_TEST_ZK=…` lines for the test run) and
//! `DIR/pids` (one process id per line, for the test command to stop them).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use kingpin_conformance_tests::servers::{LocalServer, ServerKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: kingpin-test-servers DIR [zookeeper] [etcd] [s3] [postgres]");
        return ExitCode::from(2);
    };
    let mut env = String::new();
    let mut pids = String::new();
    for name in args {
        let (kind, var) = match name.as_str() {
            "zookeeper" => (ServerKind::ZooKeeper, "KINGPIN_TEST_ZK"),
            "etcd" => (ServerKind::Etcd, "KINGPIN_TEST_ETCD"),
            "s3" => (ServerKind::S3, "KINGPIN_TEST_S3"),
            "postgres" => (ServerKind::Postgres, "KINGPIN_TEST_POSTGRES"),
            other => {
                eprintln!("unknown server {other:?}; expected zookeeper, etcd, s3 or postgres");
                return ExitCode::from(2);
            }
        };
        match LocalServer::start(kind, &dir.join(&name)).await {
            Ok(server) => {
                let endpoint = server.endpoint();
                if kind == ServerKind::S3 {
                    let credentials = server.s3_credentials();
                    env.push_str(&format!(
                        "KINGPIN_TEST_S3_ACCESS_KEY={}\n",
                        credentials.access_key
                    ));
                    env.push_str(&format!(
                        "KINGPIN_TEST_S3_SECRET_KEY={}\n",
                        credentials.secret_key
                    ));
                }
                let pid = server.detach();
                println!("started {name} on {endpoint} (pid {pid})");
                env.push_str(&format!("{var}={endpoint}\n"));
                pids.push_str(&format!("{pid}\n"));
            }
            Err(e) => {
                eprintln!("cannot start {name}: {e}");
                // Leave what did start recorded, so it gets stopped.
                let _ = write_file(&dir, "pids", &pids);
                return ExitCode::FAILURE;
            }
        }
    }
    match write_file(&dir, "env", &env).and_then(|_| write_file(&dir, "pids", &pids)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn write_file(dir: &std::path::Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::File::create(dir.join(name))?.write_all(text.as_bytes())
}

//! A second OS process on a shared SQLite database, for the SQLite tests:
//!
//! - `kingpin-sqlite-peer DB write PATH N`: sets PATH to 1..=N, then exits;
//! - `kingpin-sqlite-peer DB hold-ephemeral PATH`: creates an ephemeral node
//!   with a 1 s session, prints `ready`, and waits to be killed;
//! - `kingpin-sqlite-peer DB stamp PATH N PAUSE_MS`: sets PATH N times to the
//!   wall-clock time in nanoseconds just before each write, pausing between
//!   writes (for measuring cross-process watch latency).

use std::process::ExitCode;
use std::time::Duration;

use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath};
use kingpin_sqlite::{SqliteConfig, SqliteCoordinator};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [db, "write", path, count] => write(db, path, count).await,
        [db, "hold-ephemeral", path] => hold(db, path).await,
        [db, "stamp", path, count, pause] => stamp(db, path, count, pause).await,
        _ => Err("usage: kingpin-sqlite-peer DB (write PATH N | hold-ephemeral PATH | stamp PATH N PAUSE_MS)".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kingpin-sqlite-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn write(db: &str, path: &str, count: &str) -> Result<(), String> {
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{count:?} is not a count"))?;
    let path = NodePath::parse(path).map_err(|e| e.to_string())?;
    let c = SqliteCoordinator::connect(SqliteConfig::new(db))
        .await
        .map_err(|e| e.to_string())?;
    for i in 1..=count {
        let data = i.to_string();
        match c.set(&path, data.as_bytes(), None).await {
            Err(e) if e.kind() == ErrorKind::NotFound => c
                .create(&path, data.as_bytes(), CreateMode::Persistent)
                .await
                .map(drop),
            other => other.map(drop),
        }
        .map_err(|e| e.to_string())?;
    }
    c.close().await.map_err(|e| e.to_string())
}

async fn hold(db: &str, path: &str) -> Result<(), String> {
    let path = NodePath::parse(path).map_err(|e| e.to_string())?;
    let config = SqliteConfig::new(db)
        .with_session_timeout(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    let c = SqliteCoordinator::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    c.create(&path, b"", CreateMode::Ephemeral)
        .await
        .map_err(|e| e.to_string())?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

async fn stamp(db: &str, path: &str, count: &str, pause: &str) -> Result<(), String> {
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{count:?} is not a count"))?;
    let pause = Duration::from_millis(
        pause
            .parse()
            .map_err(|_| format!("{pause:?} is not milliseconds"))?,
    );
    let path = NodePath::parse(path).map_err(|e| e.to_string())?;
    let c = SqliteCoordinator::connect(SqliteConfig::new(db))
        .await
        .map_err(|e| e.to_string())?;
    for _ in 0..count {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        c.set(&path, now.as_nanos().to_string().as_bytes(), None)
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(pause).await;
    }
    c.close().await.map_err(|e| e.to_string())
}

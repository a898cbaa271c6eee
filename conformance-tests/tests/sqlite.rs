//! The conformance suite on the embedded SQLite coordinator: every session
//! of a test opens the same database file, as separate processes would.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kingpin_conformance_tests::{
    coordinator_suite, recipes_suite, Harness, PeerSession, ServerNeeds, TestSession,
};
use kingpin_sqlite::{SqliteConfig, SqliteCoordinator};

struct SqliteHarness {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

async fn harness(_needs: ServerNeeds, _case: &'static str) -> Option<SqliteHarness> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kingpin.db");
    Some(SqliteHarness { _dir: dir, path })
}

#[async_trait]
impl Harness for SqliteHarness {
    fn name(&self) -> &str {
        "sqlite"
    }

    async fn connect(&self) -> TestSession {
        let config = SqliteConfig::new(&self.path)
            .with_session_timeout(SESSION_TIMEOUT)
            .expect("timeout");
        let coordinator = SqliteCoordinator::connect(config)
            .await
            .expect("open the database");
        TestSession::new(
            Arc::new(coordinator),
            |c| async move { c.force_expire().await },
        )
    }

    /// An embedded database has no server to stop; the cases that need one
    /// say they skipped.
    fn can_restart_server(&self) -> bool {
        false
    }

    async fn stop_server(&self) {}

    async fn start_server(&self) {}

    /// Another process on the same file, with a short session. Its death
    /// is noticed at the next heartbeat of a live session after its
    /// timeout: a third of ours.
    fn peer_session(&self) -> Option<PeerSession> {
        Some(PeerSession {
            url: format!("sqlite://{}?session_timeout=2s", self.path.display()),
            session_timeout: Duration::from_secs(2),
            reaping_delay: SESSION_TIMEOUT / 3,
        })
    }
}

const SESSION_TIMEOUT: Duration = Duration::from_secs(5);

coordinator_suite!(harness);

mod recipes {
    super::recipes_suite!(super::harness);
}

/// Behaviour particular to a database file shared by processes.
mod shared_file {
    use std::process::{Command, Stdio};

    use futures::StreamExt;
    use kingpin_api::{Coordinator, CreateMode, ErrorKind, NodePath, WatchEvent, WatchKind};
    use tokio::io::{AsyncBufReadExt, BufReader};

    use super::*;

    const PEER: &str = env!("CARGO_BIN_EXE_kingpin-sqlite-peer");
    const BOUND: Duration = Duration::from_secs(20);

    async fn open(
        path: &std::path::Path,
        configure: impl FnOnce(SqliteConfig) -> SqliteConfig,
    ) -> SqliteCoordinator {
        SqliteCoordinator::connect(configure(SqliteConfig::new(path)))
            .await
            .expect("open")
    }

    async fn next(stream: &mut kingpin_api::WatchStream) -> WatchEvent {
        tokio::time::timeout(BOUND, stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
    }

    /// One OS process watches (this one), another writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_sees_another_processes_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kingpin.db");
        let watcher = open(&db, |c| c).await;
        let path = NodePath::parse("/shared/value").unwrap();
        let mut watch = watcher.watch(&path, WatchKind::Data).await.unwrap();
        let status = tokio::process::Command::new(PEER)
            .args([db.to_str().unwrap(), "write", "/shared/value", "50"])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "the writer process failed");
        assert_eq!(
            next(&mut watch).await,
            WatchEvent::Changed,
            "creation by the other process"
        );
        loop {
            if watcher.get(&path).await.unwrap().data == b"50" {
                break;
            }
            next(&mut watch).await;
        }
        assert_eq!(watcher.get(&path).await.unwrap().stat.version, 49);
    }

    /// A process killed with SIGKILL leaves its ephemeral node behind only
    /// until its session times out; a live process reaps it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_processes_ephemeral_nodes_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kingpin.db");
        let mut peer = tokio::process::Command::new(PEER)
            .args([db.to_str().unwrap(), "hold-ephemeral", "/members/peer"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(BOUND, lines.next_line())
            .await
            .expect("peer ready in time")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"));

        let observer = open(&db, |c| {
            c.with_session_timeout(Duration::from_secs(1)).unwrap()
        })
        .await;
        let path = NodePath::parse("/members/peer").unwrap();
        assert!(observer.exists(&path).await.unwrap().is_some());
        let mut watch = observer.watch(&path, WatchKind::Data).await.unwrap();
        let killed = Command::new("kill")
            .args(["-9", &peer.id().unwrap().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        peer.wait().await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(next(&mut watch).await, WatchEvent::Deleted);
        assert!(observer.exists(&path).await.unwrap().is_none());
        // The peer's session timeout is 1 s: reaping takes about that, plus a heartbeat.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "reaped after {:?}",
            started.elapsed()
        );
    }

    /// A file that is not a database gets a clear error naming it.
    #[tokio::test]
    async fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kingpin.db");
        std::fs::write(&db, vec![b'x'; 8192]).unwrap();
        let err = SqliteCoordinator::connect(SqliteConfig::new(&db))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
        assert!(
            err.to_string().contains("corrupt or not a SQLite database"),
            "{err}"
        );
        assert!(err.to_string().contains(db.to_str().unwrap()), "{err}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            vec![b'x'; 8192],
            "the file is left as it was"
        );
    }

    /// A database held locked by another process gives `Unavailable` after
    /// the busy timeout, and works again once the lock is released.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_database_is_unavailable_not_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kingpin.db");
        let c = open(&db, |c| c.with_busy_timeout(Duration::from_millis(200))).await;
        let path = NodePath::parse("/locked").unwrap();
        c.create(&path, b"0", CreateMode::Persistent).await.unwrap();

        let holder = rusqlite::Connection::open(&db).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let err = c.set(&path, b"1", None).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains("locked"), "{err}");
        holder.execute_batch("ROLLBACK").unwrap();
        c.set(&path, b"1", None).await.unwrap();
        assert_eq!(c.get(&path).await.unwrap().data, b"1");
    }

    /// A watch that falls behind a trimmed log gets `Resync`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_behind_the_trimmed_log_resyncs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kingpin.db");
        let slow = open(&db, |c| {
            c.with_poll_interval(Duration::from_millis(500))
                .with_log_retention(1)
                .unwrap()
        })
        .await;
        let writer = open(&db, |c| c.with_log_retention(1).unwrap()).await;
        let path = NodePath::parse("/busy").unwrap();
        writer
            .create(&path, b"0", CreateMode::Persistent)
            .await
            .unwrap();
        let mut watch = slow.watch(&path, WatchKind::Data).await.unwrap();
        for i in 1..=200 {
            writer
                .set(&path, i.to_string().as_bytes(), None)
                .await
                .unwrap();
        }
        assert_eq!(next(&mut watch).await, WatchEvent::Resync);
        assert_eq!(slow.get(&path).await.unwrap().data, b"200");
    }
}

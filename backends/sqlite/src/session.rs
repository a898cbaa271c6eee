//! The session: a row in `sessions` kept alive by heartbeats, replaced by
//! a new one when it was reaped; and the reaping of other processes' dead
//! sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use kingpin_api::{Error, ErrorKind, Result, SessionEvent, SessionHub, SessionState};
use rusqlite::{Connection, FileControl, OpenFlags, MAIN_DB};
use tokio::sync::{watch, Notify};

use crate::backend::reap_sessions;
use crate::config::SqliteConfig;
use crate::error::from_sqlite;
use crate::schema;
use crate::watch::WatchRegistry;

/// State shared by the coordinator handle, the heartbeat and the poller.
pub(crate) struct Shared {
    pub(crate) config: SqliteConfig,
    /// Shared by every coordinator of this process on the same file.
    write_gate: Arc<Mutex<()>>,
    /// The file is not writable for this process: no session, no writes.
    pub(crate) read_only: bool,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// The live session id, 0 while none.
    session: AtomicI64,
    pub(crate) hub: SessionHub,
    /// Bumped on every new session; watches report `Resync` on it.
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) watches: Mutex<WatchRegistry>,
    /// Poked after our own commits, so our watches need not wait a poll.
    pub(crate) local_change: Notify,
    /// Poked to run a heartbeat now.
    pub(crate) heartbeat_now: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSession")
            .field("path", &self.config.path)
            .field("session", &self.session.load(Ordering::Relaxed))
            .finish()
    }
}

/// Milliseconds since the Unix epoch: every process on the host agrees.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn open_connection(config: &SqliteConfig, read_only: bool) -> Result<Connection> {
    let path = &config.path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot create the directory of {}", path.display()),
            )
            .with_source(e)
        })?;
    }
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| from_sqlite(e, path))?;
    conn.busy_timeout(config.busy_timeout)
        .map_err(|e| from_sqlite(e, path))?;
    Ok(conn)
}

/// One gate per database file, so that the coordinators of one process
/// take turns at writing instead of racing in SQLite's busy handler, which
/// sleeps and retries without any order and can starve a writer past its
/// busy timeout when a process holds many coordinators on one file. Other
/// processes still meet at the file lock and the busy timeout.
fn write_gate(path: &Path) -> Arc<Mutex<()>> {
    static GATES: LazyLock<Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut gates = lock(&GATES);
    gates.retain(|_, gate| gate.strong_count() > 0);
    if let Some(gate) = gates.get(&key).and_then(Weak::upgrade) {
        return gate;
    }
    let gate = Arc::new(Mutex::new(()));
    gates.insert(key, Arc::downgrade(&gate));
    gate
}

/// Keeps the `-wal` and `-shm` files when the last connection closes, so
/// that processes that may only read the database (they cannot create
/// files in its directory) can open it while no writer has it open.
fn keep_wal_files(conn: &Connection, path: &Path) -> Result<()> {
    conn.file_control(Some(MAIN_DB), FileControl::PersistWal(&mut 1))
        .map_err(|e| from_sqlite(e, path))
}

/// Checks that a database opened read-only has been set up by a writer and
/// can be read without creating anything.
fn check_read_only(conn: &Connection, path: &Path) -> Result<()> {
    let version = schema::version(conn).map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "cannot read SQLite database {} without write access: its -wal and -shm files \
                 are missing; opening it once as its owner (any kingpin command) leaves them",
                path.display()
            ),
        )
        .with_source(e)
    })?;
    if !schema::is_current(version) {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "SQLite database {} is read-only for this process and has not been set up by a \
                 writer yet",
                path.display()
            ),
        ));
    }
    Ok(())
}

impl Shared {
    /// Opens (creating if needed) the database and starts a session. Blocking.
    pub(crate) fn open(config: SqliteConfig) -> Result<Arc<Self>> {
        // A file the OS will not let us write opens read-only.
        let writer = open_connection(&config, false)?;
        let read_only = writer
            .is_readonly(MAIN_DB)
            .map_err(|e| from_sqlite(e, &config.path))?;
        let reader = if read_only {
            let reader = open_connection(&config, true)?;
            check_read_only(&reader, &config.path)?;
            reader
        } else {
            schema::prepare(&writer).map_err(|e| from_sqlite(e, &config.path))?;
            let reader = open_connection(&config, false)?;
            keep_wal_files(&writer, &config.path)?;
            keep_wal_files(&reader, &config.path)?;
            reader
        };
        let last_seen =
            schema::meta(&reader, "revision").map_err(|e| from_sqlite(e, &config.path))?;
        let session = if read_only {
            0
        } else {
            new_session(&writer, &config)?
        };
        Ok(Arc::new(Shared {
            write_gate: write_gate(&config.path),
            config,
            read_only,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            session: AtomicI64::new(session),
            hub: SessionHub::new(SessionState::Connected),
            generation: watch::Sender::new(0),
            shutdown: watch::Sender::new(false),
            watches: Mutex::new(WatchRegistry::new(last_seen)),
            local_change: Notify::new(),
            heartbeat_now: Notify::new(),
        }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.config.path
    }

    /// Stops the background tasks and marks the session closed for good.
    pub(crate) fn shut_down(&self) {
        self.hub.close();
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Whether reads may go ahead: open, and with a live session unless
    /// the database is read-only for this process (which has none).
    pub(crate) fn check_readable(&self) -> Result<()> {
        if self.read_only && !self.is_shut_down() {
            return Ok(());
        }
        self.session().map(drop)
    }

    /// The live session, or why there is none.
    pub(crate) fn session(&self) -> Result<i64> {
        if self.is_shut_down() {
            return Err(Error::unavailable("the SQLite coordinator is closed"));
        }
        if self.read_only {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "this process may only read SQLite database {}: the file is not writable \
                     for its user",
                    self.config.path.display()
                ),
            ));
        }
        match self.session.load(Ordering::Acquire) {
            0 => Err(Error::new(
                ErrorKind::SessionExpired,
                "the SQLite session expired; a new one is being started",
            )),
            id => Ok(id),
        }
    }

    pub(crate) fn current_session(&self) -> Option<i64> {
        Some(self.session.load(Ordering::Acquire)).filter(|s| *s != 0)
    }

    pub(crate) fn take_session(&self) -> Option<i64> {
        Some(self.session.swap(0, Ordering::AcqRel)).filter(|s| *s != 0)
    }

    /// Runs `f` on the write connection, off the async runtime.
    pub(crate) async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = lock(&shared.write_gate);
            let mut conn = lock(&shared.writer);
            f(&mut conn, &shared)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Backend, "a SQLite task failed").with_source(e))?
    }

    /// Runs `f` on the read connection, off the async runtime.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection, &Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&shared.reader);
            f(&mut conn, &shared)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Backend, "a SQLite task failed").with_source(e))?
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_session(conn: &Connection, config: &SqliteConfig) -> Result<i64> {
    let expires = now_ms() + config.session_timeout.as_millis() as i64;
    conn.execute(
        "INSERT INTO sessions (expires_at_ms) VALUES (?1)",
        [expires],
    )
    .map_err(|e| from_sqlite(e, &config.path))?;
    Ok(conn.last_insert_rowid())
}

enum Beat {
    Alive,
    /// Our row is gone: reaped by someone who saw it expire.
    Lost,
}

/// Extends our session and reaps dead ones, in one transaction.
fn beat(conn: &mut Connection, shared: &Shared, session: i64) -> Result<Beat> {
    let path = shared.path();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| from_sqlite(e, path))?;
    let now = now_ms();
    let expires = now + shared.config.session_timeout.as_millis() as i64;
    let updated = tx
        .execute(
            "UPDATE sessions SET expires_at_ms = ?1 WHERE id = ?2 AND expires_at_ms >= ?3",
            [expires, session, now],
        )
        .map_err(|e| from_sqlite(e, path))?;
    let changed = reap_sessions(&tx, shared, |id_expires| id_expires < now)?;
    tx.commit().map_err(|e| from_sqlite(e, path))?;
    if changed {
        shared.local_change.notify_one();
    }
    Ok(if updated == 1 {
        Beat::Alive
    } else {
        Beat::Lost
    })
}

/// Heartbeats every third of the session timeout until shutdown; starts a
/// new session when ours was lost.
pub(crate) async fn keep_alive(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let interval = shared.config.session_timeout / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.heartbeat_now.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let Some(session) = shared.current_session() else {
            return;
        };
        match shared
            .write(move |conn, shared| beat(conn, shared, session))
            .await
        {
            Ok(Beat::Alive) => {
                if shared.hub.state() == SessionState::Suspended {
                    shared.hub.publish(SessionEvent::Reconnected);
                }
            }
            Ok(Beat::Lost) => {
                tracing::warn!(session, db = %shared.path().display(), "SQLite session expired; starting a new one");
                shared.session.store(0, Ordering::Release);
                shared.hub.publish(SessionEvent::Expired);
                match shared
                    .write(|conn, shared| new_session(conn, &shared.config))
                    .await
                {
                    Ok(id) => {
                        shared.session.store(id, Ordering::Release);
                        shared.hub.publish(SessionEvent::Connected);
                        shared.generation.send_modify(|g| *g += 1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start a SQLite session yet");
                        // Keep the old id so the next beat tries again.
                        shared.session.store(session, Ordering::Release);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "SQLite heartbeat failed");
                if shared.hub.state() == SessionState::Connected {
                    shared.hub.publish(SessionEvent::Suspended);
                }
            }
        }
    }
}

/// Ends `session` now: deletes its row and ephemeral nodes.
pub(crate) fn end_session(conn: &mut Connection, shared: &Shared, session: i64) -> Result<()> {
    let path = shared.path();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| from_sqlite(e, path))?;
    tx.execute(
        "UPDATE sessions SET expires_at_ms = -1 WHERE id = ?1",
        [session],
    )
    .map_err(|e| from_sqlite(e, path))?;
    let changed = reap_sessions(&tx, shared, |expires| expires < 0)?;
    tx.commit().map_err(|e| from_sqlite(e, path))?;
    if changed {
        shared.local_change.notify_one();
    }
    Ok(())
}

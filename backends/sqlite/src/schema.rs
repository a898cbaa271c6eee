//! The database layout, created on first use.
//!
//! | table | holds |
//! |---|---|
//! | `nodes` | one row per node: path, parent, data, version, revisions, owner session, sequence counter |
//! | `sessions` | live sessions and the time their heartbeat runs out |
//! | `changes` | the revision log: (revision, path, kind) per change, trimmed to a retention |
//! | `meta` | counters: the current revision, the revision the log is trimmed through, the root's sequence |

use rusqlite::{Connection, OptionalExtension};

/// `user_version` of the current layout.
const SCHEMA_VERSION: i64 = 1;

/// Change kinds in the revision log.
pub(crate) const CREATED: i64 = 0;
pub(crate) const DATA_CHANGED: i64 = 1;
pub(crate) const DELETED: i64 = 2;

/// Sets the pragmas and creates the tables if they are missing.
pub(crate) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    // WAL lets readers (watch pollers) run beside one writer, across processes.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS nodes (
             path TEXT PRIMARY KEY,
             parent TEXT NOT NULL,
             data BLOB NOT NULL,
             version INTEGER NOT NULL,
             created_rev INTEGER NOT NULL,
             modified_rev INTEGER NOT NULL,
             owner INTEGER,
             child_seq INTEGER NOT NULL DEFAULT 0
         );
         CREATE INDEX IF NOT EXISTS nodes_by_parent ON nodes(parent);
         CREATE INDEX IF NOT EXISTS nodes_by_owner ON nodes(owner) WHERE owner IS NOT NULL;
         CREATE TABLE IF NOT EXISTS sessions (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             expires_at_ms INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS changes (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             rev INTEGER NOT NULL,
             path TEXT NOT NULL,
             kind INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS changes_by_rev ON changes(rev);
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
         INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('trimmed_through', 0), ('root_child_seq', 0);
         PRAGMA user_version = 1;
         COMMIT;",
    )
}

/// The layout version of the database (0 for a new, empty one).
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Whether `version` is the layout this code reads and writes.
pub(crate) fn is_current(version: i64) -> bool {
    version == SCHEMA_VERSION
}

/// A counter from `meta`.
pub(crate) fn meta(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map(|v| v.unwrap_or(0))
}

/// Sets a counter in `meta`.
pub(crate) fn set_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
        rusqlite::params![key, value],
    )
    .map(drop)
}

//! The tables of one namespace, created on first use.
//!
//! | table | holds |
//! |---|---|
//! | `meta` | one row: the current revision (locked by every write, which orders them) and the root's sequence counter |
//! | `sessions` | live sessions and when their heartbeat runs out (server clock) |
//! | `nodes` | one row per node: path, parent, data, version, revisions, owner session, sequence counter |

use tokio_postgres::Client;

use crate::error::from_pg;

/// Creates the schema and its tables if missing. Sessions opening the same
/// new schema at once take turns through an advisory lock, since
/// `CREATE … IF NOT EXISTS` alone races.
pub(crate) async fn prepare(client: &mut Client, schema: &str) -> kingpin_api::Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| from_pg(e, "begin"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('kingpin schema ' || $1))",
        &[&schema],
    )
    .await
    .map_err(|e| from_pg(e, "locking the schema setup"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.meta (
             id integer PRIMARY KEY CHECK (id = 1),
             revision bigint NOT NULL,
             root_child_seq bigint NOT NULL
         );
         INSERT INTO {schema}.meta VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
         CREATE TABLE IF NOT EXISTS {schema}.sessions (
             id bigserial PRIMARY KEY,
             expires_at timestamptz NOT NULL
         );
         CREATE TABLE IF NOT EXISTS {schema}.nodes (
             path text PRIMARY KEY,
             parent text NOT NULL,
             data bytea NOT NULL,
             version bigint NOT NULL,
             created_rev bigint NOT NULL,
             modified_rev bigint NOT NULL,
             owner bigint,
             child_seq bigint NOT NULL DEFAULT 0
         );
         CREATE INDEX IF NOT EXISTS nodes_by_parent ON {schema}.nodes (parent);
         CREATE INDEX IF NOT EXISTS nodes_by_owner ON {schema}.nodes (owner)
             WHERE owner IS NOT NULL;"
    ))
    .await
    .map_err(|e| from_pg(e, "creating the schema"))?;
    tx.commit().await.map_err(|e| from_pg(e, "commit"))
}

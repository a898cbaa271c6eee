//! When the listener may have missed notifications, every watch gets
//! `Resync`: after its connection was cut by the server, and when a
//! revision arrives out of sequence. Changes after that arrive as usual.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{Coordinator, CreateMode, NodePath, WatchEvent, WatchKind, WatchStream};
use kingpin_conformance_tests::harness::run_case;
use kingpin_postgres_example::{listener_name, tokio_postgres};

const BOUND: Duration = Duration::from_secs(20);

async fn next(watch: &mut WatchStream, what: &str) -> WatchEvent {
    tokio::time::timeout(BOUND, watch.next())
        .await
        .unwrap_or_else(|_| panic!("no event in time: {what}"))
        .unwrap_or_else(|| panic!("the watch ended: {what}"))
}

/// A plain client, as an operator's `psql` would be.
async fn admin(endpoint: &str) -> tokio_postgres::Client {
    let (client, connection) = support::connection(endpoint)
        .connect(tokio_postgres::NoTls)
        .await
        .expect("an admin connection");
    tokio::spawn(connection);
    client
}

/// Watches `/resync/node` on a fresh schema; returns the server, the
/// schema, the session, its watch and the node.
async fn watched(case: &str) -> Option<(String, String, impl Coordinator, WatchStream, NodePath)> {
    let endpoint = support::shared_server(case)?;
    let schema = support::fresh_schema();
    let session = support::open(&endpoint, &schema).await;
    let path = NodePath::parse("/resync/node").unwrap();
    session
        .create(&path, b"0", CreateMode::Persistent)
        .await
        .unwrap();
    let watch = session.watch(&path, WatchKind::Data).await.unwrap();
    Some((endpoint, schema, session, watch, path))
}

#[test]
fn a_lost_listener_connection_reports_resync() {
    run_case(async {
        let Some((endpoint, schema, session, mut watch, path)) =
            watched("a_lost_listener_connection_reports_resync").await
        else {
            return;
        };
        let admin = admin(&endpoint).await;
        let cut = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&listener_name(&schema)],
            )
            .await
            .unwrap();
        assert_eq!(cut.len(), 1, "one listener connection to cut");
        assert_eq!(
            next(&mut watch, "resync after reconnecting").await,
            WatchEvent::Resync
        );
        session.set(&path, b"1", None).await.unwrap();
        assert_eq!(
            next(&mut watch, "a change after reconnecting").await,
            WatchEvent::Changed
        );
        assert_eq!(session.get(&path).await.unwrap().data, b"1");
    });
}

#[test]
fn a_revision_gap_reports_resync() {
    run_case(async {
        let Some((endpoint, schema, session, mut watch, path)) =
            watched("a_revision_gap_reports_resync").await
        else {
            return;
        };
        // A notification five revisions ahead: four were never heard.
        let admin = admin(&endpoint).await;
        let revision: i64 = admin
            .query_one(&format!("SELECT revision FROM {schema}.meta"), &[])
            .await
            .unwrap()
            .get(0);
        let payload = format!("{} d /elsewhere", revision + 5);
        admin
            .execute(
                "SELECT pg_notify($1, $2)",
                &[&format!("kingpin_{schema}"), &payload],
            )
            .await
            .unwrap();
        assert_eq!(
            next(&mut watch, "resync after a gap").await,
            WatchEvent::Resync
        );
        session.set(&path, b"1", None).await.unwrap();
        assert_eq!(
            next(&mut watch, "a change after the gap").await,
            WatchEvent::Changed
        );
    });
}

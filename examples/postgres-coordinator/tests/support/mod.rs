//! What the tests share: where the PostgreSQL server is, a fresh schema
//! per test, and a private server for the cases that restart one.

#![allow(dead_code)]

pub mod private_server;

use std::time::Duration;

use kingpin_conformance_tests::unique_name_component;
use kingpin_postgres_example::{tokio_postgres, PostgresConfig, PostgresCoordinator};

/// `host:port` of the shared test server.
pub const SERVER_ENV: &str = "KINGPIN_TEST_POSTGRES";
/// Set to 1 to skip, rather than fail, tests whose server is missing.
pub const SKIP_ENV: &str = "KINGPIN_TEST_SKIP_EXTERNAL";

/// Short, so that crashed sessions are reaped quickly in the tests.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(3);

/// The shared server's address; `None` (the test skips, saying so) only
/// when `KINGPIN_TEST_SKIP_EXTERNAL=1`. Without either, fails loudly.
pub fn shared_server(case: &str) -> Option<String> {
    match std::env::var(SERVER_ENV) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ if std::env::var(SKIP_ENV).as_deref() == Ok("1") => {
            kingpin_conformance_tests::harness::skip(
                "postgres",
                case,
                &format!("{SERVER_ENV} is not set and {SKIP_ENV}=1"),
            );
            None
        }
        _ => panic!(
            "{case} needs a PostgreSQL server: set {SERVER_ENV}=host:port (scripts/test starts \
             one), or {SKIP_ENV}=1 to skip"
        ),
    }
}

/// How the tests reach a server: the `postgres` superuser, trusted on
/// loopback, so no password anywhere.
pub fn connection(endpoint: &str) -> tokio_postgres::Config {
    let (host, port) = endpoint
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{SERVER_ENV}={endpoint:?} is not host:port"));
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("{SERVER_ENV}={endpoint:?} has no port number"));
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user("postgres")
        .dbname("postgres");
    config
}

/// A schema of its own for one test, so runs and parallel tests never meet.
pub fn fresh_schema() -> String {
    format!("kp_{}", unique_name_component())
}

/// A session on `schema` with the tests' session timeout.
pub async fn open(endpoint: &str, schema: &str) -> PostgresCoordinator {
    let config = PostgresConfig::new(connection(endpoint), schema)
        .and_then(|c| c.with_session_timeout(SESSION_TIMEOUT))
        .expect("valid test settings");
    PostgresCoordinator::connect(config)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {endpoint}: {e}"))
}

//! How to reach the server, which schema holds the namespace, and the
//! session's timing.

use std::time::Duration;

use kingpin_api::{Error, Result, DEFAULT_MAX_DATA_SIZE};

/// Longest schema name accepted: the notification channel is
/// `kingpin_<schema>` and PostgreSQL identifiers are at most 63 bytes.
pub const MAX_SCHEMA_LEN: usize = 48;

/// Settings of a [`PostgresCoordinator`](crate::PostgresCoordinator).
///
/// ```
/// use kingpin_postgres_example::{tokio_postgres, PostgresConfig};
/// let mut connection = tokio_postgres::Config::new();
/// connection.host("127.0.0.1").port(5432).user("kingpin").dbname("kingpin");
/// let config = PostgresConfig::new(connection, "kingpin")?;
/// assert!(PostgresConfig::new(tokio_postgres::Config::new(), "Bad-Name").is_err());
/// # Ok::<(), kingpin_api::Error>(())
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    pub(crate) connection: tokio_postgres::Config,
    pub(crate) schema: String,
    pub(crate) session_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) max_data_size: usize,
}

impl PostgresConfig {
    /// A namespace in `schema` (created on first use) of the database
    /// `connection` reaches. Schema names are `[a-z_][a-z0-9_]*`, at most
    /// [`MAX_SCHEMA_LEN`] bytes, checked here before any I/O.
    pub fn new(connection: tokio_postgres::Config, schema: &str) -> Result<Self> {
        let valid = !schema.is_empty()
            && schema.len() <= MAX_SCHEMA_LEN
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::invalid(format!(
                "PostgreSQL schema name {schema:?} is invalid: it must be 1 to {MAX_SCHEMA_LEN} \
                 characters of [a-z0-9_], not starting with a digit"
            )));
        }
        Ok(PostgresConfig {
            connection,
            schema: schema.to_owned(),
            session_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(10),
            max_data_size: DEFAULT_MAX_DATA_SIZE,
        })
    }

    /// How long a session lives without a heartbeat (10 s by default, at
    /// least 300 ms): how long a crashed client's ephemeral nodes remain.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout < Duration::from_millis(300) {
            return Err(Error::invalid(format!(
                "session timeout {timeout:?} is too short: at least 300ms"
            )));
        }
        self.session_timeout = timeout;
        Ok(self)
    }

    /// How long one call (connecting included) may take before it fails
    /// with `Unavailable` (10 s by default).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The largest node payload accepted.
    pub fn with_max_data_size(mut self, max_data_size: usize) -> Self {
        self.max_data_size = max_data_size;
        self
    }

    /// The schema holding the namespace.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The `LISTEN/NOTIFY` channel of the schema.
    pub(crate) fn channel(&self) -> String {
        format!("kingpin_{}", self.schema)
    }
}

/// Where and as whom, never the password.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("hosts", &self.connection.get_hosts())
            .field("ports", &self.connection.get_ports())
            .field("user", &self.connection.get_user())
            .field("dbname", &self.connection.get_dbname())
            .field("schema", &self.schema)
            .field("session_timeout", &self.session_timeout)
            .finish()
    }
}

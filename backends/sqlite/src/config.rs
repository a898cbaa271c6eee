//! Settings, from a `sqlite://` URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kingpin_api::{CoordinatorScheme, CoordinatorUrl, Error, Result, DEFAULT_MAX_DATA_SIZE};

/// Where the embedded database lives when no path is given:
/// `$KINGPIN_HOME/.kingpin/kingpin.db`, or `.kingpin/kingpin.db` in the
/// working directory.
pub fn default_database_path() -> PathBuf {
    let base = std::env::var_os("KINGPIN_HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    base.join(".kingpin").join("kingpin.db")
}

/// How to open the shared database.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    pub(crate) path: PathBuf,
    pub(crate) session_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) busy_timeout: Duration,
    pub(crate) log_retention: u64,
    pub(crate) max_data_size: usize,
}

impl SqliteConfig {
    /// A database at `path` (created if missing), 10 s sessions, watches
    /// polling every 5 ms.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteConfig {
            path: path.as_ref().to_owned(),
            session_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(5),
            busy_timeout: Duration::from_secs(5),
            log_retention: 100_000,
            max_data_size: DEFAULT_MAX_DATA_SIZE,
        }
    }

    /// Reads `sqlite://path.db?session_timeout=10s&poll_interval=5ms&busy_timeout=5s&log_retention=100000`;
    /// an empty path is [`default_database_path`].
    pub fn from_url(url: &CoordinatorUrl) -> Result<Self> {
        if url.scheme() != CoordinatorScheme::Sqlite {
            return Err(Error::invalid(format!("{url} is not a sqlite:// URL")));
        }
        url.reject_unknown_options(&[
            "session_timeout",
            "poll_interval",
            "busy_timeout",
            "log_retention",
        ])?;
        let path = if url.path().is_empty() {
            default_database_path()
        } else {
            PathBuf::from(url.path())
        };
        let mut config = SqliteConfig::new(path);
        if let Some(t) = url.duration_option("session_timeout")? {
            config = config.with_session_timeout(t)?;
        }
        if let Some(t) = url.duration_option("poll_interval")? {
            config.poll_interval = t.max(Duration::from_millis(1));
        }
        if let Some(t) = url.duration_option("busy_timeout")? {
            config.busy_timeout = t;
        }
        if let Some(n) = url.options().get("log_retention") {
            let n: u64 = n
                .parse()
                .map_err(|_| Error::invalid(format!("log_retention={n:?} is not a count")))?;
            config = config.with_log_retention(n)?;
        }
        Ok(config)
    }

    /// How long a silent process keeps its session (and ephemeral nodes).
    pub fn with_session_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout < Duration::from_millis(300) {
            return Err(Error::invalid("session_timeout must be at least 300ms"));
        }
        self.session_timeout = timeout;
        Ok(self)
    }

    /// How often watches look for other processes' changes.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a write waits for another process's write lock.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many revisions of change log to keep for watches that fall
    /// behind; older ones are trimmed and such watches get `Resync`.
    pub fn with_log_retention(mut self, revisions: u64) -> Result<Self> {
        if revisions == 0 {
            return Err(Error::invalid("log_retention must be at least 1"));
        }
        self.log_retention = revisions;
        Ok(self)
    }

    /// Payload limit (default [`DEFAULT_MAX_DATA_SIZE`]).
    pub fn with_max_data_size(mut self, limit: usize) -> Self {
        self.max_data_size = limit;
        self
    }
}

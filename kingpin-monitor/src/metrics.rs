//! The monitor's metrics, in one registry exported as Prometheus text.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What failed.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `fetch`, `write`, `hook`, `subscription` or `connect`.
    pub stage: String,
}

/// Which serverset.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServersetLabels {
    /// `discovery.<service>.<env>`.
    pub serverset: String,
}

/// Which serverset, and what accepted its refused update.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcceptedLabels {
    /// `discovery.<service>.<env>`.
    pub serverset: String,
    /// `acceptance` (an operator's) or `hold` (refused long enough).
    pub by: String,
}

/// Every metric the monitor exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// From a version's timestamp in the store to its file's rename.
    pub propagation_lag: Histogram,
    /// Failures, by stage.
    pub errors: Family<ErrorLabels, Counter>,
    /// `Resync` events from watches (reconnects, expiry, compaction).
    pub watch_resyncs: Counter,
    /// Files written.
    pub files_written: Counter,
    /// Age of the oldest successful fetch among the entries, in seconds.
    pub staleness: Gauge<f64, AtomicU64>,
    /// Entries subscribed.
    pub entries: Gauge,
    /// Serverset updates refused (emptying, or shrinking past the limit).
    pub serverset_refusals: Family<ServersetLabels, Counter>,
    /// 1 while a serverset's newest update is refused, else 0.
    pub serverset_refused: Family<ServersetLabels, Gauge>,
    /// Updates the guard would refuse, written all the same.
    pub serverset_accepted: Family<AcceptedLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kingpin_monitor");
        // 1 ms to ~65 s.
        let propagation_lag = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 17),
        );
        registry.register(
            "propagation_lag_seconds",
            "Time from a version's write to the store until its local file is replaced",
            propagation_lag.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("errors", "Failures, by stage", errors.clone());
        let watch_resyncs = Counter::default();
        registry.register(
            "watch_resyncs",
            "Watch resyncs (reconnect, session expiry, compaction)",
            watch_resyncs.clone(),
        );
        let files_written = Counter::default();
        registry.register(
            "files_written",
            "Local files replaced",
            files_written.clone(),
        );
        let staleness = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "staleness_seconds",
            "Age of the oldest successful fetch among subscribed entries",
            staleness.clone(),
        );
        let entries = Gauge::default();
        registry.register(
            "entries",
            "Subscribed configs and serversets",
            entries.clone(),
        );
        let serverset_refusals = Family::<ServersetLabels, Counter>::default();
        registry.register(
            "serverset_refusals",
            "Serverset updates refused: emptying, or shrinking past serverset_max_shrink",
            serverset_refusals.clone(),
        );
        let serverset_refused = Family::<ServersetLabels, Gauge>::default();
        registry.register(
            "serverset_refused",
            "1 while a serverset's newest update is refused and its file kept",
            serverset_refused.clone(),
        );
        let serverset_accepted = Family::<AcceptedLabels, Counter>::default();
        registry.register(
            "serverset_accepted",
            "Serverset updates the guard refuses, written all the same: an operator's acceptance, or refused for serverset_accept_refused_after",
            serverset_accepted.clone(),
        );
        Metrics {
            registry,
            serverset_accepted,
            serverset_refusals,
            serverset_refused,
            propagation_lag,
            errors,
            watch_resyncs,
            files_written,
            staleness,
            entries,
        }
    }

    /// Counts a failure at `stage`.
    pub fn error(&self, stage: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                stage: stage.to_owned(),
            })
            .inc();
    }

    /// Records whether a serverset's newest update is refused, and counts
    /// a refusal not seen before.
    pub fn serverset_refused(&self, serverset: &str, refused: bool, new_refusal: bool) {
        let labels = ServersetLabels {
            serverset: serverset.to_owned(),
        };
        if new_refusal {
            self.serverset_refusals.get_or_create(&labels).inc();
        }
        self.serverset_refused
            .get_or_create(&labels)
            .set(i64::from(refused));
    }

    /// Counts a refused update written all the same, `by` what.
    pub fn serverset_accepted(&self, serverset: &str, by: &str) {
        self.serverset_accepted
            .get_or_create(&AcceptedLabels {
                serverset: serverset.to_owned(),
                by: by.to_owned(),
            })
            .inc();
    }

    /// Records a propagation lag.
    pub fn observe_lag(&self, lag: Duration) {
        self.propagation_lag.observe(lag.as_secs_f64());
    }

    /// The registry as Prometheus text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

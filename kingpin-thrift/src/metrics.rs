//! Per-method call metrics of Thrift clients, exported as Prometheus text.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use volo::FastStr;

use crate::striped::{StripedCounter, StripedHistogram};

/// A service's method.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
}

/// A call's outcome.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    service: String,
    method: String,
    /// `ok` (the server answered, with a result or a declared exception)
    /// or the kind of error (see [`ErrorKind`]).
    outcome: String,
}

/// A service.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

/// Why a call (or an attempt) failed, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer within the timeout.
    Timeout,
    /// The connection could not be made, or broke.
    Transport,
    /// There was no host to call.
    NoHosts,
    /// The server answered with a Thrift application exception (unknown
    /// method, internal error...).
    Application,
    /// The answer could not be decoded.
    Protocol,
    /// The server answered with a business error (volo's TTHeader status).
    Business,
}

impl ErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::NoHosts => "no_hosts",
            ErrorKind::Application => "application",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Business => "business",
        }
    }
}

/// The metrics of one or more clients (each labelled by its service
/// name): calls by outcome, call latency, retries, retries the budget
/// refused, hosts invalidated and connections recycled.
///
/// Clones share the counts. Give each client its own, or one to all;
/// [`register`](Self::register) adds them to the application's registry.
///
/// ```
/// use kingpin_thrift::ClientMetrics;
///
/// let metrics = ClientMetrics::new();
/// let mut registry = prometheus_client::registry::Registry::default();
/// metrics.register(&mut registry);
/// assert_eq!(metrics.calls("ping", "ping", "ok"), 0);
/// ```
#[derive(Clone)]
pub struct ClientMetrics {
    families: Arc<Families>,
    /// Each (service, method)'s handles: a few, read on every call, added
    /// to at a method's first call.
    methods: Arc<ArcSwap<Vec<Arc<MethodMetrics>>>>,
}

struct Families {
    registry: Registry,
    calls: Family<OutcomeLabels, StripedCounter>,
    latency: Family<MethodLabels, StripedHistogram>,
    attempt_failures: Family<OutcomeLabels, Counter>,
    retries: Family<MethodLabels, Counter>,
    retries_refused: Family<MethodLabels, Counter>,
    invalidations: Family<ServiceLabels, Counter>,
    recycled: Family<ServiceLabels, Counter>,
}

/// One method's handles, looked up once.
pub(crate) struct MethodMetrics {
    families: Arc<Families>,
    service: FastStr,
    method: FastStr,
    labels: MethodLabels,
    pub(crate) ok: StripedCounter,
    pub(crate) latency: StripedHistogram,
    pub(crate) retries: Counter,
    pub(crate) retries_refused: Counter,
    pub(crate) invalidations: Counter,
}

impl MethodMetrics {
    /// Whether these are the handles of `service`'s `method`.
    fn is_for(&self, service: &FastStr, method: &FastStr) -> bool {
        same_str(&self.method, method) && same_str(&self.service, service)
    }

    /// Counts a call that failed with `kind`.
    pub(crate) fn failed(&self, kind: ErrorKind) {
        self.families.calls.get_or_create(&self.outcome(kind)).inc();
    }

    /// Counts an attempt that failed with `kind`.
    pub(crate) fn attempt_failed(&self, kind: ErrorKind) {
        self.families
            .attempt_failures
            .get_or_create(&self.outcome(kind))
            .inc();
    }

    fn outcome(&self, kind: ErrorKind) -> OutcomeLabels {
        OutcomeLabels {
            service: self.labels.service.clone(),
            method: self.labels.method.clone(),
            outcome: kind.as_str().to_owned(),
        }
    }

    pub(crate) fn observe(&self, latency: Duration) {
        self.latency.observe(latency);
    }
}

impl Default for ClientMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientMetrics {
    /// Metrics counted from zero.
    pub fn new() -> Self {
        let families = Families {
            registry: Registry::default(),
            calls: Family::default(),
            latency: Family::default(),
            attempt_failures: Family::default(),
            retries: Family::default(),
            retries_refused: Family::default(),
            invalidations: Family::default(),
            recycled: Family::default(),
        };
        let mut registry = Registry::default();
        families.register_in(&mut registry);
        ClientMetrics {
            families: Arc::new(Families {
                registry,
                ..families
            }),
            methods: Arc::default(),
        }
    }

    /// Adds these metrics to `registry`, as `kingpin_thrift_client_*`.
    pub fn register(&self, registry: &mut Registry) {
        self.families.register_in(registry);
    }

    /// These metrics alone, as Prometheus text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.families.registry);
        text
    }

    /// Calls of `service`'s `method` that ended with `outcome`: `ok`, or an
    /// [`ErrorKind`]'s label (`timeout`, `transport`, `no_hosts`...).
    pub fn calls(&self, service: &str, method: &str, outcome: &str) -> u64 {
        self.families
            .calls
            .get_or_create(&outcome_labels(service, method, outcome))
            .get()
    }

    /// Attempts of `service`'s `method` that failed with `kind` (and were
    /// retried, or ended the call).
    pub fn attempt_failures(&self, service: &str, method: &str, kind: ErrorKind) -> u64 {
        self.families
            .attempt_failures
            .get_or_create(&outcome_labels(service, method, kind.as_str()))
            .get()
    }

    /// Retries made for `service`'s `method`.
    pub fn retries(&self, service: &str, method: &str) -> u64 {
        self.families
            .retries
            .get_or_create(&method_labels(service, method))
            .get()
    }

    /// Retries of `service`'s `method` the retry budget refused.
    pub fn retries_refused(&self, service: &str, method: &str) -> u64 {
        self.families
            .retries_refused
            .get_or_create(&method_labels(service, method))
            .get()
    }

    /// Hosts of `service` the client invalidated after a failure.
    pub fn invalidations(&self, service: &str) -> u64 {
        self.families
            .invalidations
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .get()
    }

    /// Connections to `service` closed by the recycling limits.
    pub fn recycled(&self, service: &str) -> u64 {
        self.recycled_counter(service).get()
    }

    pub(crate) fn recycled_counter(&self, service: &str) -> Counter {
        self.families
            .recycled
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .clone()
    }

    /// Runs `count` with the handles of `service`'s `method`: without a
    /// lock or a hash, as it is done on every call.
    pub(crate) fn with_method<R>(
        &self,
        service: &FastStr,
        method: &FastStr,
        count: impl FnOnce(&MethodMetrics) -> R,
    ) -> R {
        let known = self.methods.load();
        match known.iter().find(|m| m.is_for(service, method)) {
            Some(found) => count(found),
            None => count(&self.method(service, method)),
        }
    }

    /// The handles of `service`'s `method`, made at its first call.
    pub(crate) fn method(&self, service: &FastStr, method: &FastStr) -> Arc<MethodMetrics> {
        let is_it = |m: &&Arc<MethodMetrics>| m.is_for(service, method);
        if let Some(found) = self.methods.load().iter().find(is_it) {
            return Arc::clone(found);
        }
        let labels = method_labels(service, method);
        let families = &self.families;
        let created = Arc::new(MethodMetrics {
            families: Arc::clone(families),
            service: service.clone(),
            method: method.clone(),
            ok: families
                .calls
                .get_or_create(&outcome_labels(service, method, "ok"))
                .clone(),
            latency: families.latency.get_or_create(&labels).clone(),
            retries: families.retries.get_or_create(&labels).clone(),
            retries_refused: families.retries_refused.get_or_create(&labels).clone(),
            invalidations: families
                .invalidations
                .get_or_create(&ServiceLabels {
                    service: service.to_string(),
                })
                .clone(),
            labels,
        });
        // Two first calls at once make the same handles (the families
        // share their counts); one is kept.
        self.methods.rcu(|known| {
            let mut known = Vec::clone(known);
            if !known.iter().any(|m| is_it(&m)) {
                known.push(Arc::clone(&created));
            }
            known
        });
        let kept = self.methods.load().iter().find(is_it).map(Arc::clone);
        kept.unwrap_or(created)
    }
}

impl std::fmt::Debug for ClientMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMetrics").finish_non_exhaustive()
    }
}

impl Families {
    fn register_in(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("kingpin_thrift_client");
        registry.register(
            "calls",
            "Calls, by outcome: ok (answered) or the kind of error",
            self.calls.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Call latency, retries included",
            self.latency.clone(),
        );
        registry.register(
            "attempt_failures",
            "Attempts that failed, by kind of error",
            self.attempt_failures.clone(),
        );
        registry.register("retries", "Attempts after the first", self.retries.clone());
        registry.register(
            "retries_refused",
            "Retries the retry budget did not allow",
            self.retries_refused.clone(),
        );
        registry.register(
            "host_invalidations",
            "Hosts skipped for a while after a failure",
            self.invalidations.clone(),
        );
        registry.register(
            "connections_recycled",
            "Connections closed after their request or age limit",
            self.recycled.clone(),
        );
    }
}

fn method_labels(service: &str, method: &str) -> MethodLabels {
    MethodLabels {
        service: service.to_owned(),
        method: method.to_owned(),
    }
}

fn outcome_labels(service: &str, method: &str, outcome: &str) -> OutcomeLabels {
    OutcomeLabels {
        service: service.to_owned(),
        method: method.to_owned(),
        outcome: outcome.to_owned(),
    }
}

/// Whether two names are equal, seen first by where they are: a client's
/// service and method names are the same strings on every call
/// (generated `&'static str`s, or one shared allocation).
fn same_str(a: &FastStr, b: &FastStr) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_handle_counts_into_the_exported_families() {
        let metrics = ClientMetrics::new();
        let ping = metrics.method(&"ping".into(), &"ping".into());
        ping.ok.inc();
        ping.failed(ErrorKind::Timeout);
        ping.attempt_failed(ErrorKind::Transport);
        ping.retries.inc();
        ping.observe(Duration::from_millis(3));
        // The same handle comes back, sharing the counts.
        metrics.method(&"ping".into(), &"ping".into()).ok.inc();

        assert_eq!(metrics.calls("ping", "ping", "ok"), 2);
        assert_eq!(metrics.calls("ping", "ping", "timeout"), 1);
        assert_eq!(
            metrics.attempt_failures("ping", "ping", ErrorKind::Transport),
            1
        );
        assert_eq!(metrics.retries("ping", "ping"), 1);
        let text = metrics.encode();
        assert!(text.contains(r#"kingpin_thrift_client_calls_total{service="ping",method="ping",outcome="timeout"} 1"#), "{text}");
        assert!(text.contains(r#"kingpin_thrift_client_call_duration_seconds_count{service="ping",method="ping"} 1"#), "{text}");

        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut exported = String::new();
        encode(&mut exported, &registry).unwrap();
        assert!(
            exported.contains("kingpin_thrift_client_retries_total"),
            "{exported}"
        );
    }

    #[test]
    fn names_are_the_same_by_place_or_by_content() {
        let ping = FastStr::from_static_str("ping");
        assert!(same_str(&ping, &ping.clone()));
        assert!(same_str(&ping, &FastStr::new(String::from("ping"))));
        assert!(!same_str(&ping, &FastStr::from_static_str("pin")));
        let pingpong = FastStr::from_static_str("pingpong");
        assert!(!same_str(&pingpong, &pingpong.slice_ref(&pingpong[..4])));
    }
}

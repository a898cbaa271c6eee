//! [`HostsProvider`]: the hosts of a service for an application (or a
//! client library) to call. The hosts come from a serverset file (reloaded
//! when it changes), a static list or updates pushed by another source; one
//! is picked per request, and a host that failed is skipped for a while.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use rand::Rng;

use crate::error::Result;
use crate::file::LoadStatus;
use crate::name::file_in;
use crate::serverset::{Endpoint, ServerSetReader};

type ChangeCallback = Arc<dyn Fn(&[Endpoint]) + Send + Sync>;

/// How [`HostsProvider::select`] picks among the healthy (not invalidated)
/// hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selector {
    /// Uniformly at random.
    #[default]
    Random,
    /// Each host in turn, in list order.
    RoundRobin,
    /// Two different hosts at random, then the one with fewer requests in
    /// flight (fewer live [`HostLease`]s): spreads load away from slow
    /// hosts. Ties go to either.
    PowerOfTwoChoices,
}

/// Where the hosts in use come from, for health reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostsOrigin {
    /// The source (serverset file, static list or updates) has hosts, and
    /// they are in use.
    Source,
    /// The source has no host (a serverset file that is missing or empty,
    /// no update yet): the fallback list is in use.
    Fallback,
    /// Neither the source nor the fallback has a host:
    /// [`select`](HostsProvider::select) fails.
    NoHosts,
}

/// Why a [`HostsProvider`] could not give a host or take an update.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostsError {
    /// There is no host to select: the source has none and there is no
    /// fallback list.
    #[error("no host to select: {source_name} has none and there is no fallback list")]
    NoHosts {
        /// The source, e.g. `serverset file /var/serverset/discovery.api.prod`.
        source_name: String,
    },
    /// An update was refused; the previous hosts stay.
    #[error("refused the update of {source_name}: {reason}")]
    Refused {
        /// The source, e.g. `updates through a HostsUpdater`.
        source_name: String,
        /// Why the update was refused.
        reason: String,
    },
}

/// Options for a [`HostsProvider`]; the source, given last, builds it.
///
/// See [`HostsProvider`] for an example.
#[derive(Debug, Clone)]
pub struct HostsProviderBuilder {
    selector: Selector,
    retry_period: Duration,
    max_invalid_fraction: f64,
    fallback: Vec<Endpoint>,
}

impl Default for HostsProviderBuilder {
    fn default() -> Self {
        HostsProviderBuilder {
            selector: Selector::default(),
            retry_period: Self::DEFAULT_RETRY_PERIOD,
            max_invalid_fraction: Self::DEFAULT_MAX_INVALID_FRACTION,
            fallback: Vec::new(),
        }
    }
}

impl HostsProviderBuilder {
    /// How long an invalidated host is skipped unless set otherwise.
    pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(30);

    /// The most hosts that may be invalid at once unless set otherwise: a
    /// fifth.
    pub const DEFAULT_MAX_INVALID_FRACTION: f64 = 0.2;

    /// How a host is picked; [`Selector::Random`] by default.
    pub fn selector(mut self, selector: Selector) -> Self {
        self.selector = selector;
        self
    }

    /// How long an [invalidated](HostsProvider::invalidate) host is skipped;
    /// [30 s](Self::DEFAULT_RETRY_PERIOD) by default. Zero turns
    /// invalidation off.
    pub fn retry_period(mut self, period: Duration) -> Self {
        self.retry_period = period;
        self
    }

    /// The most hosts that may be invalid at once, as a fraction of the
    /// hosts in use: at most ⌊`fraction` × hosts⌋ are, so with the default
    /// of 0.2 no host of 4 can be invalidated, 1 of 5, 2 of 10. 0 turns
    /// invalidation off; 1 lets every host be invalidated.
    ///
    /// # Panics
    ///
    /// When `fraction` is not in [0, 1] (NaN included): a programming
    /// error, like a negative duration.
    pub fn max_invalid_fraction(mut self, fraction: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "max_invalid_fraction is in [0, 1], not {fraction}"
        );
        self.max_invalid_fraction = fraction;
        self
    }

    /// A static list used while the source has no host: the serverset file
    /// is missing or empty, or no update came yet. Empty by default.
    pub fn fallback(mut self, hosts: impl IntoIterator<Item = Endpoint>) -> Self {
        self.fallback = hosts.into_iter().collect();
        self
    }

    /// Builds the provider over the serverset file at `path`, following
    /// its changes (through a [`ServerSetReader`]: an update that empties
    /// it is refused and the previous hosts stay). A file that is missing
    /// or does not parse has no host until it is fixed: the fallback is
    /// used meanwhile, and [`source_status`](HostsProvider::source_status)
    /// tells why.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName) when the path has
    /// no file name, [`Error::Watch`](crate::Error::Watch) when its
    /// directory cannot be watched (it must exist).
    pub fn serverset_file(self, path: impl Into<PathBuf>) -> Result<HostsProvider> {
        let path = path.into();
        let reader = ServerSetReader::open_or_empty(&path)?;
        let source_name = format!("serverset file {}", path.display());
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            reader.file().on_change(move |endpoints: &Vec<Endpoint>| {
                // `None` while the provider is being built (the catch-up
                // below covers it) or after it is dropped.
                if let Some(inner) = weak.upgrade() {
                    let _ = inner.apply(endpoints, Instant::now());
                }
            });
            self.into_inner(source_name, Some(reader))
        });
        inner.catch_up_with_serverset();
        Ok(HostsProvider { inner })
    }

    /// Builds the provider over the serverset `name` (e.g.
    /// `discovery.api.prod`) in the serverset directory `dir`, as
    /// [`serverset_file`](Self::serverset_file).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName), before any I/O,
    /// when `name` is not a plain file name; else as
    /// [`serverset_file`](Self::serverset_file).
    pub fn serverset_in(self, dir: impl AsRef<Path>, name: &str) -> Result<HostsProvider> {
        self.serverset_file(file_in(dir, name)?)
    }

    /// Builds the provider over a list that never changes (the fallback
    /// is used only if it is empty).
    pub fn static_hosts(self, hosts: impl IntoIterator<Item = Endpoint>) -> HostsProvider {
        let hosts: Vec<Endpoint> = hosts.into_iter().collect();
        let inner = Arc::new(self.into_inner("a static list".to_owned(), None));
        let _ = inner.apply(&hosts, Instant::now());
        lock(&inner.status).last_loaded = Some(SystemTime::now());
        HostsProvider { inner }
    }

    /// Builds a provider whose hosts come from [`HostsUpdater::update`]:
    /// how a source in another crate (the coordinator, say) feeds it. Until
    /// the first update the fallback is used.
    pub fn manual(self) -> (HostsProvider, HostsUpdater) {
        self.manual_named("updates through a HostsUpdater")
    }

    /// [`manual`](Self::manual), with the source named in messages as
    /// `source_name` (e.g. `serverset discovery.api.prod in the coordinator`).
    pub fn manual_named(self, source_name: impl Into<String>) -> (HostsProvider, HostsUpdater) {
        let inner = Arc::new(self.into_inner(source_name.into(), None));
        let _ = inner.apply(&[], Instant::now());
        let updater = HostsUpdater {
            inner: Arc::clone(&inner),
        };
        (HostsProvider { inner }, updater)
    }

    fn into_inner(self, source_name: String, serverset: Option<ServerSetReader>) -> Inner {
        Inner {
            selector: self.selector,
            retry_period: nanos(self.retry_period),
            max_invalid_fraction: self.max_invalid_fraction,
            fallback: dedup(&self.fallback),
            source_name,
            epoch: Instant::now(),
            hosts: ArcSwap::from_pointee(HostSet::default()),
            next: AtomicUsize::new(0),
            no_invalid_host_from: AtomicU64::new(0),
            invalidation: Mutex::new(()),
            updates: Mutex::new(()),
            status: Mutex::new(LoadStatus::default()),
            callbacks: Mutex::new(Vec::new()),
            serverset,
        }
    }
}

/// The hosts of a service and how to pick one: the hosts come from a
/// serverset file reloaded on change, a static list, or updates from
/// another source ([`HostsUpdater`]), with a static fallback list while the
/// source has none.
///
/// - **Selection** ([`select`](Self::select)) reads the current list
///   without a lock and picks a healthy host with the [`Selector`]. The
///   [`HostLease`] it returns counts as a request in flight until dropped.
/// - **Invalidation** ([`invalidate`](Self::invalidate)): a host that
///   failed is skipped by every selector for the
///   [retry period](HostsProviderBuilder::retry_period), unless that would
///   make more than the [maximum
///   fraction](HostsProviderBuilder::max_invalid_fraction) of the hosts
///   invalid: many hosts failing at once is more likely a problem on the
///   caller's side, and sending all traffic to the few hosts left would
///   take them down. When a host leaves the list its invalidation is
///   forgotten; when the list shrinks, the oldest invalidations end first
///   to stay within the fraction.
/// - **Stability**: an update that empties the list is refused and the
///   previous hosts stay (an emptied serverset is almost always a mistake).
///
/// Clones share everything (the list, invalidations, requests in flight),
/// so a client library given a clone sees the application's invalidations
/// and the other way round. Dropping the last clone stops watching the
/// file.
///
/// ```
/// use std::time::Duration;
/// use kingpin_client::{Endpoint, HostsOrigin, HostsProvider, Selector};
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("discovery.api.prod"), "10.0.0.1:8080\n10.0.0.2:8080\n")?;
/// let api = HostsProvider::builder()
///     .selector(Selector::PowerOfTwoChoices)
///     .retry_period(Duration::from_secs(10))
///     .fallback([Endpoint::new("api.example", 8080)])
///     .serverset_in(dir.path(), "discovery.api.prod")?;
/// assert_eq!(api.origin(), HostsOrigin::Source);
///
/// // On every request:
/// let host = api.select()?; // in flight until dropped
/// if call(&host).is_err() {
///     // Skipped for 10 s, unless too many hosts are invalid already.
///     api.invalidate(&host);
/// }
/// # fn call(_: &Endpoint) -> std::io::Result<()> { Ok(()) }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct HostsProvider {
    inner: Arc<Inner>,
}

impl HostsProvider {
    /// Options for a provider, then its source.
    pub fn builder() -> HostsProviderBuilder {
        HostsProviderBuilder::default()
    }

    /// A healthy host, picked by the [`Selector`]; it counts as in flight
    /// (for [`Selector::PowerOfTwoChoices`]) until the lease is dropped.
    /// When every host is invalid (possible only with a maximum invalid
    /// fraction of 1), any host is picked: an invalidation is a preference,
    /// never a reason to send nothing.
    ///
    /// # Errors
    ///
    /// [`HostsError::NoHosts`] when neither the source nor the fallback
    /// has a host.
    pub fn select(&self) -> Result<HostLease, HostsError> {
        self.inner.select_at(Instant::now(), &mut rand::rng())
    }

    /// Like [`select`](Self::select), for a retry: a host that is not in
    /// `tried` — a healthy one if there is one, else an invalid one — and
    /// when every host has been tried, any host as `select` picks it.
    ///
    /// # Errors
    ///
    /// [`HostsError::NoHosts`], as `select`.
    pub fn select_other(&self, tried: &[Endpoint]) -> Result<HostLease, HostsError> {
        self.inner
            .select_other_at(tried, Instant::now(), &mut rand::rng())
    }

    /// Marks `host` as failed: every selector skips it for the retry
    /// period. Returns whether it is invalid now: `false` when it is not
    /// one of the current hosts, when the retry period is zero, or when
    /// invalidating it would make more than ⌊maximum fraction × hosts⌋
    /// hosts invalid (it stays valid then). Invalidating an invalid host
    /// starts its retry period again.
    pub fn invalidate(&self, host: &Endpoint) -> bool {
        self.inner.invalidate_at(host, Instant::now())
    }

    /// Every host in use (the source's, or the fallback), invalid ones
    /// included, without duplicates, in list order.
    pub fn hosts(&self) -> Arc<Vec<Endpoint>> {
        Arc::clone(&self.inner.hosts.load().endpoints)
    }

    /// The hosts in use that are not invalid now.
    pub fn healthy_hosts(&self) -> Vec<Endpoint> {
        self.inner.hosts_where(Instant::now(), true)
    }

    /// The hosts in use that are invalid now.
    pub fn invalid_hosts(&self) -> Vec<Endpoint> {
        self.inner.hosts_where(Instant::now(), false)
    }

    /// Where the hosts in use come from: the source or the fallback.
    pub fn origin(&self) -> HostsOrigin {
        self.inner.hosts.load().origin
    }

    /// The source, as it appears in messages: `serverset file <path>`,
    /// `a static list` or `updates through a HostsUpdater`.
    pub fn source_name(&self) -> &str {
        &self.inner.source_name
    }

    /// How loading the source has gone: for a serverset file, the file's
    /// [status](crate::ConfigFile::status) (why it is missing or stale);
    /// for updates, the last accepted and the last refused one.
    pub fn source_status(&self) -> LoadStatus {
        match &self.inner.serverset {
            Some(reader) => reader.file().status(),
            None => lock(&self.inner.status).clone(),
        }
    }

    /// The serverset file's reader, when that is the source: its
    /// [`file()`](ServerSetReader::file) takes error callbacks.
    pub fn serverset(&self) -> Option<&ServerSetReader> {
        self.inner.serverset.as_ref()
    }

    /// Calls `callback` with the hosts in use each time they change
    /// (including a switch between the source and the fallback), on the
    /// thread that changed them (the file watcher's, or the caller of
    /// [`HostsUpdater::update`]), in the order of the changes: for a
    /// connection pool to drop hosts that left. A callback must not call
    /// [`HostsUpdater::update`] (it would wait for itself); a panicking
    /// callback is logged and the others still run.
    pub fn on_change(&self, callback: impl Fn(&[Endpoint]) + Send + Sync + 'static) {
        lock(&self.inner.callbacks).push(Arc::new(callback));
    }
}

impl fmt::Debug for HostsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.inner.hosts.load();
        f.debug_struct("HostsProvider")
            .field("source", &self.inner.source_name)
            .field("selector", &self.inner.selector)
            .field("origin", &set.origin)
            .field("hosts", &set.endpoints.len())
            .field("invalid", &self.invalid_hosts().len())
            .finish_non_exhaustive()
    }
}

/// Feeds a [`HostsProvider`] built with
/// [`manual`](HostsProviderBuilder::manual) its hosts.
#[derive(Clone)]
pub struct HostsUpdater {
    inner: Arc<Inner>,
}

impl HostsUpdater {
    /// Replaces the provider's hosts with `hosts` (duplicates dropped),
    /// keeping the invalidations and requests in flight of the hosts that
    /// stay.
    ///
    /// # Errors
    ///
    /// [`HostsError::Refused`] when `hosts` is empty and the provider has
    /// hosts from an earlier update: the previous hosts stay, and the
    /// refusal is logged and shown by
    /// [`source_status`](HostsProvider::source_status).
    pub fn update(&self, hosts: impl IntoIterator<Item = Endpoint>) -> Result<(), HostsError> {
        let hosts: Vec<Endpoint> = hosts.into_iter().collect();
        // Under the update lock, so the status follows the order of the
        // updates too.
        let _updates = lock(&self.inner.updates);
        let result = self.inner.apply_in_order(&hosts, Instant::now());
        let mut status = lock(&self.inner.status);
        match &result {
            Ok(()) => {
                status.last_loaded = Some(SystemTime::now());
                status.last_error = None;
            }
            Err(error) => {
                status.last_error = Some(error.to_string());
                status.failed_reloads += 1;
            }
        }
        result
    }
}

impl fmt::Debug for HostsUpdater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostsUpdater")
            .field("source", &self.inner.source_name)
            .finish_non_exhaustive()
    }
}

/// A host picked by [`HostsProvider::select`]: derefs to its [`Endpoint`],
/// and, when the provider selects by power of two choices, counts as a
/// request in flight to it until dropped. Keep it for the length of the
/// request.
pub struct HostLease {
    host: Arc<Host>,
    /// Whether it is counted in the host's requests in flight (only power
    /// of two choices reads them: other selectors save the two atomic
    /// writes every request would make to a line all callers share).
    counted: bool,
}

impl HostLease {
    fn new(host: &Arc<Host>, selector: Selector) -> Self {
        let counted = selector == Selector::PowerOfTwoChoices;
        if counted {
            host.in_flight.fetch_add(1, Relaxed);
        }
        HostLease {
            host: Arc::clone(host),
            counted,
        }
    }

    /// The host.
    pub fn endpoint(&self) -> &Endpoint {
        &self.host.endpoint
    }

    /// The host's socket address, when its name is an IP address (parsed
    /// once, when the host joined the list); `None` for a host name, which
    /// must be looked up.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host.address
    }
}

impl Deref for HostLease {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.host.endpoint
    }
}

impl Drop for HostLease {
    fn drop(&mut self) {
        if self.counted {
            self.host.in_flight.fetch_sub(1, Relaxed);
        }
    }
}

impl fmt::Display for HostLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.host.endpoint.fmt(f)
    }
}

impl fmt::Debug for HostLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HostLease")
            .field(&self.host.endpoint)
            .finish()
    }
}

/// One host in use. A host that stays in the list across updates keeps its
/// `Host` (so its invalidation and requests in flight); one that leaves
/// takes them along.
#[derive(Debug)]
struct Host {
    endpoint: Endpoint,
    /// The endpoint's address, when its host is an IP address.
    address: Option<SocketAddr>,
    /// Live [`HostLease`]s.
    in_flight: AtomicUsize,
    /// Until when the host is invalid, in nanoseconds since
    /// [`Inner::epoch`]; valid from then on (0: valid).
    invalid_until: AtomicU64,
}

impl Host {
    fn new(endpoint: Endpoint) -> Self {
        let address = endpoint
            .host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, endpoint.port));
        Host {
            endpoint,
            address,
            in_flight: AtomicUsize::new(0),
            invalid_until: AtomicU64::new(0),
        }
    }

    fn is_valid_at(&self, now: u64) -> bool {
        self.invalid_until.load(Relaxed) <= now
    }
}

/// The hosts in use, replaced as a whole on each change.
#[derive(Debug)]
struct HostSet {
    hosts: Vec<Arc<Host>>,
    endpoints: Arc<Vec<Endpoint>>,
    origin: HostsOrigin,
}

impl Default for HostSet {
    fn default() -> Self {
        HostSet {
            hosts: Vec::new(),
            endpoints: Arc::new(Vec::new()),
            origin: HostsOrigin::NoHosts,
        }
    }
}

/// What the clones of a provider (and its updater) share.
struct Inner {
    selector: Selector,
    /// In nanoseconds, like every instant here.
    retry_period: u64,
    max_invalid_fraction: f64,
    fallback: Vec<Endpoint>,
    source_name: String,
    /// The instant that `Host::invalid_until` counts from.
    epoch: Instant,
    hosts: ArcSwap<HostSet>,
    /// The round-robin counter.
    next: AtomicUsize,
    /// No host is invalid from this instant on (an upper bound of every
    /// `invalid_until`): until then selection looks at each host, after it
    /// at none.
    no_invalid_host_from: AtomicU64,
    /// Held to count and change invalidations, and to replace the host set,
    /// so the maximum fraction holds.
    invalidation: Mutex<()>,
    /// Held through an update and its callbacks, so the callbacks see the
    /// changes in order.
    updates: Mutex<()>,
    /// The status of a source that is not a file.
    status: Mutex<LoadStatus>,
    callbacks: Mutex<Vec<ChangeCallback>>,
    /// The source, when it is a serverset file; its change callback holds
    /// only a weak reference back.
    serverset: Option<ServerSetReader>,
}

impl Inner {
    fn nanos_at(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    fn select_at(&self, now: Instant, rng: &mut impl Rng) -> Result<HostLease, HostsError> {
        let set = self.hosts.load();
        let candidates = self.candidates(&set.hosts, self.nanos_at(now));
        if candidates.len == 0 {
            return Err(HostsError::NoHosts {
                source_name: self.source_name.clone(),
            });
        }
        let host = self.pick(candidates.len, |i| candidates.nth(i), rng);
        Ok(HostLease::new(host, self.selector))
    }

    /// One of `len` (> 0) candidates, the `i`th being `nth(i)`, as the
    /// selector picks.
    fn pick<'a>(
        &self,
        len: usize,
        nth: impl Fn(usize) -> &'a Arc<Host>,
        rng: &mut impl Rng,
    ) -> &'a Arc<Host> {
        match self.selector {
            Selector::Random => nth(rng.random_range(0..len)),
            Selector::RoundRobin => nth(self.next.fetch_add(1, Relaxed) % len),
            Selector::PowerOfTwoChoices if len == 1 => nth(0),
            Selector::PowerOfTwoChoices => {
                let first = rng.random_range(0..len);
                let mut second = rng.random_range(0..len - 1);
                if second >= first {
                    second += 1;
                }
                let (first, second) = (nth(first), nth(second));
                if second.in_flight.load(Relaxed) < first.in_flight.load(Relaxed) {
                    second
                } else {
                    first
                }
            }
        }
    }

    fn select_other_at(
        &self,
        tried: &[Endpoint],
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<HostLease, HostsError> {
        if tried.is_empty() {
            return self.select_at(now, rng);
        }
        let set = self.hosts.load();
        let now_nanos = self.nanos_at(now);
        let untried: Vec<&Arc<Host>> = set
            .hosts
            .iter()
            .filter(|host| !tried.contains(&host.endpoint))
            .collect();
        let healthy: Vec<&Arc<Host>> = untried
            .iter()
            .copied()
            .filter(|host| host.is_valid_at(now_nanos))
            .collect();
        let candidates = if healthy.is_empty() { untried } else { healthy };
        if candidates.is_empty() {
            return self.select_at(now, rng);
        }
        let host = self.pick(candidates.len(), |i| candidates[i], rng);
        Ok(HostLease::new(host, self.selector))
    }

    /// The hosts to pick from at `now`: the valid ones, or all of them when
    /// none is.
    fn candidates<'a>(&self, hosts: &'a [Arc<Host>], now: u64) -> Candidates<'a> {
        let all = Candidates {
            hosts,
            now,
            len: hosts.len(),
            only_valid: false,
        };
        if now >= self.no_invalid_host_from.load(Relaxed) {
            return all;
        }
        match hosts.iter().filter(|host| host.is_valid_at(now)).count() {
            0 => all,
            valid => Candidates {
                len: valid,
                only_valid: true,
                ..all
            },
        }
    }

    fn invalidate_at(&self, endpoint: &Endpoint, now: Instant) -> bool {
        let _invalidation = lock(&self.invalidation);
        let set = self.hosts.load();
        let Some(host) = set.hosts.iter().find(|host| host.endpoint == *endpoint) else {
            tracing::debug!(source = %self.source_name, host = %endpoint, "not invalidating a host that is not in use");
            return false;
        };
        let now = self.nanos_at(now);
        let until = now.saturating_add(self.retry_period);
        if until <= now {
            return false;
        }
        if host.is_valid_at(now) {
            let invalid = set.hosts.iter().filter(|h| !h.is_valid_at(now)).count();
            let allowed = max_invalid(self.max_invalid_fraction, set.hosts.len());
            if invalid >= allowed {
                tracing::debug!(
                    source = %self.source_name,
                    host = %endpoint,
                    invalid,
                    hosts = set.hosts.len(),
                    "not invalidating the host: as many hosts as allowed are invalid already"
                );
                return false;
            }
            tracing::info!(
                source = %self.source_name,
                host = %endpoint,
                retry_in = ?Duration::from_nanos(self.retry_period),
                "invalidated the host"
            );
        }
        host.invalid_until.store(until, Relaxed);
        self.no_invalid_host_from.fetch_max(until, Relaxed);
        true
    }

    fn hosts_where(&self, now: Instant, valid: bool) -> Vec<Endpoint> {
        let now = self.nanos_at(now);
        self.hosts
            .load()
            .hosts
            .iter()
            .filter(|host| host.is_valid_at(now) == valid)
            .map(|host| host.endpoint.clone())
            .collect()
    }

    /// Makes `source` (the source's new hosts) the hosts in use, or the
    /// fallback when it is empty, then runs the change callbacks.
    fn apply(&self, source: &[Endpoint], now: Instant) -> Result<(), HostsError> {
        let _updates = lock(&self.updates);
        self.apply_in_order(source, now)
    }

    /// Applies the serverset file's current hosts, which the change
    /// callback may have missed while the provider was being built. Under
    /// the update lock, so an older snapshot cannot overwrite a newer one
    /// the watcher applies meanwhile.
    fn catch_up_with_serverset(&self) {
        let _updates = lock(&self.updates);
        if let Some(reader) = &self.serverset {
            let _ = self.apply_in_order(&reader.endpoints(), Instant::now());
        }
    }

    /// [`apply`](Self::apply), with the update lock held.
    fn apply_in_order(&self, source: &[Endpoint], now: Instant) -> Result<(), HostsError> {
        let endpoints = {
            let _invalidation = lock(&self.invalidation);
            let current = self.hosts.load_full();
            if source.is_empty() && current.origin == HostsOrigin::Source {
                let error = HostsError::Refused {
                    source_name: self.source_name.clone(),
                    reason: format!(
                        "the update empties the hosts; keeping its {} hosts",
                        current.hosts.len()
                    ),
                };
                tracing::warn!(%error, "keeping the previous hosts");
                return Err(error);
            }
            let (endpoints, origin) = if !source.is_empty() {
                (dedup(source), HostsOrigin::Source)
            } else if !self.fallback.is_empty() {
                (self.fallback.clone(), HostsOrigin::Fallback)
            } else {
                (Vec::new(), HostsOrigin::NoHosts)
            };
            if *current.endpoints == endpoints && current.origin == origin {
                return Ok(());
            }
            let mut kept: HashMap<&Endpoint, &Arc<Host>> = current
                .hosts
                .iter()
                .map(|host| (&host.endpoint, host))
                .collect();
            let hosts: Vec<Arc<Host>> = endpoints
                .iter()
                .map(|endpoint| match kept.remove(endpoint) {
                    Some(host) => Arc::clone(host),
                    None => Arc::new(Host::new(endpoint.clone())),
                })
                .collect();
            self.end_invalidations_past_the_maximum(&hosts, self.nanos_at(now));
            let endpoints = Arc::new(endpoints);
            self.hosts.store(Arc::new(HostSet {
                hosts,
                endpoints: Arc::clone(&endpoints),
                origin,
            }));
            if origin != current.origin {
                tracing::info!(source = %self.source_name, ?origin, "the hosts in use changed origin");
            }
            endpoints
        };
        let callbacks = lock(&self.callbacks).clone();
        for callback in callbacks {
            if catch_unwind(AssertUnwindSafe(|| callback(&endpoints))).is_err() {
                tracing::warn!(source = %self.source_name, "a hosts change callback panicked");
            }
        }
        Ok(())
    }

    /// Revalidates the hosts invalidated first until no more than the
    /// maximum fraction of `hosts` is invalid: a shorter list allows fewer.
    fn end_invalidations_past_the_maximum(&self, hosts: &[Arc<Host>], now: u64) {
        let mut invalid: Vec<&Arc<Host>> = hosts.iter().filter(|h| !h.is_valid_at(now)).collect();
        let allowed = max_invalid(self.max_invalid_fraction, hosts.len());
        if invalid.len() <= allowed {
            return;
        }
        invalid.sort_by_key(|host| host.invalid_until.load(Relaxed));
        for host in &invalid[..invalid.len() - allowed] {
            host.invalid_until.store(0, Relaxed);
            tracing::info!(
                source = %self.source_name,
                host = %host.endpoint,
                "revalidated the host: the shorter list allows fewer invalid hosts"
            );
        }
    }
}

/// The hosts a selector picks from: the first `len` valid ones of `hosts`,
/// or all of `hosts`.
struct Candidates<'a> {
    hosts: &'a [Arc<Host>],
    now: u64,
    len: usize,
    only_valid: bool,
}

impl<'a> Candidates<'a> {
    /// The `index`th candidate, `index < len`.
    fn nth(&self, index: usize) -> &'a Arc<Host> {
        if !self.only_valid {
            return &self.hosts[index];
        }
        self.hosts
            .iter()
            .filter(|host| host.is_valid_at(self.now))
            .nth(index)
            // A host invalidated since the candidates were counted: any
            // host will do for this once.
            .unwrap_or_else(|| &self.hosts[index % self.hosts.len()])
    }
}

/// ⌊`fraction` × `hosts`⌋, robust to the product landing a hair under an
/// integer (0.29 × 100 is 28.999999999999996 in floating point).
fn max_invalid(fraction: f64, hosts: usize) -> usize {
    (fraction * hosts as f64 + 1e-9).floor() as usize
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `endpoints` without repetitions, in order.
fn dedup(endpoints: &[Endpoint]) -> Vec<Endpoint> {
    let mut seen = HashSet::new();
    endpoints
        .iter()
        .filter(|endpoint| seen.insert(*endpoint))
        .cloned()
        .collect()
}

/// Locks `mutex`, also after a panic elsewhere: every value behind these
/// locks stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn endpoints(n: u16) -> Vec<Endpoint> {
        (1..=n)
            .map(|port| Endpoint::new("10.0.0.1", port))
            .collect()
    }

    fn provider(selector: Selector, hosts: &[Endpoint]) -> HostsProvider {
        HostsProvider::builder()
            .selector(selector)
            .retry_period(Duration::from_secs(30))
            .static_hosts(hosts.to_vec())
    }

    fn at(provider: &HostsProvider, seconds: u64) -> Instant {
        provider.inner.epoch + Duration::from_secs(seconds)
    }

    fn pick(provider: &HostsProvider, now: Instant, rng: &mut StdRng) -> Endpoint {
        provider
            .inner
            .select_at(now, rng)
            .unwrap()
            .endpoint()
            .clone()
    }

    fn invalidate(provider: &HostsProvider, host: &Endpoint, now: Instant) -> bool {
        provider.inner.invalidate_at(host, now)
    }

    #[test]
    fn the_maximum_is_the_floor_of_the_fraction_of_the_hosts() {
        assert_eq!(max_invalid(0.2, 4), 0);
        assert_eq!(max_invalid(0.2, 5), 1);
        assert_eq!(max_invalid(0.2, 10), 2);
        assert_eq!(max_invalid(0.2, 14), 2);
        assert_eq!(max_invalid(0.29, 100), 29);
        assert_eq!(max_invalid(0.0, 100), 0);
        assert_eq!(max_invalid(1.0, 3), 3);
        assert_eq!(max_invalid(0.2, 0), 0);
    }

    #[test]
    fn no_host_of_four_can_be_invalidated_at_the_default_fraction() {
        let hosts = endpoints(4);
        let p = provider(Selector::Random, &hosts);
        assert!(!invalidate(&p, &hosts[0], at(&p, 0)));
        assert!(p.invalid_hosts().is_empty());
    }

    #[test]
    fn two_hosts_of_ten_can_be_invalidated_and_not_a_third() {
        let hosts = endpoints(10);
        let p = provider(Selector::Random, &hosts);
        let now = at(&p, 0);
        assert!(invalidate(&p, &hosts[0], now));
        assert!(invalidate(&p, &hosts[1], now));
        assert!(!invalidate(&p, &hosts[2], now), "a third is past 20%");
        assert!(
            invalidate(&p, &hosts[1], now),
            "an invalid host can be invalidated again"
        );
        assert_eq!(p.inner.hosts_where(now, false), &hosts[..2]);
        assert_eq!(p.inner.hosts_where(now, true), &hosts[2..]);
    }

    #[test]
    fn unknown_hosts_a_zero_fraction_and_a_zero_period_invalidate_nothing() {
        let hosts = endpoints(10);
        let p = provider(Selector::Random, &hosts);
        assert!(!invalidate(&p, &Endpoint::new("elsewhere", 1), at(&p, 0)));

        let none = HostsProvider::builder()
            .max_invalid_fraction(0.0)
            .static_hosts(hosts.clone());
        assert!(!invalidate(&none, &hosts[0], at(&none, 0)));

        let never = HostsProvider::builder()
            .retry_period(Duration::ZERO)
            .static_hosts(hosts.clone());
        assert!(!invalidate(&never, &hosts[0], at(&never, 0)));
        assert!(never.invalid_hosts().is_empty());
    }

    #[test]
    #[should_panic(expected = "max_invalid_fraction")]
    fn a_fraction_past_one_is_a_programming_error() {
        let _ = HostsProvider::builder().max_invalid_fraction(1.5);
    }

    #[test]
    fn an_invalidation_ends_after_the_retry_period() {
        let hosts = endpoints(5);
        let p = provider(Selector::RoundRobin, &hosts);
        assert!(invalidate(&p, &hosts[0], at(&p, 10)));
        let just_before = at(&p, 40) - Duration::from_nanos(1);
        assert_eq!(p.inner.hosts_where(just_before, false), [hosts[0].clone()]);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            assert_ne!(pick(&p, just_before, &mut rng), hosts[0]);
        }
        assert!(p.inner.hosts_where(at(&p, 40), false).is_empty());
        let picked: HashSet<_> = (0..5).map(|_| pick(&p, at(&p, 40), &mut rng)).collect();
        assert!(picked.contains(&hosts[0]));
        // Its slot is free again: another host can be invalidated.
        assert!(invalidate(&p, &hosts[1], at(&p, 40)));
    }

    #[test]
    fn round_robin_cycles_through_the_valid_hosts() {
        let hosts = endpoints(3);
        let p = HostsProvider::builder()
            .selector(Selector::RoundRobin)
            .max_invalid_fraction(0.5)
            .static_hosts(hosts.clone());
        let mut rng = StdRng::seed_from_u64(1);
        let now = at(&p, 0);
        let picks: Vec<_> = (0..6).map(|_| pick(&p, now, &mut rng)).collect();
        let start = hosts.iter().position(|h| *h == picks[0]).unwrap();
        for (i, picked) in picks.iter().enumerate() {
            assert_eq!(*picked, hosts[(start + i) % 3]);
        }

        assert!(invalidate(&p, &hosts[1], now));
        let picks: Vec<_> = (0..4).map(|_| pick(&p, now, &mut rng)).collect();
        assert!(!picks.contains(&hosts[1]));
        assert!(picks.windows(2).all(|pair| pair[0] != pair[1]), "{picks:?}");
    }

    #[test]
    fn select_other_avoids_the_tried_hosts_then_the_invalid_ones() {
        let hosts = endpoints(4);
        for selector in [
            Selector::Random,
            Selector::RoundRobin,
            Selector::PowerOfTwoChoices,
        ] {
            let p = HostsProvider::builder()
                .selector(selector)
                .max_invalid_fraction(0.5)
                .static_hosts(hosts.clone());
            let mut rng = StdRng::seed_from_u64(3);
            let now = at(&p, 0);
            assert!(invalidate(&p, &hosts[2], now));
            let tried = [hosts[0].clone(), hosts[1].clone()];
            for _ in 0..50 {
                let other = p.inner.select_other_at(&tried, now, &mut rng).unwrap();
                assert_eq!(
                    *other, hosts[3],
                    "{selector:?}: the one healthy untried host"
                );
            }
            // Only an invalid host is untried: it is picked before a tried one.
            let tried = [hosts[0].clone(), hosts[1].clone(), hosts[3].clone()];
            let other = p.inner.select_other_at(&tried, now, &mut rng).unwrap();
            assert_eq!(*other, hosts[2], "{selector:?}");
            // Every host tried: any host, as `select` picks.
            let other = p.inner.select_other_at(&hosts, now, &mut rng).unwrap();
            assert!(hosts.contains(&other));
        }
    }

    #[test]
    fn random_covers_every_valid_host() {
        let hosts = endpoints(5);
        let p = provider(Selector::Random, &hosts);
        let mut rng = StdRng::seed_from_u64(7);
        let now = at(&p, 0);
        let mut counts: HashMap<Endpoint, usize> = HashMap::new();
        for _ in 0..1000 {
            *counts.entry(pick(&p, now, &mut rng)).or_default() += 1;
        }
        assert_eq!(counts.len(), 5);
        assert!(counts.values().all(|&n| n > 100), "{counts:?}");

        assert!(invalidate(&p, &hosts[2], now));
        let picked: HashSet<_> = (0..200).map(|_| pick(&p, now, &mut rng)).collect();
        assert_eq!(picked.len(), 4);
        assert!(!picked.contains(&hosts[2]));
    }

    #[test]
    fn power_of_two_choices_prefers_the_host_with_fewer_requests_in_flight() {
        let hosts = endpoints(2);
        let p = provider(Selector::PowerOfTwoChoices, &hosts);
        let mut rng = StdRng::seed_from_u64(3);
        let now = at(&p, 0);
        let busy = p.inner.select_at(now, &mut rng).unwrap();
        let idle = hosts.iter().find(|h| **h != *busy).unwrap().clone();
        for _ in 0..20 {
            assert_eq!(pick(&p, now, &mut rng), idle);
        }
        let on_idle = p.inner.select_at(now, &mut rng).unwrap();
        assert_eq!(*on_idle, idle);
        drop(busy);
        for _ in 0..20 {
            assert_ne!(
                pick(&p, now, &mut rng),
                idle,
                "one in flight on it, none on the other"
            );
        }
    }

    #[test]
    fn power_of_two_choices_skips_invalid_hosts_and_works_with_one_host() {
        let hosts = endpoints(5);
        let p = provider(Selector::PowerOfTwoChoices, &hosts);
        let mut rng = StdRng::seed_from_u64(5);
        let now = at(&p, 0);
        assert!(invalidate(&p, &hosts[4], now));
        let picked: HashSet<_> = (0..200).map(|_| pick(&p, now, &mut rng)).collect();
        assert_eq!(picked.len(), 4);

        let one = provider(Selector::PowerOfTwoChoices, &hosts[..1]);
        assert_eq!(pick(&one, at(&one, 0), &mut rng), hosts[0]);
    }

    #[test]
    fn every_host_invalid_still_selects_one() {
        let hosts = endpoints(2);
        let p = HostsProvider::builder()
            .max_invalid_fraction(1.0)
            .static_hosts(hosts.clone());
        let now = at(&p, 0);
        assert!(invalidate(&p, &hosts[0], now) && invalidate(&p, &hosts[1], now));
        let mut rng = StdRng::seed_from_u64(1);
        let picked: HashSet<_> = (0..100).map(|_| pick(&p, now, &mut rng)).collect();
        assert_eq!(picked.len(), 2);
    }

    #[test]
    fn leases_count_requests_in_flight_across_updates() {
        let hosts = endpoints(1);
        let (p, updater) = HostsProvider::builder()
            .selector(Selector::PowerOfTwoChoices)
            .manual();
        updater.update(hosts.clone()).unwrap();
        let lease = p.select().unwrap();
        let host = Arc::clone(&p.inner.hosts.load().hosts[0]);
        assert_eq!(host.in_flight.load(Relaxed), 1);
        updater.update(endpoints(2)).unwrap();
        assert!(
            Arc::ptr_eq(&host, &p.inner.hosts.load().hosts[0]),
            "the host stays"
        );
        drop(lease);
        assert_eq!(host.in_flight.load(Relaxed), 0);
    }

    #[test]
    fn a_host_that_leaves_loses_its_invalidation() {
        let hosts = endpoints(5);
        let (p, updater) = HostsProvider::builder().manual();
        updater.update(hosts.clone()).unwrap();
        let now = at(&p, 0);
        assert!(invalidate(&p, &hosts[0], now));
        updater.update(endpoints(6)[1..].to_vec()).unwrap();
        assert!(p.inner.hosts_where(now, false).is_empty());
        updater.update(hosts.clone()).unwrap();
        assert!(
            p.inner.hosts_where(now, false).is_empty(),
            "back, but valid"
        );
    }

    #[test]
    fn a_host_that_stays_keeps_its_invalidation() {
        let hosts = endpoints(5);
        let (p, updater) = HostsProvider::builder().manual();
        updater.update(hosts.clone()).unwrap();
        let now = at(&p, 0);
        assert!(invalidate(&p, &hosts[0], now));
        updater.update(endpoints(6)).unwrap();
        assert_eq!(p.inner.hosts_where(now, false), [hosts[0].clone()]);
    }

    #[test]
    fn a_shorter_list_ends_the_oldest_invalidations_past_the_maximum() {
        let hosts = endpoints(10);
        let (p, updater) = HostsProvider::builder().manual();
        updater.update(hosts.clone()).unwrap();
        assert!(invalidate(&p, &hosts[0], at(&p, 1)));
        assert!(invalidate(&p, &hosts[1], at(&p, 2)));
        let now = at(&p, 3);
        p.inner.apply(&hosts[..5], now).unwrap();
        assert_eq!(
            p.inner.hosts_where(now, false),
            [hosts[1].clone()],
            "1 of 5"
        );
    }

    #[test]
    fn an_empty_update_is_refused_and_the_fallback_covers_an_empty_source() {
        let fallback = vec![Endpoint::new("fallback", 80)];
        let (p, updater) = HostsProvider::builder().fallback(fallback.clone()).manual();
        assert_eq!(
            (p.origin(), &*p.hosts()),
            (HostsOrigin::Fallback, &fallback)
        );
        assert!(p.source_status().last_loaded.is_none());

        updater.update(endpoints(2)).unwrap();
        assert_eq!(
            (p.origin(), &*p.hosts()),
            (HostsOrigin::Source, &endpoints(2))
        );

        let error = updater.update([]).unwrap_err();
        assert!(matches!(error, HostsError::Refused { .. }), "{error}");
        assert!(error.to_string().contains("keeping its 2 hosts"), "{error}");
        assert_eq!(
            (p.origin(), &*p.hosts()),
            (HostsOrigin::Source, &endpoints(2))
        );
        let status = p.source_status();
        assert_eq!(status.failed_reloads, 1);
        assert!(status.last_error.is_some() && status.last_loaded.is_some());

        updater.update(endpoints(1)).unwrap();
        assert!(p.source_status().last_error.is_none());
    }

    #[test]
    fn no_hosts_anywhere_fails_selection_with_the_source_named() {
        let (p, _updater) = HostsProvider::builder().manual();
        assert_eq!(p.origin(), HostsOrigin::NoHosts);
        let error = p.select().unwrap_err();
        assert_eq!(
            error.to_string(),
            "no host to select: updates through a HostsUpdater has none and there is no fallback list"
        );
    }

    #[test]
    fn duplicates_count_once() {
        let p = provider(Selector::Random, &[endpoints(1), endpoints(1)].concat());
        assert_eq!(*p.hosts(), endpoints(1));
    }

    #[test]
    fn change_callbacks_see_each_new_list() {
        let (p, updater) = HostsProvider::builder().manual();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        p.on_change(move |hosts| lock(&sink).push(hosts.len()));
        p.on_change(|_| panic!("a broken callback"));
        updater.update(endpoints(1)).unwrap();
        updater.update(endpoints(1)).unwrap();
        updater.update(endpoints(3)).unwrap();
        assert_eq!(*lock(&seen), [1, 3], "an unchanged list is no change");
    }

    #[test]
    fn providers_are_shared_between_threads() {
        fn shared<T: Send + Sync + Clone>() {}
        shared::<HostsProvider>();
        shared::<HostsUpdater>();
        fn sendable<T: Send + Sync>() {}
        sendable::<HostLease>();
    }
}

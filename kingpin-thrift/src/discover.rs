//! [`ServersetDiscover`]: a service's serverset — a serverset file the
//! monitor keeps, or the coordinator itself — as a volo [`Discover`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use kingpin_api::discovery::{HostsFollower, ServerSet};
use kingpin_client::{Endpoint, HostsProvider, HostsProviderBuilder};
use volo::context::Endpoint as VoloEndpoint;
use volo::discovery::{diff_address, Change, Discover, Instance};
use volo::loadbalance::error::LoadBalanceError;
use volo::net::Address;

/// How long a host name's address is reused before it is looked up again.
const RESOLVED_FOR: Duration = Duration::from_secs(30);

/// The hosts of one service, from a [`HostsProvider`], as a volo
/// [`Discover`].
///
/// The [`Client`](crate::ClientBuilder) picks a host per call through the
/// provider itself (its selector, its invalidations: a host the client
/// gives up on is skipped by every clone of the provider); the `Discover`
/// view also lets a plain volo client use a serverset:
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use kingpin_thrift::ServersetDiscover;
///
/// // The file the monitor keeps for `discovery.ping.prod`.
/// let ping = ServersetDiscover::file("/var/serverset/discovery.ping.prod")?;
/// println!("{} hosts", ping.hosts().hosts().len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServersetDiscover {
    shared: Arc<Shared>,
}

struct Shared {
    hosts: HostsProvider,
    resolver: Resolver,
    /// Tells the task that broadcasts changes that the hosts changed.
    changed: tokio::sync::watch::Sender<()>,
    /// The broadcast, started by the first [`Discover::watch`].
    changes: OnceLock<async_broadcast::InactiveReceiver<Change<()>>>,
    /// Keeps a coordinator-fed provider up to date.
    _follower: Option<HostsFollower>,
}

impl ServersetDiscover {
    /// The hosts `hosts` provides.
    pub fn new(hosts: HostsProvider) -> Self {
        Self::with_follower(hosts, None)
    }

    fn with_follower(hosts: HostsProvider, follower: Option<HostsFollower>) -> Self {
        let (changed, _) = tokio::sync::watch::channel(());
        let notify = changed.clone();
        hosts.on_change(move |_| notify.send_replace(()));
        ServersetDiscover {
            shared: Arc::new(Shared {
                hosts,
                resolver: Resolver::default(),
                changed,
                changes: OnceLock::new(),
                _follower: follower,
            }),
        }
    }

    /// The hosts in a serverset file (one `host:port` a line, as the
    /// monitor writes it), followed as it changes; a host the client gives
    /// up on is skipped for 30 s, at most half of them at once.
    ///
    /// # Errors
    ///
    /// The file's path is not usable (see
    /// [`HostsProviderBuilder::serverset_file`]). A missing file is not an
    /// error: calls fail with "no host" until it appears.
    pub fn file(path: impl Into<PathBuf>) -> kingpin_client::Result<Self> {
        Ok(Self::new(default_hosts().serverset_file(path)?))
    }

    /// The alive members of `serverset`, read from the coordinator and
    /// followed through its watch, for a process that has a coordinator
    /// session and does not want to wait for the monitor's file.
    ///
    /// # Errors
    ///
    /// The coordinator's, for the first read of the members.
    pub async fn coordinator(serverset: &ServerSet) -> kingpin_api::Result<Self> {
        Self::coordinator_with(serverset, default_hosts()).await
    }

    /// [`coordinator`](Self::coordinator) with the provider's options
    /// (selector, invalidation, fallback) from `builder`.
    ///
    /// # Errors
    ///
    /// As [`coordinator`](Self::coordinator).
    pub async fn coordinator_with(
        serverset: &ServerSet,
        builder: HostsProviderBuilder,
    ) -> kingpin_api::Result<Self> {
        let (hosts, follower) = serverset.hosts_provider(builder).await?;
        Ok(Self::with_follower(hosts, Some(follower)))
    }

    /// The provider the hosts come from: its selection and invalidations
    /// are the client's.
    pub fn hosts(&self) -> &HostsProvider {
        &self.shared.hosts
    }

    /// The socket address of `endpoint`: parsed when it is an IP address,
    /// else looked up (and reused for 30 s).
    pub(crate) async fn resolve(&self, endpoint: &Endpoint) -> io::Result<SocketAddr> {
        self.shared.resolver.resolve(endpoint).await
    }

    async fn instances(&self) -> Vec<Arc<Instance>> {
        let mut instances = Vec::new();
        for endpoint in self.shared.hosts.hosts().iter() {
            match self.resolve(endpoint).await {
                Ok(address) => instances.push(Arc::new(Instance {
                    address: Address::Ip(address),
                    weight: 1,
                    tags: HashMap::new(),
                })),
                Err(error) => {
                    tracing::warn!(host = %endpoint, %error, "leaving out a host whose name does not resolve");
                }
            }
        }
        instances
    }
}

/// The provider options a Thrift client starts from: a host that fails is
/// skipped for 30 s, and up to half the hosts may be skipped, so that one
/// dead server of three is avoided too (the provider's own default, a
/// fifth, allows none of three).
pub fn default_hosts() -> HostsProviderBuilder {
    HostsProvider::builder().max_invalid_fraction(0.5)
}

impl std::fmt::Debug for ServersetDiscover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServersetDiscover")
            .field("hosts", &self.shared.hosts)
            .finish_non_exhaustive()
    }
}

impl Discover for ServersetDiscover {
    type Key = ();
    type Error = LoadBalanceError;

    async fn discover<'s>(
        &'s self,
        _endpoint: &'s VoloEndpoint,
    ) -> Result<Vec<Arc<Instance>>, Self::Error> {
        Ok(self.instances().await)
    }

    fn key(&self, _endpoint: &VoloEndpoint) {}

    fn watch(&self, _keys: Option<&[()]>) -> Option<async_broadcast::Receiver<Change<()>>> {
        let changes = self.shared.changes.get_or_init(|| {
            let (mut sender, receiver) = async_broadcast::broadcast(16);
            // A slow subscriber misses old changes, not new ones: each
            // change carries the whole list.
            sender.set_overflow(true);
            let changed = self.shared.changed.subscribe();
            tokio::spawn(broadcast_changes(
                Arc::downgrade(&self.shared),
                changed,
                sender,
            ));
            receiver.deactivate()
        });
        Some(changes.activate_cloned())
    }
}

async fn broadcast_changes(
    discover: Weak<Shared>,
    mut changed: tokio::sync::watch::Receiver<()>,
    sender: async_broadcast::Sender<Change<()>>,
) {
    // The first round announces every host as added.
    let mut previous = Vec::new();
    loop {
        // Ends once every clone of the discover is gone.
        let Some(shared) = discover.upgrade() else {
            return;
        };
        let next = ServersetDiscover { shared }.instances().await;
        let (change, differs) = diff_address((), previous, next.clone());
        previous = next;
        if differs && sender.broadcast(change).await.is_err() {
            return;
        }
        if changed.changed().await.is_err() {
            return;
        }
    }
}

/// Looks host names up, keeping each answer for [`RESOLVED_FOR`].
#[derive(Default)]
struct Resolver {
    names: Mutex<HashMap<Endpoint, (SocketAddr, Instant)>>,
}

impl Resolver {
    async fn resolve(&self, endpoint: &Endpoint) -> io::Result<SocketAddr> {
        if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, endpoint.port));
        }
        let now = Instant::now();
        if let Some((address, at)) = self.lock().get(endpoint) {
            if now.duration_since(*at) < RESOLVED_FOR {
                return Ok(*address);
            }
        }
        let address = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} has no address", endpoint.host),
                )
            })?;
        self.lock().insert(endpoint.clone(), (address, now));
        Ok(address)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Endpoint, (SocketAddr, Instant)>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn discover_lists_the_hosts_and_watch_follows_them() {
        let (hosts, updater) = default_hosts().manual();
        updater
            .update([endpoint("127.0.0.1:9001"), endpoint("127.0.0.1:9002")])
            .unwrap();
        let discover = ServersetDiscover::new(hosts);
        let callee = VoloEndpoint::new("ping".into());
        let found = discover.discover(&callee).await.unwrap();
        let addresses: Vec<_> = found.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(addresses, ["127.0.0.1:9001", "127.0.0.1:9002"]);

        let names = |list: &[Arc<Instance>]| -> Vec<String> {
            list.iter().map(|i| i.address.to_string()).collect()
        };
        let mut changes = discover.watch(None).unwrap();
        // A subscription starts with every host added.
        let first = next_change(&mut changes).await;
        assert_eq!(names(&first.added), ["127.0.0.1:9001", "127.0.0.1:9002"]);

        updater
            .update([endpoint("127.0.0.1:9002"), endpoint("[::1]:9003")])
            .unwrap();
        let change = next_change(&mut changes).await;
        assert_eq!(names(&change.added), ["[::1]:9003"]);
        assert_eq!(names(&change.removed), ["127.0.0.1:9001"]);
        assert_eq!(names(&change.all), ["127.0.0.1:9002", "[::1]:9003"]);
    }

    async fn next_change(changes: &mut async_broadcast::Receiver<Change<()>>) -> Change<()> {
        tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("a change within 10 s")
            .unwrap()
    }

    #[tokio::test]
    async fn host_names_resolve() {
        let resolver = Resolver::default();
        let address = resolver.resolve(&endpoint("localhost:7")).await.unwrap();
        assert!(address.ip().is_loopback());
        assert_eq!(address.port(), 7);
        let error = resolver
            .resolve(&endpoint("no-such-host.invalid:7"))
            .await
            .unwrap_err();
        assert!(!error.to_string().is_empty());
    }
}

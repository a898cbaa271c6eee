//! [`ClientBuilder`]: a generated volo-thrift client that finds its
//! servers through a serverset, pools connections, retries and counts.

use std::time::Duration;

use volo::layer::Identity;
use volo::loadbalance::random::WeightedRandomBalance;
use volo::loadbalance::{CustomLayer, LbConfig};
use volo::net::dial::DefaultMakeTransport;
use volo::service::BoxCloneService;
use volo::FastStr;
use volo_thrift::codec::default::framed::MakeFramedCodec;
use volo_thrift::codec::default::thrift::MakeThriftCodec;
use volo_thrift::codec::default::ttheader::MakeTTHeaderCodec;
use volo_thrift::codec::DefaultMakeCodec;
use volo_thrift::context::ClientContext;
use volo_thrift::transport::pool;
use volo_thrift::{ClientError, EntryMessage};

use crate::balance::{BalanceLayer, CallSettings};
use crate::metrics::ClientMetrics;
use crate::recycle::{Recycle, RecyclingMakeCodec};
use crate::retry::{RetryBudget, RetryPolicy};
use crate::ServersetDiscover;

/// How messages are delimited on the connection; both carry Thrift's
/// binary protocol, as Apache Thrift's `TFramedTransport` and
/// `TBufferedTransport` do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// Each message after its length in 4 bytes (`TFramedTransport`):
    /// what non-blocking Thrift servers require.
    #[default]
    Framed,
    /// Messages back to back (`TBufferedTransport`): what Python's
    /// `TSimpleServer` / `TThreadedServer` speak by default.
    Buffered,
}

/// The builder a volo-generated `XxxClientBuilder::new(name)` returns.
pub type GeneratedBuilder<C, Req, Resp> = volo_thrift::client::ClientBuilder<
    Identity,
    Identity,
    C,
    Req,
    Resp,
    DefaultMakeTransport,
    DefaultMakeCodec<MakeTTHeaderCodec<MakeFramedCodec<MakeThriftCodec>>>,
    LbConfig<WeightedRandomBalance<()>, volo::discovery::DummyDiscover>,
>;

/// The client a generated builder makes, as [`ClientBuilder::build`]
/// returns it.
pub type BoxedService<Req, Resp> = BoxCloneService<ClientContext, Req, Option<Resp>, ClientError>;

/// Builds a volo-generated Thrift client that calls the hosts of a
/// serverset.
///
/// Each call picks a host through the serverset's
/// [`HostsProvider`](kingpin_client::HostsProvider) (random by default;
/// power of two choices or round robin as the provider is built), on a
/// pooled connection. A refused or broken connection, or an attempt past
/// its timeout, invalidates the host (every clone of the provider then
/// skips it for a while) and retries on a host not yet tried, with backoff
/// and jitter, within the [`RetryPolicy`], the [`RetryBudget`] and the
/// call's timeout. An answer — a result, a declared exception, an
/// application exception — is never retried. A call that gets no answer
/// fails with a [`CallFailure`](crate::CallFailure) naming every host
/// tried.
///
/// ```no_run
/// # use kingpin_thrift::{ClientBuilder, RetryPolicy, ServersetDiscover};
/// # use std::time::Duration;
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use kingpin_example_ping::gen::ping::{PingClientBuilder, PingRequest};
///
/// let servers = ServersetDiscover::file("/var/serverset/discovery.ping.prod")?;
/// let client = ClientBuilder::new(PingClientBuilder::new("ping"), servers)
///     .timeout(Duration::from_millis(500))
///     .retry(RetryPolicy::default().max_attempts(3))
///     .build();
/// let pong = client.ping(PingRequest { message: "hello".into() }).await?;
/// # Ok(())
/// # }
/// ```
pub struct ClientBuilder<C, Req, Resp> {
    generated: GeneratedBuilder<C, Req, Resp>,
    discover: ServersetDiscover,
    transport: Transport,
    policy: RetryPolicy,
    budget: Option<RetryBudget>,
    timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    connect_timeout: Duration,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    recycle: Recycle,
    metrics: Option<ClientMetrics>,
}

impl<C, Req, Resp> ClientBuilder<C, Req, Resp> {
    /// A client built by `generated` (e.g. `PingClientBuilder::new("ping")`,
    /// whose name labels the metrics) that calls the hosts `discover`
    /// finds. Defaults: framed transport, a 1 s timeout per call,
    /// [`RetryPolicy::default`] (3 attempts), [`RetryBudget::default`]
    /// (a fifth of the calls plus 10 a second), a 1 s connect timeout, up
    /// to 64 idle connections a host kept 60 s, [`Recycle::default`]
    /// (connections live about 10 minutes).
    pub fn new(generated: GeneratedBuilder<C, Req, Resp>, discover: ServersetDiscover) -> Self {
        ClientBuilder {
            generated,
            discover,
            transport: Transport::default(),
            policy: RetryPolicy::default(),
            budget: None,
            timeout: Some(Duration::from_secs(1)),
            attempt_timeout: None,
            connect_timeout: Duration::from_secs(1),
            max_idle_per_host: 64,
            idle_timeout: Duration::from_secs(60),
            recycle: Recycle::default(),
            metrics: None,
        }
    }

    /// Framed (the default) or buffered; the servers must speak the same.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The limit of a whole call, retries and backoff included (1 s by
    /// default); `None` for none.
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// The limit of each attempt; a timed-out attempt is retried on
    /// another host while the call's timeout allows. By default an
    /// attempt may take what is left of the call's timeout, so a slow
    /// host is not retried.
    pub fn attempt_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.attempt_timeout = timeout.into();
        self
    }

    /// How long opening a connection may take (1 s by default): a host
    /// that does not accept in time counts as a transport error.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// When to retry.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How many retries, across calls, this client may make; pass one
    /// budget to several clients to cap them together.
    pub fn retry_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The pool: how many idle connections to keep per host, and for how
    /// long an idle connection is kept.
    pub fn pool(mut self, max_idle_per_host: usize, idle_timeout: Duration) -> Self {
        self.max_idle_per_host = max_idle_per_host;
        self.idle_timeout = idle_timeout;
        self
    }

    /// When connections are closed and made anew.
    pub fn recycle(mut self, recycle: Recycle) -> Self {
        self.recycle = recycle;
        self
    }

    /// Where the calls are counted; by default in metrics of the client's
    /// own, which nobody reads.
    pub fn metrics(mut self, metrics: ClientMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The client. Needs a tokio runtime (volo's pool starts a task).
    pub fn build(self) -> C::Target
    where
        C: volo::client::MkClient<volo_thrift::Client<BoxedService<Req, Resp>>>,
        Req: EntryMessage + Clone + Send + Sync + 'static,
        Resp: EntryMessage + Clone + Send + Sync + 'static,
    {
        let metrics = self.metrics.unwrap_or_default();
        let service = FastStr::new(self.generated.get_callee_name());
        let recycled = metrics.recycled_counter(&service);
        let balance = BalanceLayer::new(CallSettings {
            service,
            discover: self.discover,
            policy: self.policy,
            budget: self.budget.unwrap_or_default(),
            timeout: self.timeout,
            attempt_timeout: self.attempt_timeout,
            metrics,
        });
        let generated = self
            .generated
            // The balance layer times each attempt and the whole call.
            .disable_timeout_layer()
            .connect_timeout(Some(self.connect_timeout))
            .pool_config(pool::Config::new(self.max_idle_per_host, self.idle_timeout))
            .mk_load_balance(CustomLayer(balance));
        match self.transport {
            Transport::Framed => generated
                .make_codec(RecyclingMakeCodec::new(
                    DefaultMakeCodec::framed(),
                    self.recycle,
                    recycled,
                ))
                .build(),
            Transport::Buffered => generated
                .make_codec(RecyclingMakeCodec::new(
                    DefaultMakeCodec::buffered(),
                    self.recycle,
                    recycled,
                ))
                .build(),
        }
    }
}

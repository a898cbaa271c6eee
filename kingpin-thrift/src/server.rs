//! [`ServerBuilder`]: serves a volo-thrift service and keeps it a member of
//! its serverset while it serves — KingPin recommended registering inside
//! the service process, and this is that registration.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kingpin_api::discovery::{Member, Membership, ServerSet};
use kingpin_client::Endpoint;
use tokio::net::TcpListener;
use tokio::sync::watch;
use volo::net::conn::Conn;
use volo::net::incoming::{Incoming, MakeIncoming};
use volo::Layer;
use volo_thrift::codec::MakeCodec;
use volo_thrift::context::ServerContext;
use volo_thrift::server::Server;
use volo_thrift::tracing::SpanProvider;
use volo_thrift::EntryMessage;

/// Why a server could not start or ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be listened on.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The advertised endpoint is not usable, or the host name is not
    /// known.
    #[error("cannot advertise the server: {0}")]
    Advertise(String),
    /// Joining the serverset failed; the server was stopped.
    #[error("cannot join the serverset: {0}")]
    Join(#[source] kingpin_api::Error),
    /// Leaving the serverset failed (the member still goes with the
    /// coordinator session).
    #[error("cannot leave the serverset: {0}")]
    Leave(#[source] kingpin_api::Error),
    /// The server failed while serving.
    #[error("the server failed: {0}")]
    Serve(String),
}

/// Options for serving a service in a serverset.
///
/// ```no_run
/// # async fn example(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>)
/// # -> Result<(), Box<dyn std::error::Error>> {
/// use kingpin_api::discovery::ServerSet;
/// use kingpin_example_ping::{gen::ping::PingServer, PingHandler};
/// use kingpin_thrift::ServerBuilder;
///
/// let serverset = ServerSet::new(coordinator, "ping", "prod")?;
/// let server = PingServer::new(PingHandler::new("a"));
/// let running = ServerBuilder::new(serverset)
///     .serve(server, "0.0.0.0:9090".parse()?)
///     .await?;
/// // Registered as <hostname>:9090 until SIGTERM, SIGINT or SIGHUP (or
/// // `running.stop()`): then it leaves, drains and stops.
/// running.wait().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    serverset: ServerSet,
    advertise: Option<Endpoint>,
    shard: Option<i32>,
    drain: Duration,
}

impl ServerBuilder {
    /// A server that will be a member of `serverset`.
    pub fn new(serverset: ServerSet) -> Self {
        ServerBuilder {
            serverset,
            advertise: None,
            shard: None,
            drain: Duration::from_secs(1),
        }
    }

    /// The `host:port` clients should call, as registered. By default the
    /// address listened on, or this machine's host name (with the port
    /// listened on) when that is `0.0.0.0` or `::`.
    pub fn advertise(mut self, endpoint: Endpoint) -> Self {
        self.advertise = Some(endpoint);
        self
    }

    /// The member's shard.
    pub fn shard(mut self, shard: i32) -> Self {
        self.shard = Some(shard);
        self
    }

    /// How long the server keeps answering after leaving the serverset,
    /// before it stops: the time its clients need to see it leave (1 s by
    /// default).
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Listens on `address` (port 0: any free port), serves `server`
    /// there, and joins the serverset once it accepts connections.
    ///
    /// volo's server answers framed, buffered (unframed) and TTHeader
    /// clients alike on the same port, with the binary or compact
    /// protocol, whatever its codec.
    ///
    /// # Errors
    ///
    /// [`ServeError::Bind`], [`ServeError::Advertise`], or
    /// [`ServeError::Join`] (the server is stopped again).
    pub async fn serve<S, L, Req, MkC, SP>(
        self,
        server: Server<S, L, Req, MkC, SP>,
        address: SocketAddr,
    ) -> Result<RunningServer, ServeError>
    where
        L: Layer<
                volo::service::BoxService<
                    ServerContext,
                    Req,
                    S::Response,
                    volo_thrift::ServerError,
                >,
            > + Send
            + 'static,
        MkC: MakeCodec<volo::net::conn::OwnedReadHalf, volo::net::conn::OwnedWriteHalf>
            + Send
            + Sync,
        L::Service: volo::Service<
                ServerContext,
                Req,
                Response = S::Response,
                Error = volo_thrift::ServerError,
            > + Send
            + Sync
            + 'static,
        S: volo::Service<ServerContext, Req, Error = volo_thrift::ServerError>
            + Send
            + Sync
            + 'static,
        S::Response: EntryMessage + Send + Sync + 'static,
        Req: EntryMessage + Send + 'static,
        SP: SpanProvider + Send + 'static,
    {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { address, source })?;
        let endpoint = match self.advertise {
            Some(endpoint) => endpoint,
            None => default_endpoint(local_addr)?,
        };
        let mut member = Member::new(endpoint.clone());
        if let Some(shard) = self.shard {
            member = member.with_shard(shard);
        }

        let membership: Arc<Mutex<Option<Membership>>> = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let leave_on_signal = Leaver {
            membership: Arc::clone(&membership),
            drain: self.drain,
        };
        let server = server.register_shutdown_hook(move || {
            Box::pin(async move {
                // A signal stopped the server: leave, then let the clients
                // see it before the connections close.
                if let Err(e) = leave_on_signal.leave_and_drain().await {
                    tracing::warn!(error = %e, "leaving the serverset at shutdown");
                }
            })
        });
        let incoming = StoppableIncoming { listener, stopped };
        let task = tokio::spawn(async move {
            server
                .run(incoming)
                .await
                .map_err(|e| ServeError::Serve(e.to_string()))
        });

        match self.serverset.join(member).await {
            Ok(joined) => {
                tracing::info!(serverset = %self.serverset.name(), %endpoint, "serving and registered");
                *lock(&membership) = Some(joined);
            }
            Err(e) => {
                stop.send_replace(true);
                let _ = task.await;
                return Err(ServeError::Join(e));
            }
        }
        Ok(RunningServer {
            local_addr,
            endpoint,
            leaver: Leaver {
                membership,
                drain: self.drain,
            },
            stop,
            task,
        })
    }
}

/// A server that is serving and registered.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    endpoint: Endpoint,
    leaver: Leaver,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// The address listened on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `host:port` registered.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Leaves the serverset, keeps answering for the drain time, then stops
    /// accepting and closes the connections (volo waits a moment for
    /// calls in progress).
    ///
    /// # Errors
    ///
    /// [`ServeError::Leave`] (the server is still stopped), or
    /// [`ServeError::Serve`].
    pub async fn stop(self) -> Result<(), ServeError> {
        let left = self.leaver.leave_and_drain().await;
        self.stop.send_replace(true);
        let served = join(self.task).await;
        left.and(served)
    }

    /// Waits until the server ends — on SIGTERM, SIGINT or SIGHUP, which
    /// volo's server handles: it leaves the serverset first and drains —
    /// and leaves if it has not.
    ///
    /// # Errors
    ///
    /// [`ServeError::Serve`], or [`ServeError::Leave`].
    pub async fn wait(self) -> Result<(), ServeError> {
        let served = join(self.task).await;
        let left = self.leaver.leave().await.map(drop);
        served.and(left)
    }
}

async fn join(task: tokio::task::JoinHandle<Result<(), ServeError>>) -> Result<(), ServeError> {
    match task.await {
        Ok(result) => result,
        Err(e) => Err(ServeError::Serve(e.to_string())),
    }
}

/// Takes the membership out once, for whichever of a signal or `stop`
/// comes first.
#[derive(Debug, Clone)]
struct Leaver {
    membership: Arc<Mutex<Option<Membership>>>,
    drain: Duration,
}

impl Leaver {
    async fn leave(&self) -> Result<bool, ServeError> {
        let taken = lock(&self.membership).take();
        match taken {
            Some(membership) => {
                membership.leave().await.map_err(ServeError::Leave)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn leave_and_drain(&self) -> Result<(), ServeError> {
        if self.leave().await? {
            tokio::time::sleep(self.drain).await;
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn default_endpoint(local: SocketAddr) -> Result<Endpoint, ServeError> {
    if !local.ip().is_unspecified() {
        return Ok(Endpoint::new(local.ip().to_string(), local.port()));
    }
    let name = nix::unistd::gethostname()
        .map_err(|e| ServeError::Advertise(format!("cannot read the host name: {e}")))?;
    let name = name.into_string().map_err(|name| {
        ServeError::Advertise(format!(
            "the host name {name:?} is not UTF-8; set advertise"
        ))
    })?;
    Ok(Endpoint::new(name, local.port()))
}

/// A listener that stops handing out connections when told, which ends
/// volo's accept loop the way a signal would.
#[derive(Debug)]
struct StoppableIncoming {
    listener: TcpListener,
    stopped: watch::Receiver<bool>,
}

impl MakeIncoming for StoppableIncoming {
    type Incoming = Self;

    async fn make_incoming(self) -> io::Result<Self> {
        Ok(self)
    }
}

impl Incoming for StoppableIncoming {
    async fn accept(&mut self) -> io::Result<Option<Conn>> {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => return Ok(Some(Conn::from(stream))),
                    // Out of descriptors, a connection reset before it was
                    // accepted...: the listener itself is fine.
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                changed = self.stopped.changed() => {
                    if changed.is_err() || *self.stopped.borrow() {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

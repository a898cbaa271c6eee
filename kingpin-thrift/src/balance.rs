//! Each call: pick a host from the serverset, try it within the attempt's
//! time, and on a transport error or a timeout skip that host and retry
//! another, as the policy, the budget and the call's timeout allow. It sits
//! where volo puts its load balancer, under the generated client.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kingpin_client::{Endpoint, HostLease};
use volo::context::Context;
use volo::net::Address;
use volo::{FastStr, Layer, Service};
use volo_thrift::context::ClientContext;
use volo_thrift::{ClientError, TransportException};

use crate::error::{AttemptFailure, CallFailure, FailureReason};
use crate::metrics::{ClientMetrics, ErrorKind};
use crate::retry::{RetryBudget, RetryPolicy};
use crate::ServersetDiscover;

/// What every clone of a client shares.
pub(crate) struct CallSettings {
    pub(crate) service: FastStr,
    pub(crate) discover: ServersetDiscover,
    pub(crate) policy: RetryPolicy,
    pub(crate) budget: RetryBudget,
    /// The whole call's limit, retries and backoff included.
    pub(crate) timeout: Option<Duration>,
    /// Each attempt's limit.
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) metrics: ClientMetrics,
}

#[derive(Clone)]
pub(crate) struct BalanceLayer {
    settings: Arc<CallSettings>,
}

impl BalanceLayer {
    pub(crate) fn new(settings: CallSettings) -> Self {
        BalanceLayer {
            settings: Arc::new(settings),
        }
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;

    fn layer(self, inner: S) -> Balance<S> {
        Balance {
            inner,
            settings: self.settings,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Balance<S> {
    inner: S,
    settings: Arc<CallSettings>,
}

/// How one attempt ended, when it did not answer.
enum Miss {
    /// Refused, not connected in time, or unresolvable: the request never
    /// left.
    Unsent(ClientError),
    /// Broken after the request may have been written: it may have reached
    /// the server.
    Broken(ClientError),
    /// No answer within the attempt's limit.
    Timeout(Duration),
}

impl Miss {
    /// Sorts an attempt's transport error by whether the request can have
    /// left: a connection that was never made carries none.
    fn transport(error: ClientError) -> Miss {
        use io::ErrorKind::*;
        match &error {
            ClientError::Transport(e)
                if matches!(
                    e.kind(),
                    ConnectionRefused
                        | TimedOut
                        | HostUnreachable
                        | NetworkUnreachable
                        | AddrNotAvailable
                ) =>
            {
                Miss::Unsent(error)
            }
            _ => Miss::Broken(error),
        }
    }

    /// Whether the server may have received the request.
    fn may_have_arrived(&self) -> bool {
        !matches!(self, Miss::Unsent(_))
    }
}

impl<Req, S> Service<ClientContext, Req> for Balance<S>
where
    Req: Clone + Send + Sync + 'static,
    S: Service<ClientContext, Req, Error = ClientError> + Send + Sync + 'static,
    S::Response: Send,
{
    type Response = S::Response;
    type Error = ClientError;

    /// The first attempt is made here; the retries, which most calls never
    /// need, on a future of their own so that this one stays small. The
    /// clock is read once on the way in and once on the way out.
    async fn call(&self, cx: &mut ClientContext, req: Req) -> Result<S::Response, ClientError> {
        let settings = &*self.settings;
        let started = Instant::now();
        settings.budget.deposit_at(started);
        let call = CallClock {
            started,
            deadline: settings.timeout.map(|limit| started + limit),
        };
        let lease = match settings.discover.hosts().select() {
            Ok(lease) => lease,
            Err(no_hosts) => {
                let failed = Failed::default();
                return Err(self.fail(
                    cx,
                    &call,
                    failed,
                    FailureReason::NoHosts(no_hosts.to_string()),
                ));
            }
        };
        // Kept for a retry, when the policy allows one.
        let spare = (settings.policy.attempts() > 1).then(|| req.clone());
        match self.attempt(cx, &lease, req, started, &call).await {
            Ok(answer) => self.answered(cx, &call, answer),
            Err(miss) => Box::pin(self.retry(cx, spare, &call, lease, miss)).await,
        }
    }
}

/// When a call started, and when it must end.
struct CallClock {
    started: Instant,
    deadline: Option<Instant>,
}

/// The attempts of a call that got no answer so far.
#[derive(Default)]
struct Failed {
    failures: Vec<AttemptFailure>,
    last_io_kind: Option<io::ErrorKind>,
}

impl<S> Balance<S> {
    /// After the first attempt missed: retries on other hosts while the
    /// policy, the budget and the call's time allow.
    async fn retry<Req>(
        &self,
        cx: &mut ClientContext,
        spare: Option<Req>,
        call: &CallClock,
        mut lease: HostLease,
        mut miss: Miss,
    ) -> Result<S::Response, ClientError>
    where
        Req: Clone,
        S: Service<ClientContext, Req, Error = ClientError>,
    {
        let settings = &*self.settings;
        let hosts = settings.discover.hosts();
        let method = cx.rpc_info().method().clone();
        let metrics = settings.metrics.method(&settings.service, &method);
        let mut failed = Failed::default();
        let mut backoff = settings.policy.backoff_schedule();
        let reason = loop {
            let kind = match &miss {
                Miss::Timeout(_) => ErrorKind::Timeout,
                Miss::Unsent(_) | Miss::Broken(_) => ErrorKind::Transport,
            };
            let may_have_arrived = miss.may_have_arrived();
            metrics.attempt_failed(kind);
            if hosts.invalidate(&lease) {
                metrics.invalidations.inc();
            }
            failed.record(lease.endpoint().clone(), miss);
            drop(lease);

            if kind == ErrorKind::Timeout && !settings.policy.retries_timeouts() {
                break FailureReason::TimeoutNotRetried;
            }
            if may_have_arrived && !settings.policy.is_idempotent(&method) {
                break FailureReason::MayHaveArrived;
            }
            let Some(req) = spare.as_ref() else {
                break FailureReason::AttemptsExhausted;
            };
            if failed.failures.len() as u32 >= settings.policy.attempts() {
                break FailureReason::AttemptsExhausted;
            }
            let delay = backoff.next_delay();
            let now = Instant::now();
            // A retry needs time to do more than start.
            if call
                .deadline
                .is_some_and(|deadline| now + delay >= deadline)
            {
                break FailureReason::CallTimeout(settings.timeout.unwrap_or_default());
            }
            if !settings.budget.try_withdraw_at(now) {
                metrics.retries_refused.inc();
                break FailureReason::BudgetExhausted;
            }
            metrics.retries.inc();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            lease = match hosts.select_other(&failed.hosts()) {
                Ok(lease) => lease,
                Err(no_hosts) => break FailureReason::NoHosts(no_hosts.to_string()),
            };
            match self
                .attempt(cx, &lease, req.clone(), Instant::now(), call)
                .await
            {
                Ok(answer) => return self.answered(cx, call, answer),
                Err(next) => miss = next,
            }
        };
        Err(self.fail(cx, call, failed, reason))
    }

    /// Counts an answered call, and returns its answer: the server's
    /// result, or its error (an application exception is final).
    fn answered<T>(
        &self,
        cx: &ClientContext,
        call: &CallClock,
        answer: Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let settings = &*self.settings;
        let elapsed = call.started.elapsed();
        settings
            .metrics
            .with_method(&settings.service, cx.rpc_info().method(), |metrics| {
                match &answer {
                    Ok(_) => {
                        metrics.ok.inc();
                    }
                    Err(error) => {
                        let kind = answered_kind(error);
                        metrics.attempt_failed(kind);
                        metrics.failed(kind);
                    }
                }
                metrics.observe(elapsed);
            });
        answer
    }

    /// Counts a call that got no answer, and the error it ends with.
    fn fail(
        &self,
        cx: &ClientContext,
        call: &CallClock,
        failed: Failed,
        reason: FailureReason,
    ) -> ClientError {
        let settings = &*self.settings;
        let failure = CallFailure {
            service: settings.service.to_string(),
            method: cx.rpc_info().method().to_string(),
            elapsed: call.started.elapsed(),
            attempts: failed.failures,
            reason,
            last_io_kind: failed.last_io_kind.unwrap_or(io::ErrorKind::Other),
        };
        let kind = failure.kind();
        settings
            .metrics
            .with_method(&settings.service, cx.rpc_info().method(), |metrics| {
                metrics.failed(kind);
                metrics.observe(failure.elapsed);
            });
        tracing::debug!(%failure, "thrift call failed");
        let io_kind = failure.io_kind();
        ClientError::Transport(TransportException::from(io::Error::new(io_kind, failure)))
    }

    /// One attempt on `lease`, started at `now`: `Ok` with the server's
    /// answer (a result or an application error), `Err` when there was
    /// none.
    async fn attempt<Req>(
        &self,
        cx: &mut ClientContext,
        lease: &HostLease,
        req: Req,
        now: Instant,
        call: &CallClock,
    ) -> Result<Result<S::Response, ClientError>, Miss>
    where
        S: Service<ClientContext, Req, Error = ClientError>,
    {
        let address = match lease.socket_addr() {
            Some(address) => address,
            None => match self.settings.discover.resolve(lease).await {
                Ok(address) => address,
                Err(e) => return Err(Miss::Unsent(TransportException::from(e).into())),
            },
        };
        cx.rpc_info_mut()
            .callee_mut()
            .set_address(Address::Ip(address));
        let own_deadline = self.settings.attempt_timeout.map(|limit| now + limit);
        let deadline = match (own_deadline, call.deadline) {
            (Some(own), Some(call)) => Some(own.min(call)),
            (own, call) => own.or(call),
        };
        let answer = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline.into(), self.inner.call(cx, req)).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(Miss::Timeout(deadline.saturating_duration_since(now))),
                }
            }
            None => self.inner.call(cx, req).await,
        };
        match answer {
            Err(ClientError::Transport(e)) => Err(Miss::transport(ClientError::Transport(e))),
            answer => Ok(answer),
        }
    }
}

impl Failed {
    fn record(&mut self, host: Endpoint, miss: Miss) {
        let (kind, error) = match miss {
            Miss::Timeout(limit) => (
                ErrorKind::Timeout,
                format!("no answer within {}", millis(limit)),
            ),
            Miss::Unsent(e) | Miss::Broken(e) => {
                if let ClientError::Transport(e) = &e {
                    self.last_io_kind = Some(e.kind());
                }
                (ErrorKind::Transport, transport_message(&e))
            }
        };
        self.failures.push(AttemptFailure { host, kind, error });
    }

    /// The hosts tried so far.
    fn hosts(&self) -> Vec<Endpoint> {
        self.failures.iter().map(|f| f.host.clone()).collect()
    }
}

fn answered_kind(error: &ClientError) -> ErrorKind {
    match error {
        ClientError::Application(_) => ErrorKind::Application,
        ClientError::Protocol(_) => ErrorKind::Protocol,
        ClientError::Biz(_) => ErrorKind::Business,
        ClientError::Transport(_) => ErrorKind::Transport,
    }
}

/// A transport error without volo's appended context dump.
fn transport_message(error: &ClientError) -> String {
    match error {
        ClientError::Transport(e) => e.io_error().to_string(),
        other => other.to_string(),
    }
}

fn millis(duration: Duration) -> String {
    format!("{} ms", duration.as_millis())
}

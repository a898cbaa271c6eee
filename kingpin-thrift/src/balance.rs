//! Each call: pick a host from the serverset, try it within the attempt's
//! time, and on a transport error or a timeout skip that host and retry
//! another, as the policy, the budget and the call's timeout allow. It sits
//! where volo puts its load balancer, under the generated client.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kingpin_api::Backoff;
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
    /// Refused, broken or unresolvable: the request got no answer.
    Transport(ClientError),
    /// No answer within the attempt's limit.
    Timeout(Duration),
}

impl<Req, S> Service<ClientContext, Req> for Balance<S>
where
    Req: Clone + Send + Sync + 'static,
    S: Service<ClientContext, Req, Error = ClientError> + Send + Sync + 'static,
    S::Response: Send,
{
    type Response = S::Response;
    type Error = ClientError;

    async fn call(&self, cx: &mut ClientContext, req: Req) -> Result<S::Response, ClientError> {
        let settings = &*self.settings;
        let started = Instant::now();
        let deadline = settings.timeout.map(|limit| started + limit);
        let method = cx.rpc_info().method().clone();
        let metrics = settings.metrics.method(&settings.service, &method);
        settings.budget.deposit();

        let hosts = settings.discover.hosts();
        let mut failures: Vec<AttemptFailure> = Vec::new();
        let mut tried: Vec<Endpoint> = Vec::new();
        let mut last_io_kind = io::ErrorKind::Other;
        // Made at the first retry: most calls never need one.
        let mut backoff: Option<Backoff> = None;
        let reason = loop {
            let picked = if tried.is_empty() {
                hosts.select()
            } else {
                hosts.select_other(&tried)
            };
            let lease = match picked {
                Ok(lease) => lease,
                Err(no_hosts) => break FailureReason::NoHosts(no_hosts.to_string()),
            };
            let limit = attempt_limit(settings.attempt_timeout, deadline);
            let miss = match self.attempt(cx, &lease, req.clone(), limit).await {
                Ok(Ok(response)) => {
                    metrics.ok.inc();
                    metrics.observe(started.elapsed());
                    return Ok(response);
                }
                // The server answered: an application exception is final.
                Ok(Err(answer)) => {
                    let kind = answered_kind(&answer);
                    metrics.attempt_failed(kind);
                    metrics.failed(kind);
                    metrics.observe(started.elapsed());
                    return Err(answer);
                }
                Err(miss) => miss,
            };

            let (kind, error) = match &miss {
                Miss::Timeout(limit) => (
                    ErrorKind::Timeout,
                    format!("no answer within {}", millis(*limit)),
                ),
                Miss::Transport(e) => {
                    if let ClientError::Transport(e) = e {
                        last_io_kind = e.kind();
                    }
                    (ErrorKind::Transport, transport_message(e))
                }
            };
            metrics.attempt_failed(kind);
            if hosts.invalidate(&lease) {
                metrics.invalidations.inc();
            }
            tried.push(lease.endpoint().clone());
            drop(lease);
            failures.push(AttemptFailure {
                host: tried[tried.len() - 1].clone(),
                kind,
                error,
            });

            let attempt = failures.len() as u32;
            if kind == ErrorKind::Timeout && !settings.policy.retries_timeouts() {
                break FailureReason::TimeoutNotRetried;
            }
            if attempt >= settings.policy.attempts() {
                break FailureReason::AttemptsExhausted;
            }
            let delay = backoff
                .get_or_insert_with(|| settings.policy.backoff_schedule())
                .next_delay();
            if let Some(deadline) = deadline {
                // A retry needs time to do more than start.
                if Instant::now() + delay >= deadline {
                    break FailureReason::CallTimeout(settings.timeout.unwrap_or_default());
                }
            }
            if !settings.budget.try_withdraw() {
                metrics.retries_refused.inc();
                break FailureReason::BudgetExhausted;
            }
            metrics.retries.inc();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        };

        let failure = CallFailure {
            service: settings.service.to_string(),
            method: method.to_string(),
            elapsed: started.elapsed(),
            attempts: failures,
            reason,
            last_io_kind,
        };
        let kind = failure.kind();
        metrics.failed(kind);
        metrics.observe(failure.elapsed);
        tracing::debug!(%failure, "thrift call failed");
        let io_kind = failure.io_kind();
        Err(ClientError::Transport(TransportException::from(
            io::Error::new(io_kind, failure),
        )))
    }
}

impl<S> Balance<S> {
    /// One attempt on `lease`: `Ok` with the server's answer (a result or
    /// an application error), `Err` when there was none.
    async fn attempt<Req>(
        &self,
        cx: &mut ClientContext,
        lease: &HostLease,
        req: Req,
        limit: Option<Duration>,
    ) -> Result<Result<S::Response, ClientError>, Miss>
    where
        S: Service<ClientContext, Req, Error = ClientError>,
    {
        let address = match self.settings.discover.resolve(lease).await {
            Ok(address) => address,
            Err(e) => return Err(Miss::Transport(TransportException::from(e).into())),
        };
        cx.rpc_info_mut()
            .callee_mut()
            .set_address(Address::Ip(address));
        let answer = match limit {
            Some(limit) => match tokio::time::timeout(limit, self.inner.call(cx, req)).await {
                Ok(answer) => answer,
                Err(_) => return Err(Miss::Timeout(limit)),
            },
            None => self.inner.call(cx, req).await,
        };
        match answer {
            Err(ClientError::Transport(e)) => Err(Miss::Transport(ClientError::Transport(e))),
            answer => Ok(answer),
        }
    }
}

/// The attempt's limit: its own, cut to what is left of the call's.
fn attempt_limit(attempt: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map(|at| at.saturating_duration_since(Instant::now()));
    match (attempt, left) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
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

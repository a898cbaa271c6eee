//! Why a call failed after its attempts.

use std::fmt;
use std::io;
use std::time::Duration;

use kingpin_client::Endpoint;
use volo_thrift::ClientError;

use crate::metrics::ErrorKind;

/// A call that got no answer: every attempt, and why no more were made.
///
/// It travels inside the [`ClientError::Transport`] the generated client
/// returns (as the source of its I/O error, whose kind is `TimedOut` when
/// time ran out, `NotConnected` when there was no host, else the last
/// transport error's); [`CallFailure::of`] finds it. Its message names the
/// method, each host tried and what happened there:
///
/// ```text
/// ping.ping failed after 3 attempts in 4 ms (all attempts used):
/// 127.0.0.1:7001: connection refused; 127.0.0.1:7002: connection refused;
/// 127.0.0.1:7003: no answer within 200 ms
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct CallFailure {
    /// The service, as the client names it.
    pub service: String,
    /// The method.
    pub method: String,
    /// From the call to the failure.
    pub elapsed: Duration,
    /// Each attempt, in order.
    pub attempts: Vec<AttemptFailure>,
    /// Why no further attempt was made.
    pub reason: FailureReason,
    /// The last transport error's kind, for the I/O error carrying this.
    pub(crate) last_io_kind: io::ErrorKind,
}

/// One attempt that got no answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttemptFailure {
    /// The host tried.
    pub host: Endpoint,
    /// [`ErrorKind::Timeout`] or [`ErrorKind::Transport`].
    pub kind: ErrorKind,
    /// What happened.
    pub error: String,
}

/// Why a failed call was not tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// The policy's attempts are used up.
    AttemptsExhausted,
    /// The retry budget allowed no more retries: many calls are failing.
    BudgetExhausted,
    /// The call's timeout (given) left no time for another attempt.
    CallTimeout(Duration),
    /// The attempt timed out, and the policy does not retry timeouts.
    TimeoutNotRetried,
    /// The method is not idempotent, and its request may have reached the
    /// server before the connection broke or the attempt timed out.
    MayHaveArrived,
    /// There was no host to call (the serverset is empty or missing).
    NoHosts(String),
}

impl CallFailure {
    /// The failure inside `error`, when it is one of a kingpin client's
    /// calls.
    pub fn of(error: &ClientError) -> Option<&CallFailure> {
        match error {
            ClientError::Transport(e) => e.io_error().get_ref()?.downcast_ref::<CallFailure>(),
            _ => None,
        }
    }

    /// The kind of the call's error: the last attempt's, the call's
    /// timeout, or no hosts.
    pub fn kind(&self) -> ErrorKind {
        match (&self.reason, self.attempts.last()) {
            (FailureReason::NoHosts(_), _) => ErrorKind::NoHosts,
            (FailureReason::CallTimeout(_), _) => ErrorKind::Timeout,
            (_, Some(last)) => last.kind,
            (_, None) => ErrorKind::NoHosts,
        }
    }

    /// The kind of the I/O error that carries this failure.
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self.kind() {
            ErrorKind::Timeout => io::ErrorKind::TimedOut,
            ErrorKind::NoHosts => io::ErrorKind::NotConnected,
            _ => self.last_io_kind,
        }
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempts = self.attempts.len();
        if attempts == 0 {
            return write!(
                f,
                "{}.{} failed: {}",
                self.service, self.method, self.reason
            );
        }
        write!(
            f,
            "{}.{} failed after {} attempt{} in {} ms ({})",
            self.service,
            self.method,
            attempts,
            if attempts == 1 { "" } else { "s" },
            self.elapsed.as_millis(),
            self.reason
        )?;
        for (i, attempt) in self.attempts.iter().enumerate() {
            let separator = if i == 0 { ": " } else { "; " };
            write!(f, "{separator}{}: {}", attempt.host, attempt.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for CallFailure {}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::AttemptsExhausted => f.write_str("all attempts used"),
            FailureReason::BudgetExhausted => {
                f.write_str("retry budget exhausted: too many calls are failing")
            }
            FailureReason::CallTimeout(limit) => {
                write!(f, "call timeout of {} ms reached", limit.as_millis())
            }
            FailureReason::TimeoutNotRetried => f.write_str("timeouts are not retried"),
            FailureReason::MayHaveArrived => f.write_str(
                "not retried: the method is not idempotent and the request may have reached the server",
            ),
            FailureReason::NoHosts(why) => f.write_str(why),
        }
    }
}

use std::time::Duration;

use kingpin_api::Backoff;

/// How a call is retried after a transport error or a timeout: on another
/// host, up to a number of attempts, after a backoff with jitter.
///
/// Only failures where the server gave no answer are retried: a refused or
/// broken connection, or an attempt past its timeout. An answer — a
/// result, an exception the IDL declares, or a Thrift application
/// exception — is final. A retry after a broken connection or a timeout
/// may run a request a second time on another server, when the first one
/// received it but never answered: name the methods that must not run
/// twice with [`RetryPolicy::not_idempotent`], and their calls are retried
/// only when the request cannot have left (the connection was refused or
/// never made).
///
/// ```
/// use std::time::Duration;
/// use kingpin_thrift::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(4)
///     .backoff(Duration::from_millis(20), Duration::from_millis(500))
///     .not_idempotent(["transfer"]);
/// assert_eq!(policy.attempts(), 4);
/// assert!(!policy.is_idempotent("transfer"));
/// assert!(policy.is_idempotent("balance"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    retry_timeouts: bool,
    /// Methods whose requests must not run twice.
    not_idempotent: Vec<String>,
}

impl Default for RetryPolicy {
    /// Three attempts, the backoff before retry `n` drawn from
    /// `[0, 10 ms × 2ⁿ⁻¹]`, capped at 1 s; timeouts retried.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_secs(1),
            retry_timeouts: true,
            not_idempotent: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// One attempt: every failure is the call's.
    pub fn never() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Tries a call at most `attempts` times in all (the first attempt
    /// included); 0 counts as 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before retry `n` is drawn uniformly from
    /// `[0, min(max, base × 2ⁿ⁻¹)]` ("full jitter"), so the retries of many
    /// clients do not arrive together.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// Whether an attempt that timed out is retried (by default it is). A
    /// connection that could not be made is always retried: the request
    /// never left.
    pub fn retry_timeouts(mut self, retry: bool) -> Self {
        self.retry_timeouts = retry;
        self
    }

    /// Methods (as the IDL names them) whose calls must not run twice: a
    /// call of one is retried only when its request cannot have reached a
    /// server — the connection was refused or could not be made — and not
    /// after a broken connection or a timeout. Adds to the methods named
    /// before.
    pub fn not_idempotent<M: Into<String>>(mut self, methods: impl IntoIterator<Item = M>) -> Self {
        self.not_idempotent
            .extend(methods.into_iter().map(Into::into));
        self
    }

    /// Whether `method`'s calls may run twice (every method is, unless
    /// named in [`RetryPolicy::not_idempotent`]).
    pub fn is_idempotent(&self, method: &str) -> bool {
        !self.not_idempotent.iter().any(|m| m == method)
    }

    /// The most attempts per call.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether timeouts are retried.
    pub fn retries_timeouts(&self) -> bool {
        self.retry_timeouts
    }

    /// The pauses before a call's retries, in order: kingpin's
    /// [`Backoff`] from the base doubling to the cap, each drawn with full
    /// jitter.
    pub fn backoff_schedule(&self) -> Backoff {
        Backoff::new(self.backoff_base, self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_is_jittered() {
        let policy =
            RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(35));
        for (retry, ceiling) in [(1, 10), (2, 20), (3, 35), (4, 35), (40, 35)] {
            // 500 calls, each at its `retry`th retry.
            let delays: Vec<Duration> = (0..500)
                .map(|_| {
                    let mut schedule = policy.backoff_schedule();
                    for _ in 1..retry {
                        schedule.next_delay();
                    }
                    schedule.next_delay()
                })
                .collect();
            let ceiling = Duration::from_millis(ceiling);
            assert!(delays.iter().all(|d| *d <= ceiling), "retry {retry}");
            // Spread over the range, not stuck at either end.
            assert!(delays.iter().any(|d| *d < ceiling / 4), "retry {retry}");
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4), "retry {retry}");
        }
    }

    #[test]
    fn attempts_are_at_least_one() {
        assert_eq!(RetryPolicy::default().max_attempts(0).attempts(), 1);
        assert_eq!(RetryPolicy::never().attempts(), 1);
        let none = RetryPolicy::default().backoff(Duration::ZERO, Duration::ZERO);
        let mut schedule = none.backoff_schedule();
        assert!((0..3).all(|_| schedule.next_delay() == Duration::ZERO));
    }
}

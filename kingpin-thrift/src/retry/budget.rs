use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use crate::striped::{stripe, Padded, STRIPES};

/// Seconds a call or a retry counts for.
const WINDOW_SECONDS: u64 = 10;

/// Caps retries at a fraction of the calls, so that when a whole fleet is
/// down its clients do not multiply the load by the number of attempts.
///
/// Over the last 10 s, retries may be at most `ratio` × calls, plus
/// `min_per_second` × 10 so that a client making few calls can still
/// retry. A retry past the budget is not made: the call fails with its
/// last error. Clones share one budget; give several clients the same
/// budget to cap them together.
///
/// ```
/// use kingpin_thrift::RetryBudget;
///
/// // At most a fifth of the calls retried, and 10 retries a second.
/// let budget = RetryBudget::new(0.2, 10);
/// for _ in 0..100 {
///     budget.deposit();
/// }
/// let granted = (0..1000).filter(|_| budget.try_withdraw()).count();
/// assert_eq!(granted, 100 + 20);
/// ```
#[derive(Clone, Debug)]
pub struct RetryBudget {
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// In thousandths of a retry per call.
    ratio_milli: u64,
    reserve: u64,
    epoch: Instant,
    seconds: [Second; WINDOW_SECONDS as usize],
}

/// The calls and retries of one second.
#[derive(Debug, Default)]
struct Second {
    /// Which second (since the epoch) the counts are for, plus one: 0 is
    /// none yet.
    stamp: AtomicU64,
    retries: AtomicU64,
    /// Counted by thread, so that callers on different cores do not
    /// contend for one counter on every call.
    calls: [Padded<AtomicU64>; STRIPES],
}

impl Second {
    fn calls(&self) -> u64 {
        self.calls.iter().map(|stripe| stripe.0.load(Relaxed)).sum()
    }
}

impl Default for RetryBudget {
    /// A fifth of the calls, plus 10 retries a second.
    fn default() -> Self {
        RetryBudget::new(0.2, 10)
    }
}

impl RetryBudget {
    /// Up to `ratio` retries per call (0.2: one for every five calls),
    /// plus `min_per_second` retries a second whatever the calls.
    ///
    /// # Panics
    ///
    /// When `ratio` is negative, not a number, or more than 1000.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        assert!(
            (0.0..=1000.0).contains(&ratio),
            "a retry budget ratio is a number of retries per call in [0, 1000], not {ratio}"
        );
        RetryBudget {
            state: Arc::new(State {
                ratio_milli: (ratio * 1000.0).round() as u64,
                reserve: u64::from(min_per_second) * WINDOW_SECONDS,
                epoch: Instant::now(),
                seconds: Default::default(),
            }),
        }
    }

    /// No cap: every retry the policy allows is made.
    pub fn unlimited() -> Self {
        RetryBudget::new(1000.0, u32::MAX)
    }

    /// Counts a call (its first attempt).
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// Counts a call made at `now`.
    pub(crate) fn deposit_at(&self, now: Instant) {
        let state = &*self.state;
        let second = state.second_at(state.stamp_at(now));
        second.calls[stripe()].0.fetch_add(1, Relaxed);
    }

    /// Takes a retry from the budget; `false` when there is none left.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    /// Takes a retry made at `now` from the budget.
    pub(crate) fn try_withdraw_at(&self, now: Instant) -> bool {
        let state = &*self.state;
        let stamp = state.stamp_at(now);
        let (mut calls, mut retries) = (0u64, 0u64);
        for second in &state.seconds {
            let at = second.stamp.load(Relaxed);
            if at != 0 && at + WINDOW_SECONDS > stamp {
                calls += second.calls();
                retries += second.retries.load(Relaxed);
            }
        }
        let allowed = state
            .reserve
            .saturating_add(calls.saturating_mul(state.ratio_milli) / 1000);
        if retries >= allowed {
            return false;
        }
        state.second_at(stamp).retries.fetch_add(1, Relaxed);
        true
    }
}

impl State {
    fn stamp_at(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() + 1
    }

    /// The counts of second `stamp`, emptied first when they still hold an
    /// older second's.
    fn second_at(&self, stamp: u64) -> &Second {
        let second = &self.seconds[(stamp % WINDOW_SECONDS) as usize];
        let seen = second.stamp.load(Relaxed);
        if seen < stamp
            && second
                .stamp
                .compare_exchange(seen, stamp, Relaxed, Relaxed)
                .is_ok()
        {
            // A count landing between the exchange and these stores is
            // lost: the budget is approximate by a few calls, never by a
            // window.
            for stripe in &second.calls {
                stripe.0.store(0, Relaxed);
            }
            second.retries.store(0, Relaxed);
        }
        second
    }
}

/// For tests: how long the budget remembers.
#[cfg(test)]
const WINDOW: std::time::Duration = std::time::Duration::from_secs(WINDOW_SECONDS);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_are_a_fraction_of_calls_plus_a_reserve() {
        let budget = RetryBudget::new(0.5, 1);
        let now = budget.state.epoch;
        for _ in 0..40 {
            budget.deposit_at(now);
        }
        let granted = (0..100).filter(|_| budget.try_withdraw_at(now)).count();
        assert_eq!(granted, 20 + 10);
    }

    #[test]
    fn calls_and_retries_expire_after_the_window() {
        let budget = RetryBudget::new(1.0, 0);
        let start = budget.state.epoch;
        for _ in 0..5 {
            budget.deposit_at(start);
        }
        assert_eq!((0..10).filter(|_| budget.try_withdraw_at(start)).count(), 5);
        let later = start + WINDOW / 2;
        assert!(
            !budget.try_withdraw_at(later),
            "still spent half a window later"
        );
        // A window on, the calls (and the retries) are forgotten.
        let after = start + WINDOW + Duration::from_secs(1);
        assert!(!budget.try_withdraw_at(after), "no calls in the window");
        budget.deposit_at(after);
        budget.deposit_at(after);
        assert_eq!((0..10).filter(|_| budget.try_withdraw_at(after)).count(), 2);
    }

    #[test]
    fn calls_from_many_threads_all_count() {
        let budget = RetryBudget::new(0.1, 0);
        let now = budget.state.epoch;
        std::thread::scope(|scope| {
            for _ in 0..2 * STRIPES {
                scope.spawn(|| {
                    for _ in 0..100 {
                        budget.deposit_at(now);
                    }
                });
            }
        });
        let granted = (0..1000).filter(|_| budget.try_withdraw_at(now)).count();
        assert_eq!(granted, 2 * STRIPES * 100 / 10);
    }

    #[test]
    fn a_zero_budget_refuses_and_unlimited_grants() {
        let none = RetryBudget::new(0.0, 0);
        none.deposit();
        assert!(!none.try_withdraw());
        let all = RetryBudget::unlimited();
        assert!((0..10_000).all(|_| all.try_withdraw()));
    }

    #[test]
    #[should_panic(expected = "retry budget ratio")]
    fn a_negative_ratio_is_a_programming_error() {
        let _ = RetryBudget::new(-0.1, 0);
    }
}

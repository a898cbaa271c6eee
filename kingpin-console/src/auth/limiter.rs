//! Failed sign-ins, limited per user name and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per user name within [`WINDOW`].
pub const FAILURES_PER_USER: usize = 5;
/// Failures allowed per client address within [`WINDOW`].
pub const FAILURES_PER_ADDRESS: usize = 20;
/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names and addresses remembered at most (the oldest go first).
const MAX_KEYS: usize = 100_000;

/// Recent failed sign-ins.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

fn user_key(user: &str) -> String {
    format!("user:{user}")
}

fn address_key(address: Option<IpAddr>) -> String {
    match address {
        Some(address) => format!("addr:{address}"),
        None => "addr:unknown".to_owned(),
    }
}

impl SignInLimiter {
    /// `Some(wait)` when `user` or `address` failed too often lately: no
    /// password is checked until then.
    pub fn refused(&self, user: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        [
            (user_key(user), FAILURES_PER_USER),
            (address_key(address), FAILURES_PER_ADDRESS),
        ]
        .into_iter()
        .filter_map(|(key, limit)| {
            let times = failures.get_mut(&key)?;
            times.retain(|t| now.duration_since(*t) < WINDOW);
            (times.len() >= limit).then(|| WINDOW - now.duration_since(times[0]))
        })
        .max()
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
            if failures.len() >= MAX_KEYS {
                failures.clear();
            }
        }
        for key in [user_key(user), address_key(address)] {
            failures.entry(key).or_default().push(now);
        }
    }

    /// Forgets `user`'s failures after a successful sign-in.
    pub fn succeeded(&self, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&user_key(user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_failures_refuse_the_user_until_the_window_passes() {
        let limiter = SignInLimiter::default();
        let address = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..FAILURES_PER_USER {
            assert_eq!(limiter.refused("alice", address), None);
            limiter.failed("alice", address);
        }
        let wait = limiter.refused("alice", address).unwrap();
        assert!(wait <= WINDOW && wait > WINDOW - Duration::from_secs(60));
        assert_eq!(limiter.refused("bob", address), None, "others still may");
        limiter.succeeded("alice");
        assert_eq!(limiter.refused("alice", address), None);
    }
}

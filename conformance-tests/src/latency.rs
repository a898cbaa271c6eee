//! Latency samples and their percentiles, for the benchmarks.

use std::time::Duration;

/// Sorted latency samples.
#[derive(Debug, Clone)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Latencies { sorted: samples }
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The nearest-rank `p`th percentile in microseconds (0 when empty).
    pub fn percentile_us(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1].as_secs_f64() * 1e6
    }

    /// The largest sample in microseconds.
    pub fn max_us(&self) -> f64 {
        self.sorted
            .last()
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e6
    }

    /// `n=… p50=… ms p99=… ms max=… ms`, for latencies of milliseconds
    /// and more.
    pub fn summary_ms(&self) -> String {
        format!(
            "n={:<6} p50={:>9.1} ms   p99={:>9.1} ms   max={:>9.1} ms",
            self.len(),
            self.percentile_us(50.0) / 1000.0,
            self.percentile_us(99.0) / 1000.0,
            self.max_us() / 1000.0,
        )
    }
}

/// The number in the environment variable `var`, or `default` when it is
/// unset or not a number: how benchmarks take their sizes.
pub fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

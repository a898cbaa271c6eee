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
}

//! Counts written on every call, spread over cache lines by thread.
//!
//! A counter that every call increments, from whichever core it runs on,
//! moves its cache line between the cores on nearly every call; a lock
//! around a histogram does the same, twice. Here each thread writes to a
//! stripe of its own (while there are no more threads than stripes), and
//! reads add the stripes up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// How many stripes a count is spread over.
pub(crate) const STRIPES: usize = 8;

/// The stripe the current thread writes to.
pub(crate) fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

/// A value alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// A Prometheus counter for counts made on every call. Clones share the
/// count.
#[derive(Debug, Clone, Default)]
pub(crate) struct StripedCounter {
    stripes: Arc<[Padded<AtomicU64>; STRIPES]>,
}

impl StripedCounter {
    pub(crate) fn inc(&self) {
        self.stripes[stripe()].0.fetch_add(1, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.load(Relaxed)).sum()
    }
}

impl TypedMetric for StripedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for StripedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Latency buckets: 50 µs doubling to ~3.3 s, then the rest.
const BUCKETS: usize = 17;
const FIRST_BOUND_NANOS: u64 = 50_000;

/// A Prometheus histogram of durations in seconds, with buckets from
/// 50 µs doubling to ~3.3 s. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct StripedHistogram {
    stripes: Arc<[Padded<HistogramStripe>; STRIPES]>,
}

#[derive(Debug, Default)]
struct HistogramStripe {
    count: AtomicU64,
    sum_nanos: AtomicU64,
    /// Per bucket (the last one past every bound), not cumulative.
    buckets: [AtomicU64; BUCKETS + 1],
}

impl StripedHistogram {
    pub(crate) fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let stripe = &self.stripes[stripe()].0;
        stripe.count.fetch_add(1, Relaxed);
        stripe.sum_nanos.fetch_add(nanos, Relaxed);
        stripe.buckets[bucket(nanos)].fetch_add(1, Relaxed);
    }

    /// The upper bounds, in seconds, and each bucket's count.
    fn buckets(&self) -> Vec<(f64, u64)> {
        (0..=BUCKETS)
            .map(|i| {
                let bound = if i == BUCKETS {
                    f64::MAX
                } else {
                    (FIRST_BOUND_NANOS << i) as f64 / 1e9
                };
                let count = self
                    .stripes
                    .iter()
                    .map(|s| s.0.buckets[i].load(Relaxed))
                    .sum();
                (bound, count)
            })
            .collect()
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.count.load(Relaxed)).sum()
    }
}

/// The bucket of a duration of `nanos`: the first whose bound it does not
/// exceed.
fn bucket(nanos: u64) -> usize {
    (0..BUCKETS)
        .find(|&i| nanos <= FIRST_BOUND_NANOS << i)
        .unwrap_or(BUCKETS)
}

impl TypedMetric for StripedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StripedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Read bucket by bucket while calls go on: the sum and count may be
        // a few calls apart from the buckets, as with any lock-free
        // histogram.
        let buckets = self.buckets();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum_nanos: u64 = self
            .stripes
            .iter()
            .map(|s| s.0.sum_nanos.load(Relaxed))
            .sum();
        encoder.encode_histogram::<NoLabelSet>(sum_nanos as f64 / 1e9, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn durations_land_in_the_bucket_of_their_bound() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(50_000), 0);
        assert_eq!(bucket(50_001), 1);
        assert_eq!(bucket(100_000), 1);
        assert_eq!(bucket(3_276_800_000), 16);
        assert_eq!(bucket(3_276_800_001), 17);
        assert_eq!(bucket(u64::MAX), 17);
    }

    #[test]
    fn counts_from_many_threads_add_up_and_encode_cumulatively() {
        let counter = StripedCounter::default();
        let histogram = StripedHistogram::default();
        std::thread::scope(|scope| {
            for _ in 0..2 * STRIPES {
                scope.spawn(|| {
                    for _ in 0..100 {
                        counter.inc();
                        histogram.observe(Duration::from_micros(70));
                        histogram.observe(Duration::from_secs(10));
                    }
                });
            }
        });
        assert_eq!(counter.get(), 2 * STRIPES as u64 * 100);
        assert_eq!(histogram.count(), 2 * STRIPES as u64 * 200);

        let mut registry = Registry::default();
        registry.register("calls", "Calls", counter);
        registry.register("latency_seconds", "Latency", histogram);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "calls_total 1600",
            "latency_seconds_count 3200",
            r#"latency_seconds_bucket{le="0.00005"} 0"#,
            r#"latency_seconds_bucket{le="0.0001"} 1600"#,
            r#"latency_seconds_bucket{le="3.2768"} 1600"#,
            r#"latency_seconds_bucket{le="+Inf"} 3200"#,
        ] {
            assert!(text.contains(line), "no {line:?} in\n{text}");
        }
    }
}

//! Connections closed after a number of requests or an age, so that a
//! client's load spreads onto servers that joined after it connected —
//! KingPin's pooled client did this by recycling its connections.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use volo_thrift::codec::{Encoder, MakeCodec};
use volo_thrift::context::ThriftContext;
use volo_thrift::{EntryMessage, ThriftException, ThriftMessage};

/// When a pooled connection is closed instead of being reused: after
/// `max_requests` requests, or once it is older than `max_age` (give or
/// take a tenth, so the connections made together do not all close
/// together). A connection is never closed under a request: it is
/// dropped when it would go back to the pool.
///
/// ```
/// use std::time::Duration;
/// use kingpin_thrift::Recycle;
///
/// let recycle = Recycle::default().max_requests(10_000);
/// assert_eq!(recycle.max_age_limit(), Some(Duration::from_secs(600)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recycle {
    max_requests: Option<u64>,
    max_age: Option<Duration>,
}

impl Default for Recycle {
    /// Connections live 10 minutes; no limit on requests.
    fn default() -> Self {
        Recycle {
            max_requests: None,
            max_age: Some(Duration::from_secs(600)),
        }
    }
}

impl Recycle {
    /// Connections are kept as long as they work.
    pub fn never() -> Self {
        Recycle {
            max_requests: None,
            max_age: None,
        }
    }

    /// Closes a connection after `requests` requests (at least 1).
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.max_requests = Some(requests.max(1));
        self
    }

    /// Closes a connection once it is about `age` old.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The request limit, if any.
    pub fn max_requests_limit(&self) -> Option<u64> {
        self.max_requests
    }

    /// The age limit, if any.
    pub fn max_age_limit(&self) -> Option<Duration> {
        self.max_age
    }
}

/// Wraps a codec maker: each connection's encoder counts its requests and
/// reports the connection closed once it is past the [`Recycle`] limits,
/// which is how volo's pool decides not to reuse it.
#[derive(Clone)]
pub(crate) struct RecyclingMakeCodec<C> {
    inner: C,
    recycle: Recycle,
    recycled: Counter,
}

impl<C> RecyclingMakeCodec<C> {
    pub(crate) fn new(inner: C, recycle: Recycle, recycled: Counter) -> Self {
        RecyclingMakeCodec {
            inner,
            recycle,
            recycled,
        }
    }
}

impl<R, W, C> MakeCodec<R, W> for RecyclingMakeCodec<C>
where
    R: AsyncRead + Unpin + Send + Sync + 'static,
    W: AsyncWrite + Unpin + Send + Sync + 'static,
    C: MakeCodec<R, W>,
{
    type Encoder = RecyclingEncoder<C::Encoder>;
    type Decoder = C::Decoder;

    fn make_codec(&self, reader: R, writer: W) -> (Self::Encoder, Self::Decoder) {
        let (encoder, decoder) = self.inner.make_codec(reader, writer);
        let expires = self.recycle.max_age.map(|age| {
            // ±10 %, so connections opened in one burst spread their ends.
            let spread = rand::rng().random_range(0.9..=1.1);
            Instant::now() + age.mul_f64(spread)
        });
        let encoder = RecyclingEncoder {
            inner: encoder,
            requests: 0,
            max_requests: self.recycle.max_requests,
            expires,
            just_used: AtomicBool::new(false),
            recycled: self.recycled.clone(),
            counted: AtomicBool::new(false),
        };
        (encoder, decoder)
    }
}

pub(crate) struct RecyclingEncoder<E> {
    inner: E,
    /// Requests sent on the connection; only its one caller at a time
    /// writes it.
    requests: u64,
    max_requests: Option<u64>,
    expires: Option<Instant>,
    /// Whether a request was sent since the pool last asked: the pool asks
    /// when the connection comes back after a request and again when it
    /// takes it out; the age is checked at the taking, so that the clock
    /// is read once a call.
    just_used: AtomicBool,
    recycled: Counter,
    /// Whether this connection was counted as recycled already.
    counted: AtomicBool,
}

impl<E> RecyclingEncoder<E> {
    /// Counts a request sent on the connection.
    fn count_request(&mut self) {
        self.requests += 1;
        self.just_used.store(true, Relaxed);
    }

    fn spent(&self) -> bool {
        let by_requests = self.max_requests.is_some_and(|max| self.requests >= max);
        let checks_age = !self.just_used.load(Relaxed);
        self.just_used.store(false, Relaxed);
        let by_age = checks_age && self.expires.is_some_and(|at| Instant::now() >= at);
        by_requests || by_age
    }
}

impl<E: Encoder> Encoder for RecyclingEncoder<E> {
    async fn encode<Req: Send + EntryMessage, Cx: ThriftContext>(
        &mut self,
        cx: &mut Cx,
        msg: ThriftMessage<Req>,
    ) -> Result<(), ThriftException> {
        self.count_request();
        self.inner.encode(cx, msg).await
    }

    async fn is_closed(&self) -> bool {
        if self.spent() {
            if !self.counted.swap(true, Relaxed) {
                self.recycled.inc();
            }
            return true;
        }
        self.inner.is_closed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(Recycle::never().max_age_limit(), None);
        assert_eq!(
            Recycle::never().max_requests(0).max_requests_limit(),
            Some(1)
        );
        let r = Recycle::never().max_age(Duration::from_secs(5));
        assert_eq!(r.max_age_limit(), Some(Duration::from_secs(5)));
    }

    fn encoder(max_requests: Option<u64>, expires: Option<Instant>) -> RecyclingEncoder<()> {
        RecyclingEncoder {
            inner: (),
            requests: 0,
            max_requests,
            expires,
            just_used: AtomicBool::new(false),
            recycled: Counter::default(),
            counted: AtomicBool::new(false),
        }
    }

    #[test]
    fn spent_after_max_requests_when_it_comes_back() {
        let mut conn = encoder(Some(2), None);
        conn.count_request();
        assert!(!conn.spent(), "back after 1 request");
        assert!(!conn.spent(), "taken for the 2nd");
        conn.count_request();
        assert!(conn.spent(), "back after the 2nd");
    }

    #[test]
    fn an_old_connection_is_not_taken_again() {
        let mut conn = encoder(None, Some(Instant::now()));
        conn.count_request();
        // Coming back from its request the age is not looked at (one clock
        // read a call); taken out again, it is, and it is too old.
        assert!(!conn.spent(), "back from its request");
        assert!(conn.spent(), "taken when past its age");

        let young = encoder(None, Some(Instant::now() + Duration::from_secs(60)));
        assert!(!young.spent());
    }
}

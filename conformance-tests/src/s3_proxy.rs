//! A fault-injecting HTTP proxy in front of a real S3 server, on loopback:
//! the way to show what the blob stores do when a server ignores
//! conditional headers, fails, stalls, cuts a body short or lies about an
//! ETag, on a server that does none of these by itself.
//!
//! Faults are chosen per request and deterministically, so a test that
//! passes does so every time: a fault applies to every `every`-th distinct
//! request (method, path and query), the first `times` times that request
//! is seen, so a retry of a failed request meets the fault again until it
//! has been injected `times` times.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, ETAG};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::servers::S3Credentials;
use crate::sigv4::sign_request;

type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// Which requests a fault applies to: every `every`-th distinct request, its
/// first `times` occurrences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// 1 for every distinct request, 3 for every third, …
    pub every: u32,
    /// How many times in a row the chosen request meets the fault.
    pub times: u32,
}

impl Share {
    /// Every distinct request, `times` times.
    pub fn all(times: u32) -> Self {
        Share { every: 1, times }
    }

    /// Every `every`-th distinct request, once.
    pub fn every(every: u32) -> Self {
        Share { every, times: 1 }
    }
}

/// An error answer the proxy gives instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReply {
    /// 500 `InternalError`.
    InternalError,
    /// 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// 503 `SlowDown` (S3's throttling answer).
    SlowDown,
}

impl ErrorReply {
    fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            ErrorReply::InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            ErrorReply::ServiceUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable")
            }
            ErrorReply::SlowDown => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
        }
    }
}

/// What the proxy does to the traffic; the default forwards it untouched.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Strip `If-None-Match` and `If-Match` from requests (and sign them
    /// again), as servers that ignore conditional writes behave.
    pub drop_conditional_headers: bool,
    /// Answer with an error instead of forwarding.
    pub errors: Option<(ErrorReply, Share)>,
    /// Hold every response this long before sending it.
    pub delay: Option<Duration>,
    /// Send half of a `GET` response's body, then break the connection.
    pub truncate_bodies: Option<Share>,
    /// Flip one byte of a `GET` response's body (length unchanged).
    pub corrupt_bodies: Option<Share>,
    /// Replace every `ETag` in responses with one that matches nothing.
    pub wrong_etag: bool,
}

#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    injected: u64,
    /// Distinct requests seen, to choose every n-th.
    distinct: u32,
    /// Per distinct request: (chosen for (errors, truncation, corruption),
    /// times injected so far for each).
    seen: HashMap<String, ([bool; 3], [u32; 3])>,
}

struct State {
    upstream: String,
    credentials: S3Credentials,
    faults: Mutex<Faults>,
    counts: Mutex<Counts>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The proxy; it runs until dropped.
pub struct S3FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl S3FaultProxy {
    /// Starts forwarding `127.0.0.1:<port>` to `upstream` (`http://host:port`).
    /// `credentials` are the server's, to sign requests again after a
    /// header was removed.
    pub async fn start(upstream: &str, credentials: &S3Credentials) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            credentials: credentials.clone(),
            faults: Mutex::new(Faults::default()),
            counts: Mutex::new(Counts::default()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(S3FaultProxy { addr, state, task })
    }

    /// The endpoint clients use instead of the server's (`http://…`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the faults; requests already chosen stay chosen.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        lock(&self.state.counts).requests
    }

    /// Faults injected so far (errors, truncations, corruptions and dropped
    /// conditions).
    pub fn injected(&self) -> u64 {
        lock(&self.state.counts).injected
    }
}

impl Drop for S3FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which faults meet one request.
#[derive(Debug, Default)]
struct Decision {
    error: Option<ErrorReply>,
    truncate: bool,
    corrupt: bool,
}

impl State {
    fn decide(&self, key: String, faults: &Faults) -> Decision {
        let mut counts = lock(&self.counts);
        counts.requests += 1;
        let is_new = !counts.seen.contains_key(&key);
        if is_new {
            counts.distinct += 1;
        }
        let distinct = counts.distinct;
        let is_get = key.starts_with("GET ");
        let shares = [
            faults.errors.map(|(_, share)| share),
            faults.truncate_bodies.filter(|_| is_get),
            faults.corrupt_bodies.filter(|_| is_get),
        ];
        let entry = counts.seen.entry(key).or_default();
        if is_new {
            for (chosen, share) in entry.0.iter_mut().zip(shares) {
                *chosen = share.is_some_and(|s| distinct % s.every.max(1) == 0);
            }
        }
        let mut hits = [false; 3];
        for i in 0..3 {
            if let Some(share) = shares[i] {
                if entry.0[i] && entry.1[i] < share.times {
                    entry.1[i] += 1;
                    hits[i] = true;
                }
            }
        }
        // An error answer replaces the response, so nothing else applies.
        let error = faults.errors.filter(|_| hits[0]).map(|(reply, _)| reply);
        let decision = Decision {
            error,
            truncate: error.is_none() && hits[1],
            corrupt: error.is_none() && !hits[1] && hits[2],
        };
        counts.injected += u64::from(decision.error.is_some())
            + u64::from(decision.truncate)
            + u64::from(decision.corrupt);
        decision
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let faults = lock(&self.faults).clone();
        let key = format!(
            "{} {}",
            request.method(),
            request.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let decision = self.decide(key, &faults);
        if let Some(delay) = faults.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(reply) = decision.error {
            return error_response(reply);
        }
        let (mut parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("request body: {e}")),
        };
        if faults.drop_conditional_headers {
            let dropped = parts.headers.remove("if-none-match").is_some()
                | parts.headers.remove("if-match").is_some();
            if dropped {
                lock(&self.counts).injected += 1;
                if let Err(e) = sign_request(&mut parts, &self.credentials) {
                    return plain(StatusCode::BAD_GATEWAY, format!("re-signing failed: {e}"));
                }
            }
        }
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match format!("{}{path}", self.upstream).parse() {
            Ok(uri) => uri,
            Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("upstream URI: {e}")),
        };
        let response = match self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
        {
            Ok(response) => response,
            Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("upstream: {e}")),
        };
        let (mut parts, body) = response.into_parts();
        let mut body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("upstream body: {e}")),
        };
        if faults.wrong_etag && parts.headers.contains_key(ETAG) {
            parts.headers.insert(
                ETAG,
                HeaderValue::from_static("\"0123456789abcdef0123456789abcdef\""),
            );
        }
        let ok = parts.status.is_success();
        if decision.corrupt && ok && !body.is_empty() {
            let mut bytes = body.to_vec();
            bytes[0] ^= 0x20;
            body = Bytes::from(bytes);
        }
        if decision.truncate && ok && body.len() > 1 {
            // Content-Length stays the full length: the client sees the
            // connection end early.
            let half = body.slice(..body.len() / 2);
            let frames = futures::stream::iter([
                Ok(Frame::data(half)),
                Err(std::io::Error::other("cut short by the fault proxy")),
            ]);
            return Response::from_parts(parts, BodyExt::boxed(StreamBody::new(frames)));
        }
        Response::from_parts(parts, full(body))
    }
}

fn full(body: Bytes) -> ProxyBody {
    Full::new(body).map_err(|never| match never {}).boxed()
}

fn plain(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

fn error_response(reply: ErrorReply) -> Response<ProxyBody> {
    let (status, code) = reply.status_and_code();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the fault proxy</Message><RequestId>fault</RequestId></Error>"
    );
    let mut response = Response::new(full(Bytes::from(xml)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    response
}

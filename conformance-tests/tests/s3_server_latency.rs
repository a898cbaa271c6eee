//! The test S3 server answers back-to-back requests on one keep-alive
//! connection without the ~40 ms delayed-ACK stall that `s3s-fs`'s own
//! binary showed about half the time (a response written in two segments
//! waited for the client's delayed ACK). Every latency figure in the
//! benchmarks goes through this server, so this is checked on its own,
//! alone in its test binary so nothing else competes for the CPU.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use kingpin_api::{BlobKey, BlobStore};
use kingpin_conformance_tests::endpoints::shared_s3;
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::sigv4::sign_request;
use kingpin_conformance_tests::unique_suffix;

const BUCKET: &str = "kingpin-test";
const GETS: usize = 20;
const LIMIT: Duration = Duration::from_millis(10);

#[tokio::test]
async fn back_to_back_gets_on_one_connection_do_not_stall() {
    let Some((endpoint, credentials)) =
        shared_s3("back_to_back_gets_on_one_connection_do_not_stall").await
    else {
        return;
    };
    let prefix = format!("latency-{}", unique_suffix());
    let store = aws_sdk_store(&endpoint, &credentials, BUCKET, &prefix).await;
    let content = Bytes::from_static(b"[\"a small config\"]");
    store
        .put_if_absent(&BlobKey::parse("small").unwrap(), content.clone())
        .await
        .unwrap();

    let host = endpoint.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let mut took = Vec::with_capacity(GETS);
    for _ in 0..GETS {
        let request = Request::get(format!("/{BUCKET}/{prefix}/small"))
            .header("host", &host)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let (mut parts, body) = request.into_parts();
        sign_request(&mut parts, &credentials).unwrap();
        let request = Request::from_parts(parts, body);
        let started = Instant::now();
        let response = sender
            .send_request(request)
            .await
            .expect("the server keeps the connection open");
        assert!(response.status().is_success(), "{}", response.status());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        took.push(started.elapsed());
        assert_eq!(body, content);
    }
    connection.abort();
    let shown: Vec<String> = took
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64() * 1e3))
        .collect();
    println!("{GETS} GETs on one connection, ms: {}", shown.join(" "));
    let slow: Vec<&Duration> = took.iter().filter(|d| **d >= LIMIT).collect();
    assert!(
        slow.is_empty(),
        "{} of {GETS} GETs took {LIMIT:?} or more (ms: {})",
        slow.len(),
        shown.join(" ")
    );
}

//! Blob store URLs as a user meets them through the `kingpin` binary: where
//! credentials come from (the environment and profiles, never the URL, and
//! the cloud's metadata service only when asked), and what a region
//! mismatch says. Each run starts from an empty environment, so nothing on
//! this machine (a real ~/.aws, AWS_* variables) decides the outcome.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kingpin_conformance_tests::endpoints::shared_s3;
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::{LocalServer, S3Credentials};
use kingpin_conformance_tests::unique_suffix;

const BUCKET: &str = "kingpin-test";
const LIST: &str = "config.manageddata.cli.blobs";

/// `kingpin` with nothing in its environment but PATH, a home of its own
/// and `vars`, on a SQLite coordinator in `dir`.
fn kingpin(dir: &Path, blobstore: &str, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("KINGPIN_HOME", dir)
        .env("USER", "tester")
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .arg("--coordinator")
        .arg(format!("sqlite://{}/kingpin.db", dir.display()))
        .arg("--blobstore")
        .arg(blobstore)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("kingpin runs")
}

fn code_and_stderr(output: &Output) -> (i32, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn expect_ok(output: Output, what: &str) -> String {
    let (code, stderr) = code_and_stderr(&output);
    assert_eq!(code, 0, "{what} failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn credential_vars(credentials: &S3Credentials) -> [(&'static str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", credentials.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", credentials.secret_key.clone()),
    ]
}

/// The shared S3 server with the test bucket made, or `None` when the run
/// opted out of servers.
async fn s3_with_bucket(test: &str) -> Option<(String, S3Credentials)> {
    let (endpoint, credentials) = shared_s3(test).await?;
    drop(aws_sdk_store(&endpoint, &credentials, BUCKET, "setup").await);
    Some((endpoint, credentials))
}

/// Both S3 backends, given only AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
/// in the environment, write and read through the test server.
#[tokio::test]
async fn s3_urls_take_credentials_from_the_environment() {
    let Some((endpoint, credentials)) =
        s3_with_bucket("s3_urls_take_credentials_from_the_environment").await
    else {
        return;
    };
    let vars = credential_vars(&credentials);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for url in [
        format!(
            "s3a://{BUCKET}/cli-{}?endpoint={endpoint}&allow_http=true",
            unique_suffix()
        ),
        format!(
            "s3://{BUCKET}/cli-{}?endpoint={endpoint}&path_style=true",
            unique_suffix()
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        expect_ok(
            kingpin(dir.path(), &url, &vars, &["list", "add", LIST, "a", "b"]),
            &url,
        );
        let items = expect_ok(
            kingpin(dir.path(), &url, &vars, &["list", "get", LIST]),
            &url,
        );
        assert_eq!(items, "a\nb\n", "{url}");
    }
}

/// Counts the connections a listener on 127.0.0.1 receives, closing each.
fn connection_counter() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (endpoint, count)
}

/// With no credentials anywhere, neither S3 backend asks the instance
/// metadata service (pointed at a local listener here, through the variable
/// aws-config reads) unless the URL says `instance_metadata=true`; the
/// error says where credentials may come from.
#[test]
fn the_metadata_service_is_contacted_only_when_asked() {
    let (metadata, contacts) = connection_counter();
    let vars = [("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.as_str())];
    // Nothing listens here: a request that got this far would be refused.
    let port = kingpin_conformance_tests::servers::free_port().unwrap();
    for scheme in ["s3", "s3a"] {
        let url = format!(
            "{scheme}://{BUCKET}/p?endpoint=http://127.0.0.1:{port}&{}",
            if scheme == "s3" {
                "path_style=true"
            } else {
                "allow_http=true"
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let out = kingpin(dir.path(), &url, &vars, &["list", "add", LIST, "a"]);
        let (code, stderr) = code_and_stderr(&out);
        assert_eq!(code, 7, "{scheme}: unauthorized expected: {stderr}");
        assert!(stderr.contains("AWS_ACCESS_KEY_ID"), "{stderr}");
        assert!(stderr.contains("instance_metadata=true"), "{stderr}");
        assert_eq!(
            contacts.load(Ordering::SeqCst),
            0,
            "{scheme} contacted the metadata service"
        );

        let asked = format!("{url}&instance_metadata=true");
        let out = kingpin(dir.path(), &asked, &vars, &["list", "add", LIST, "a"]);
        assert_ne!(out.status.code(), Some(0), "no credentials, yet it worked");
        let after = contacts.swap(0, Ordering::SeqCst);
        assert!(
            after > 0,
            "{scheme} with instance_metadata=true never asked the metadata service"
        );
    }
}

/// Google and Azure stores with no credentials are refused before any
/// request, naming the variables to set.
#[test]
fn cloud_stores_without_credentials_are_refused_before_any_request() {
    for (url, hint) in [
        ("gs://kingpin-bucket/p", "GOOGLE_APPLICATION_CREDENTIALS"),
        (
            "az://container/p?account_name=kingpintest",
            "AZURE_STORAGE_ACCOUNT_KEY",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = kingpin(dir.path(), url, &[], &["list", "add", LIST, "a"]);
        let (code, stderr) = code_and_stderr(&out);
        assert_eq!(code, 7, "{url}: {stderr}");
        assert!(stderr.contains(hint), "{url}: {stderr}");
        assert!(stderr.contains("instance_metadata=true"), "{url}: {stderr}");
    }
}

/// A bucket in another region than the one requests are signed for: both
/// backends exit 6 (invalid input) and name the region the server expects.
#[tokio::test]
async fn a_region_mismatch_names_the_expected_region() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = LocalServer::start_s3_in_region(&dir.path().join("s3"), "eu-west-1")
        .await
        .map(Some)
        .unwrap_or_else(|e| {
            if kingpin_conformance_tests::endpoints::skip_external() {
                None
            } else {
                panic!("cannot start an S3 server in eu-west-1: {e}")
            }
        })
    else {
        return;
    };
    let endpoint = format!("http://{}", server.endpoint());
    let credentials = server.s3_credentials();
    let bucket = kingpin_s3::S3BlobStore::connect(
        kingpin_s3::S3Config::new(BUCKET, "setup")
            .with_endpoint(&endpoint)
            .with_path_style(true)
            .with_region("eu-west-1")
            .with_credentials(&credentials.access_key, &credentials.secret_key),
    )
    .await
    .unwrap();
    bucket.ensure_bucket().await.unwrap();
    let vars = credential_vars(&credentials);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for url in [
        format!("s3://{BUCKET}/p?endpoint={endpoint}&path_style=true&region=us-east-1"),
        format!("s3a://{BUCKET}/p?endpoint={endpoint}&allow_http=true&region=us-east-1"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let out = kingpin(work.path(), &url, &vars, &["list", "add", LIST, "a"]);
        let (code, stderr) = code_and_stderr(&out);
        assert_eq!(code, 6, "{url}: {stderr}");
        assert!(stderr.contains("eu-west-1"), "{url}: {stderr}");
        assert!(!stderr.contains(&credentials.secret_key), "{stderr}");
    }
}

/// A warning from below the command (here: the blob store found that the
/// server ignores conditional writes and falls back) reaches stderr, and
/// the command still succeeds without overwriting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_from_the_blob_store_reach_stderr() {
    let Some((endpoint, credentials)) =
        s3_with_bucket("warnings_from_the_blob_store_reach_stderr").await
    else {
        return;
    };
    let proxy = kingpin_conformance_tests::s3_proxy::S3FaultProxy::start(&endpoint, &credentials)
        .await
        .unwrap();
    proxy.set_faults(kingpin_conformance_tests::s3_proxy::Faults {
        drop_conditional_headers: true,
        ..Default::default()
    });
    let url = format!(
        "s3://{BUCKET}/warn-{}?endpoint={}&path_style=true",
        unique_suffix(),
        proxy.endpoint()
    );
    let dir = tempfile::tempdir().unwrap();
    let vars = credential_vars(&credentials);
    let out = tokio::task::spawn_blocking(move || {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = kingpin(dir.path(), &url, &vars, &["list", "add", LIST, "a"]);
        drop(dir);
        out
    })
    .await
    .unwrap();
    let (code, stderr) = code_and_stderr(&out);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("WARN"), "no warning on stderr: {stderr:?}");
    assert!(stderr.contains("If-None-Match"), "{stderr}");
    assert!(!stderr.contains(&credentials.secret_key), "{stderr}");
}

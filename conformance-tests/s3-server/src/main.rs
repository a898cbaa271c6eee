//! `kingpin-test-s3`: the S3-compatible server the tests and benchmarks run
//! against, on loopback. It serves a directory through `s3s-fs` (SigV4
//! required) and differs from that crate's own binary in two ways that the
//! figures depend on:
//!
//! - accepted connections have `TCP_NODELAY`: without it, a response written
//!   in two segments waits for the client's delayed ACK (~40 ms) about half
//!   the time on a keep-alive connection, which made every latency measured
//!   through the server read 40 ms high;
//! - `--region` makes it answer requests signed for another region the way
//!   AWS does (400 `AuthorizationHeaderMalformed`, "expecting '<region>'"),
//!   so clients' handling of a region mismatch can be tested.
//!
//! Credentials come from `KINGPIN_TEST_S3_ACCESS_KEY` and
//! `KINGPIN_TEST_S3_SECRET_KEY` (never the command line, which `ps` shows).
//!
//! ```sh
//! KINGPIN_TEST_S3_ACCESS_KEY=id KINGPIN_TEST_S3_SECRET_KEY=secret \
//!     kingpin-test-s3 --port 9000 /tmp/s3-data
//! ```

mod region;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tokio::net::TcpListener;

use crate::region::RequireRegion;

/// Serves a directory as an S3-compatible server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Port to listen on (0: any free port, printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Refuse requests signed for any other region, as AWS does.
    #[arg(long)]
    region: Option<String>,
    /// Directory holding the buckets (created if missing).
    root: PathBuf,
}

fn credential(var: &str) -> Result<String> {
    std::env::var(var).with_context(|| format!("{var} must be set: the server requires SigV4"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let access_key = credential("KINGPIN_TEST_S3_ACCESS_KEY")?;
    let secret_key = credential("KINGPIN_TEST_S3_SECRET_KEY")?;
    std::fs::create_dir_all(&args.root)
        .with_context(|| format!("cannot create {}", args.root.display()))?;
    let files = FileSystem::new(&args.root)
        .map_err(|e| anyhow::anyhow!("cannot serve {}: {e:?}", args.root.display()))?;
    let mut service = S3ServiceBuilder::new(files);
    service.set_auth(SimpleAuth::from_single(access_key, secret_key));
    if let Some(region) = args.region {
        service.set_access(RequireRegion::new(region));
    }
    let service = service.build();

    let listener = TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    println!("listening on http://{}", listener.local_addr()?);
    let connections = ConnectionBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        // The reason this binary exists: see the crate docs.
        if let Err(e) = socket.set_nodelay(true) {
            eprintln!("cannot set TCP_NODELAY: {e}");
        }
        let connection = connections
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

//! Serves the ping service and keeps it in its serverset while it serves:
//!
//! ```text
//! ping-server --coordinator zk://127.0.0.1:2181 --service ping --env dev \
//!     --listen 127.0.0.1:0 --name a
//! ```
//!
//! Prints `listening on <address>` once registered; leaves the serverset
//! and stops on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kingpin_api::discovery::ServerSet;
use kingpin_client::Endpoint;
use kingpin_example_ping::gen::ping::PingServer;
use kingpin_example_ping::PingHandler;
use kingpin_thrift::ServerBuilder;

#[derive(Parser)]
#[command(about = "Serves the ping service, registered in its serverset")]
struct Args {
    /// The coordinator's URL (zk://, etcd://, sqlite://).
    #[arg(long, env = "KINGPIN_COORDINATOR")]
    coordinator: String,
    /// The service: the serverset is /discovery/<service>/<env>.
    #[arg(long, default_value = "ping")]
    service: String,
    /// The environment.
    #[arg(long, default_value = "dev")]
    env: String,
    /// The address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// The host:port registered, if not the address listened on.
    #[arg(long)]
    advertise: Option<Endpoint>,
    /// The name the server gives in its answers.
    #[arg(long, default_value = "ping")]
    name: String,
    /// Milliseconds between leaving the serverset and closing.
    #[arg(long, default_value_t = 1000)]
    drain_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let coordinator = kingpin::open_coordinator(&args.coordinator)
        .await
        .context("opening the coordinator")?;
    let serverset = ServerSet::new(coordinator, &args.service, &args.env)?;
    let mut builder = ServerBuilder::new(serverset).drain(Duration::from_millis(args.drain_ms));
    if let Some(endpoint) = args.advertise {
        builder = builder.advertise(endpoint);
    }
    let server = PingServer::new(PingHandler::new(&args.name));
    let running = builder.serve(server, args.listen).await?;
    println!("listening on {}", running.local_addr());
    running.wait().await?;
    Ok(())
}

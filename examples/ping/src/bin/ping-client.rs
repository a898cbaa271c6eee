//! Calls the ping service through its serverset:
//!
//! ```text
//! ping-client --serverset-file /var/serverset/discovery.ping.dev --count 3
//! ping-client --coordinator zk://127.0.0.1:2181 --service ping --env dev
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use kingpin_api::discovery::ServerSet;
use kingpin_example_ping::gen::ping::{PingClientBuilder, PingRequest};
use kingpin_thrift::{ClientBuilder, ClientMetrics, ServersetDiscover, Transport};

#[derive(Parser)]
#[command(about = "Calls the ping service through its serverset")]
struct Args {
    /// The serverset file the monitor keeps (discovery.<service>.<env>).
    #[arg(long, conflicts_with = "coordinator")]
    serverset_file: Option<PathBuf>,
    /// Or the coordinator's URL, to read the serverset directly.
    #[arg(long, env = "KINGPIN_COORDINATOR")]
    coordinator: Option<String>,
    /// The service (with --coordinator).
    #[arg(long, default_value = "ping")]
    service: String,
    /// The environment (with --coordinator).
    #[arg(long, default_value = "dev")]
    env: String,
    /// The message to send.
    #[arg(long, default_value = "hello")]
    message: String,
    /// How many calls to make.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Buffered instead of framed transport.
    #[arg(long)]
    buffered: bool,
    /// Each call's timeout, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Print the client's metrics at the end.
    #[arg(long)]
    metrics: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let servers = match (&args.serverset_file, &args.coordinator) {
        (Some(file), _) => ServersetDiscover::file(file)?,
        (None, Some(url)) => {
            let coordinator = kingpin::open_coordinator(url)
                .await
                .context("opening the coordinator")?;
            let serverset = ServerSet::new(coordinator, &args.service, &args.env)?;
            ServersetDiscover::coordinator(&serverset).await?
        }
        (None, None) => bail!("say where the servers are: --serverset-file or --coordinator"),
    };
    let metrics = ClientMetrics::new();
    let client = ClientBuilder::new(PingClientBuilder::new(&args.service), servers)
        .transport(if args.buffered {
            Transport::Buffered
        } else {
            Transport::Framed
        })
        .timeout(Duration::from_millis(args.timeout_ms))
        .metrics(metrics.clone())
        .build();
    for _ in 0..args.count {
        let started = Instant::now();
        let request = PingRequest {
            message: args.message.clone().into(),
        };
        match client.ping(request).await? {
            volo_thrift::MaybeException::Ok(pong) => println!(
                "{} from {} in {:.1} ms",
                pong.message,
                pong.server,
                started.elapsed().as_secs_f64() * 1000.0
            ),
            volo_thrift::MaybeException::Exception(e) => println!("exception: {e:?}"),
        }
    }
    if args.metrics {
        print!("{}", metrics.encode());
    }
    Ok(())
}

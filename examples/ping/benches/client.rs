//! Client benchmark: kingpin-thrift's client against the raw volo client
//! with a fixed address, on one local ping server (framed transport for
//! both). At concurrency 1 and 64 — that many tasks each calling `ping` in
//! a loop — each client warms up for a second, then runs for
//! `KINGPIN_BENCH_SECONDS` (5 by default), every call timed. Reported:
//! calls/s, p50, p99 and max per client and concurrency, and kingpin's
//! throughput as a fraction of the raw client's (the target is 0.90).
//!
//! `cargo bench -p kingpin-example-ping --bench client`. The runs go
//! raw, kingpin, kingpin, raw, so that drift on a shared machine does not
//! favour either; each client's two runs are reported together.
//! `KINGPIN_BENCH_ROUNDS` repeats that sequence (1 by default).
//! `KINGPIN_BENCH_VARIANTS` (comma-separated) adds clients built
//! otherwise, to see what costs what: `raw-timeout` (the raw client with
//! a 1 s call timeout, as kingpin's default), and kingpin with
//! `no-recycle` ([`Recycle::never`]), `no-timeout` (no call timeout),
//! `bare` (neither). `KINGPIN_BENCH_ONLY` (a client's name as printed,
//! e.g. `kingpin`) runs that client alone, and `KINGPIN_BENCH_CONCURRENCY`
//! (e.g. `64`) at that concurrency alone, to profile it. Each run also
//! reports the CPU time per call of the client's threads and of the
//! server's (from Linux's schedstat): the machine's cores are shared, so
//! client CPU is what costs throughput.
//! Without `--bench` (under `cargo test`) it runs a fraction of a second
//! each, as a smoke test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kingpin_client::Endpoint;
use kingpin_conformance_tests::latency::{env_number, Latencies};
use kingpin_example_ping::gen::ping::{
    MkPingGenericClient, PingClient, PingClientBuilder, PingRequest, PingRequestSend,
    PingResponseRecv, PingServer,
};
use kingpin_example_ping::PingHandler;
use kingpin_thrift::{default_hosts, ClientBuilder, Recycle, ServersetDiscover};
use volo::net::DefaultIncoming;
use volo_thrift::codec::DefaultMakeCodec;
use volo_thrift::MaybeException;

const CONCURRENCIES: [usize; 2] = [1, 64];
/// Kingpin's throughput as a fraction of the raw client's: the issue's
/// target.
const TARGET_RATIO: f64 = 0.90;

/// A client under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// volo's client with the server's address and the framed codec.
    Raw,
    /// With a 1 s call timeout, as kingpin's by default.
    RawTimeout,
    /// kingpin-thrift's client with its defaults.
    Kingpin,
    /// With connections never recycled.
    NoRecycle,
    /// With no call timeout.
    NoTimeout,
    /// With neither.
    Bare,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Raw => "raw volo",
            Variant::RawTimeout => "raw volo, 1 s timeout",
            Variant::Kingpin => "kingpin",
            Variant::NoRecycle => "kingpin, no recycle",
            Variant::NoTimeout => "kingpin, no timeout",
            Variant::Bare => "kingpin, neither",
        }
    }

    fn is_raw(self) -> bool {
        matches!(self, Variant::Raw | Variant::RawTimeout)
    }

    fn parse(name: &str) -> Option<Variant> {
        match name.trim() {
            "raw-timeout" => Some(Variant::RawTimeout),
            "no-recycle" => Some(Variant::NoRecycle),
            "no-timeout" => Some(Variant::NoTimeout),
            "bare" => Some(Variant::Bare),
            _ => None,
        }
    }

    fn client(self, server: SocketAddr) -> PingClient {
        match self {
            Variant::Raw => PingClientBuilder::new("ping")
                .address(server)
                .make_codec(DefaultMakeCodec::framed())
                .build(),
            Variant::RawTimeout => PingClientBuilder::new("ping")
                .address(server)
                .make_codec(DefaultMakeCodec::framed())
                .rpc_timeout(Some(Duration::from_secs(1)))
                .build(),
            Variant::Kingpin => kingpin(server).build(),
            Variant::NoRecycle => kingpin(server).recycle(Recycle::never()).build(),
            Variant::NoTimeout => kingpin(server).timeout(None).build(),
            Variant::Bare => kingpin(server)
                .recycle(Recycle::never())
                .timeout(None)
                .build(),
        }
    }
}

/// kingpin-thrift's client of `server`, as a serverset of one host.
fn kingpin(
    server: SocketAddr,
) -> ClientBuilder<MkPingGenericClient, PingRequestSend, PingResponseRecv> {
    let hosts =
        default_hosts().static_hosts([Endpoint::new(server.ip().to_string(), server.port())]);
    ClientBuilder::new(
        PingClientBuilder::new("ping"),
        ServersetDiscover::new(hosts),
    )
}

/// What one or more timed runs of a client measured.
struct Measured {
    /// Calls answered within the runs' time.
    calls: usize,
    errors: usize,
    elapsed: Duration,
    /// Every call's, those that ended after the time included.
    latencies: Vec<Duration>,
    /// The CPU the runs took, when the system tells.
    cpu: Option<CpuTime>,
}

impl Measured {
    fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }

    fn add(&mut self, other: Measured) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.cpu = self.cpu.zip(other.cpu).map(|(a, b)| a + b);
    }

    /// The client's and the server's CPU time per call, in µs, and how
    /// many times a call the client's threads were put on a CPU, when
    /// measured.
    fn cpu_per_call(&self) -> Option<(f64, f64, f64)> {
        let calls = self.latencies.len().max(1) as f64;
        self.cpu.map(|cpu| {
            (
                cpu.client.as_secs_f64() * 1e6 / calls,
                cpu.server.as_secs_f64() * 1e6 / calls,
                cpu.client_runs as f64 / calls,
            )
        })
    }
}

/// The CPU time of this process's threads: the server's (its threads are
/// named `ping-server`) and the rest, the client side's.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTime {
    client: Duration,
    server: Duration,
    /// How many times the client's threads were put on a CPU: a thread
    /// woken to do a little costs more than its CPU time shows.
    client_runs: u64,
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;

    fn add(self, other: CpuTime) -> CpuTime {
        CpuTime {
            client: self.client + other.client,
            server: self.server + other.server,
            client_runs: self.client_runs + other.client_runs,
        }
    }
}

impl CpuTime {
    /// From Linux's per-thread `schedstat` (nanoseconds on a CPU); `None`
    /// elsewhere.
    fn now() -> Option<CpuTime> {
        let mut cpu = CpuTime::default();
        for thread in std::fs::read_dir("/proc/self/task").ok()? {
            let dir = thread.ok()?.path();
            let Some((nanos, runs)) = std::fs::read_to_string(dir.join("schedstat"))
                .ok()
                .and_then(|stat| {
                    let mut fields = stat.split_whitespace();
                    let nanos: u64 = fields.next()?.parse().ok()?;
                    let runs: u64 = fields.nth(1)?.parse().ok()?;
                    Some((nanos, runs))
                })
            else {
                // A thread that just ended.
                continue;
            };
            let on_cpu = Duration::from_nanos(nanos);
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if name.trim_end() == "ping-server" {
                cpu.server += on_cpu;
            } else {
                cpu.client += on_cpu;
                cpu.client_runs += runs;
            }
        }
        Some(cpu)
    }

    fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            client: self.client.saturating_sub(earlier.client),
            server: self.server.saturating_sub(earlier.server),
            client_runs: self.client_runs.saturating_sub(earlier.client_runs),
        }
    }
}

/// `concurrency` tasks call `ping` in a loop for `duration`. Every call
/// started before the end is timed; those answered before it count for
/// the throughput, so that the last calls' stragglers do not.
async fn drive(client: &PingClient, concurrency: usize, duration: Duration) -> Measured {
    let cpu_before = CpuTime::now();
    let end = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut in_time = 0;
                let mut errors = 0;
                while Instant::now() < end {
                    let request = PingRequest {
                        message: "ping".into(),
                    };
                    let sent = Instant::now();
                    let answer = client.ping(request).await;
                    let answered = Instant::now();
                    latencies.push(answered - sent);
                    if answered <= end {
                        in_time += 1;
                    }
                    match answer {
                        Ok(MaybeException::Ok(_)) => {}
                        Ok(MaybeException::Exception(e)) => {
                            errors += 1;
                            eprintln!("ping raised {e:?}");
                        }
                        Err(e) => {
                            errors += 1;
                            eprintln!("ping failed: {e}");
                        }
                    }
                }
                (latencies, in_time, errors)
            })
        })
        .collect();
    let mut measured = Measured {
        calls: 0,
        errors: 0,
        elapsed: duration,
        latencies: Vec::new(),
        cpu: None,
    };
    for task in tasks {
        let (latencies, in_time, errors) = task.await.expect("a calling task panicked");
        measured.calls += in_time;
        measured.errors += errors;
        measured.latencies.extend(latencies);
    }
    measured.cpu = CpuTime::now()
        .zip(cpu_before)
        .map(|(after, before)| after.since(before));
    measured
}

/// Serves ping on a loopback port, on a thread and runtime of its own so
/// that the server's work is not scheduled among the clients' tasks.
fn start_server() -> SocketAddr {
    let (bound, address) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ping-server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ping-server")
                .enable_all()
                .build()
                .expect("the server's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding a loopback port");
                bound
                    .send(listener.local_addr().expect("the bound address"))
                    .expect("the benchmark waits for the address");
                let served = PingServer::new(PingHandler::new("bench"))
                    .run(DefaultIncoming::from(listener))
                    .await;
                // volo's server returns on SIGINT/SIGTERM (it handles
                // them): end the benchmark with it.
                if let Err(e) = served {
                    eprintln!("the ping server failed: {e}");
                }
                std::process::exit(1);
            });
        })
        .expect("starting the server's thread");
    address.recv().expect("the server's address")
}

fn micros(us: f64) -> String {
    format!("{us:.0} µs")
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, duration) = if full {
        (
            Duration::from_secs(1),
            Duration::from_secs(env_number("KINGPIN_BENCH_SECONDS", 5) as u64),
        )
    } else {
        (Duration::from_millis(100), Duration::from_millis(200))
    };
    let rounds = env_number("KINGPIN_BENCH_ROUNDS", 1).max(1);
    let mut variants = vec![Variant::Raw, Variant::Kingpin];
    if let Ok(extra) = std::env::var("KINGPIN_BENCH_VARIANTS") {
        for name in extra.split(',').filter(|n| !n.trim().is_empty()) {
            match Variant::parse(name) {
                Some(v) if !variants.contains(&v) => variants.push(v),
                Some(_) => {}
                None => panic!(
                    "KINGPIN_BENCH_VARIANTS: unknown {name:?} (raw-timeout, no-recycle, no-timeout, bare)"
                ),
            }
        }
    }

    if let Ok(only) = std::env::var("KINGPIN_BENCH_ONLY") {
        variants.retain(|v| v.name() == only);
    }
    let concurrencies: Vec<usize> = match std::env::var("KINGPIN_BENCH_CONCURRENCY") {
        Ok(only) => vec![only
            .parse()
            .expect("KINGPIN_BENCH_CONCURRENCY: a number of concurrent calls")],
        Err(_) => CONCURRENCIES.to_vec(),
    };
    let server = start_server();
    println!(
        "client benchmark ({} run; ping server on {server}, framed; {} s per run after {} s of warm-up; {} cores)",
        if full { "full" } else { "smoke" },
        duration.as_secs_f64(),
        warmup.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let clients: Vec<(Variant, PingClient)> = variants
        .iter()
        .map(|&variant| (variant, variant.client(server)))
        .collect();

    // (variant, concurrency, both runs together)
    let mut results: Vec<(Variant, usize, Measured)> = Vec::new();
    for &concurrency in &concurrencies {
        // A B B A: a drift over the runs weighs on both alike.
        let round = clients.iter().chain(clients.iter().rev());
        for (variant, client) in (0..rounds).flat_map(|_| round.clone()) {
            drive(client, concurrency, warmup).await;
            let run = drive(client, concurrency, duration).await;
            println!(
                "{:<22} c={concurrency:<3} {:>8.0} calls/s  errors={:<3} {}{}",
                variant.name(),
                run.calls_per_second(),
                run.errors,
                Latencies::new(run.latencies.clone()).summary_ms(),
                run.cpu_per_call()
                    .map(|(client, server, runs)| format!(
                        "   CPU/call: client {client:.1} µs, server {server:.1} µs; client threads run {runs:.2} times a call"
                    ))
                    .unwrap_or_default(),
            );
            match results
                .iter_mut()
                .find(|(v, c, _)| v == variant && *c == concurrency)
            {
                Some((_, _, total)) => total.add(run),
                None => results.push((*variant, concurrency, run)),
            }
        }
    }

    println!();
    println!("| client | concurrency | calls/s | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (variant, concurrency, measured) in &results {
        let latencies = Latencies::new(measured.latencies.clone());
        println!(
            "| {} | {concurrency} | {:.0} | {} | {} | {} |",
            variant.name(),
            measured.calls_per_second(),
            micros(latencies.percentile_us(50.0)),
            micros(latencies.percentile_us(99.0)),
            micros(latencies.max_us()),
        );
    }
    if results.iter().all(|(_, _, m)| m.cpu.is_some()) {
        println!();
        println!("| client | concurrency | client CPU/call | server CPU/call |");
        println!("|---|---:|---:|---:|");
        for (variant, concurrency, measured) in &results {
            if let Some((client, server, _)) = measured.cpu_per_call() {
                println!(
                    "| {} | {concurrency} | {client:.1} µs | {server:.1} µs |",
                    variant.name()
                );
            }
        }
    }
    println!();
    let errors: usize = results.iter().map(|(_, _, m)| m.errors).sum();
    if errors > 0 {
        println!("{errors} calls failed (counted in calls/s and latencies)");
    }
    for &concurrency in &concurrencies {
        let throughput = |variant: Variant| {
            results
                .iter()
                .find(|(v, c, _)| *v == variant && *c == concurrency)
                .map(|(_, _, m)| m.calls_per_second())
        };
        for baseline in [Variant::Raw, Variant::RawTimeout] {
            let Some(raw) = throughput(baseline) else {
                continue;
            };
            for &variant in variants.iter().filter(|v| !v.is_raw()) {
                if let Some(ours) = throughput(variant) {
                    let ratio = ours / raw;
                    println!(
                        "concurrency {concurrency}: {} / {} throughput = {ratio:.3} ({} the {TARGET_RATIO:.2} target)",
                        variant.name(),
                        baseline.name(),
                        if ratio >= TARGET_RATIO { "meets" } else { "misses" },
                    );
                }
            }
        }
    }
}

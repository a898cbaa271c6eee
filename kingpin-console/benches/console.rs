//! Console benchmark (issue 17, part 8): the `kingpin console` binary over
//! ZooKeeper + S3 holding 10,000 configs, a service with 100 environments
//! (a tree with inheritance) and 1,000 hosts whose monitors report what
//! they synced. The monitors are real `kingpin_monitor::Monitor`s (one
//! ZooKeeper session each, `report_status = true`), so the status nodes
//! are written by the monitor's own reporting code.
//!
//! Each page is requested N times in a row on one keep-alive connection,
//! then N times from 8 clients at once. A sample is the time from just
//! before the request is sent to the last byte of the body received, on
//! loopback. The console's RSS is sampled from `/proc/<pid>/status` every
//! 50 ms from its start (the cold catalog load included) to the end, and
//! its peak (VmHWM) read at the end. Targets: p99 < 100 ms on the list,
//! search and host pages; memory < 100 MB.
//!
//! `cargo build --release -p kingpin-cli --bin kingpin` first (the bench
//! runs `target/release/kingpin`, or `KINGPIN_BIN`), then
//! `cargo bench -p kingpin-console --bench console`. Sizes:
//! `KINGPIN_BENCH_CONFIGS` (10000), `KINGPIN_BENCH_ENVIRONMENTS` (100),
//! `KINGPIN_BENCH_HOSTS` (1000), `KINGPIN_BENCH_SUBSCRIBED` (configs each
//! host syncs, 20), `KINGPIN_BENCH_REQUESTS` (N, 300). Uses the servers
//! named by `KINGPIN_TEST_ZK` and `KINGPIN_TEST_S3` or starts its own.
//! Under `cargo test` it runs a tiny smoke version.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use kingpin_api::environment::{content_of, EnvPath, Environments, HostId, ServiceName};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin_api::status::read_all;
use kingpin_api::{BlobStore, ChangeInfo, ConfigName, ConfigStore, Coordinator};
use kingpin_conformance_tests::endpoints::{bench_endpoint, bench_s3};
use kingpin_conformance_tests::latency::{env_number, Latencies};
use kingpin_conformance_tests::s3::aws_sdk_store;
use kingpin_conformance_tests::servers::ServerKind;
use kingpin_conformance_tests::{unique_namespace, unique_suffix};
use kingpin_monitor::{Monitor, MonitorSettings};

/// Writes in flight while seeding.
const SEED_CONCURRENCY: usize = 64;
/// Clients of the concurrent variant.
const CLIENTS: usize = 8;
/// The text a few configs hold, for the content search.
const NEEDLE: &str = "203.0.113.77";

struct Sizes {
    configs: usize,
    environments: usize,
    hosts: usize,
    subscribed: usize,
    requests: usize,
}

struct Setup {
    zk_url: String,
    blobstore_url: String,
    coordinator: Arc<dyn Coordinator>,
    blobs: Arc<dyn BlobStore>,
    store: ConfigStore,
}

/// Config `i`: 20 teams × 10 areas × 50 items at full size.
fn config_name(i: usize) -> ConfigName {
    let name = format!(
        "config.bench.team{:02}.area{}.item{:03}",
        i / 500,
        (i / 50) % 10,
        i % 50
    );
    ConfigName::parse(&name).expect("a valid bench config name")
}

/// A mix of lists, maps, mapped lists and JSON of a few hundred bytes,
/// every 100th a list of about 8 KiB; every 500th holds [`NEEDLE`].
fn config_content(i: usize) -> Bytes {
    let mut value = match i % 4 {
        0 => {
            let len = if i % 100 == 0 { 500 } else { 20 };
            serde_json::json!((0..len)
                .map(|k| format!("10.{}.{}.{}", i % 256, k / 256, k % 256))
                .collect::<Vec<_>>())
        }
        1 => serde_json::Value::Object(
            (0..15)
                .map(|k| (format!("key{k:02}"), format!("value-{i}-{k}").into()))
                .collect(),
        ),
        2 => serde_json::Value::Object(
            (0..5)
                .map(|k| {
                    let list: Vec<String> = (0..4).map(|j| format!("member-{i}-{k}-{j}")).collect();
                    (format!("group{k}"), list.into())
                })
                .collect(),
        ),
        _ => serde_json::json!({
            "limits": { "rps": i, "burst": i * 2 },
            "owner": format!("team{:02}", i / 500),
            "description": format!("settings of item {i}, seeded by the console benchmark"),
        }),
    };
    if i % 500 == 7 {
        match &mut value {
            serde_json::Value::Array(items) => items.push(NEEDLE.into()),
            serde_json::Value::Object(map) => {
                map.insert("blocked".into(), NEEDLE.into());
            }
            _ => {}
        }
    }
    Bytes::from(serde_json::to_vec_pretty(&value).expect("JSON"))
}

async fn seed_configs(setup: &Setup, count: usize) {
    let started = Instant::now();
    let change = ChangeInfo::new("bench", "seed");
    let written = stream::iter(0..count)
        .map(|i| {
            let (store, change) = (&setup.store, &change);
            async move {
                let content = config_content(i);
                let size = content.len();
                store
                    .write(&config_name(i), content, change)
                    .await
                    .expect("seeding a config");
                size
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .fold(0usize, |sum, size| async move { sum + size })
        .await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "seeded {count} configs ({:.1} MiB of content) in {took:.1} s, {:.0} writes/s, {SEED_CONCURRENCY} in flight",
        written as f64 / (1 << 20) as f64,
        count as f64 / took
    );
}

/// A root, `sqrt(count - 1)` regions below it and the rest spread under
/// the regions, each overriding some of its parent's values; the leaves.
async fn seed_environments(setup: &Setup, service: &ServiceName, count: usize) -> Vec<EnvPath> {
    let started = Instant::now();
    let envs = Environments::new(setup.store.clone());
    let change = ChangeInfo::new("bench", "seed");
    let content = |value| content_of("bench", value).expect("environment content");
    let root = serde_json::json!({"db": {"pool": 5, "timeout_ms": 300}, "region": "none", "features": {"beta": false}});
    envs.create(service, &EnvPath::root(), content(root), &change)
        .await
        .expect("the root environment");
    let regions = ((count.saturating_sub(1)) as f64).sqrt().floor().max(1.0) as usize;
    let per_region = (count.saturating_sub(1 + regions)) / regions;
    let mut leaves = Vec::new();
    for r in 0..regions {
        let region = EnvPath::root().child(&format!("r{r}")).expect("env path");
        let own = serde_json::json!({"region": format!("r{r}"), "db": {"pool": 10 + r}});
        envs.create(service, &region, content(own), &change)
            .await
            .expect("a region environment");
        for z in 0..per_region {
            let zone = region.child(&format!("z{z}")).expect("env path");
            let own =
                serde_json::json!({"zone": format!("r{r}z{z}"), "features": {"beta": z % 2 == 0}});
            envs.create(service, &zone, content(own), &change)
                .await
                .expect("a zone environment");
            leaves.push(zone);
        }
        if per_region == 0 {
            leaves.push(region);
        }
    }
    println!(
        "created {} environments of service {service} in {:.1} s",
        1 + regions + regions * per_region,
        started.elapsed().as_secs_f64()
    );
    leaves
}

fn host_id(i: usize) -> HostId {
    HostId::parse(&format!("host{i:04}.bench.example")).expect("a valid host id")
}

/// Output directories of the monitors: on tmpfs when there is one.
fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// `hosts` monitors, each associated with a leaf environment and
/// subscribed to it and the first `subscribed` configs, reporting their
/// status; returns once every host's report shows every entry synced.
async fn start_monitors(
    setup: &Setup,
    service: &ServiceName,
    leaves: &[EnvPath],
    sizes: &Sizes,
    base: &Path,
) -> Vec<Monitor> {
    let started = Instant::now();
    let envs = Environments::new(setup.store.clone());
    let hosts: Vec<HostId> = (0..sizes.hosts).map(host_id).collect();
    for (l, leaf) in leaves.iter().enumerate() {
        let mine: Vec<HostId> = hosts
            .iter()
            .skip(l)
            .step_by(leaves.len())
            .cloned()
            .collect();
        envs.associate_many(service, &mine, leaf)
            .await
            .expect("associating hosts");
    }
    let dep = ConfigName::parse("benchhosts.dep").expect("a dependency name");
    let manager = MetaConfigManager::new(setup.coordinator.clone());
    manager
        .create_dependency(&dep)
        .await
        .expect("the dependency");
    let environment = MetaConfig::environment(service.as_str()).expect("a metaconfig");
    manager.create(&environment).await.expect("a metaconfig");
    manager
        .add_to_dependency(&dep, &environment.name)
        .await
        .expect("dependency member");
    for i in 0..sizes.subscribed {
        let name = config_name(i);
        manager
            .create(&MetaConfig::config(name.clone()).expect("a metaconfig"))
            .await
            .expect("a metaconfig");
        manager
            .add_to_dependency(&dep, &name)
            .await
            .expect("dependency member");
    }
    let mut running = Vec::with_capacity(sizes.hosts);
    for (i, host) in hosts.iter().enumerate() {
        let mut settings = MonitorSettings::new(&setup.zk_url, &setup.blobstore_url, dep.clone());
        settings.config_dir = base.join(format!("host{i}/config"));
        settings.serverset_dir = base.join(format!("host{i}/serverset"));
        settings.admin_addr = None;
        settings.host = Some(host.to_string());
        settings.report_status = true;
        settings.status_interval = Duration::from_secs(1);
        running.push(
            Monitor::start_with_blob_store(settings, setup.blobs.clone())
                .await
                .expect("a monitor"),
        );
    }
    let entries = sizes.subscribed + 1;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let reports = read_all(setup.coordinator.as_ref())
            .await
            .expect("reading the status reports");
        let complete = reports
            .iter()
            .filter(|r| r.entries.len() == entries && r.entries.iter().all(|e| e.version.is_some()))
            .count();
        if complete == sizes.hosts {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {complete} of {} hosts reported {entries} synced entries within 600 s",
            sizes.hosts
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "{} monitors started, synced {entries} entries each and reported in {:.1} s",
        sizes.hosts,
        started.elapsed().as_secs_f64()
    );
    running
}

/// The `kingpin` binary: `KINGPIN_BIN`, else next to this bench's
/// directory (`target/<profile>/kingpin`).
fn kingpin_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KINGPIN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("this bench's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the bench runs from target/<profile>/deps");
    let binary = profile_dir.join("kingpin");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build --release -p kingpin-cli --bin kingpin` first (or set KINGPIN_BIN)",
        binary.display()
    );
    binary
}

/// Runs `kingpin console` with proxy sign-in from loopback; its address.
fn start_console(setup: &Setup, s3_keys: (&str, &str), dir: &Path) -> (Child, String) {
    let settings = dir.join("console.toml");
    std::fs::write(
        &settings,
        "proxy_header = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[[grants]]\nusers = [\"*\"]\nprefix = \"\"\nrole = \"viewer\"\n",
    )
    .expect("writing the console settings");
    let binary = kingpin_binary();
    let mut child = Command::new(&binary)
        .args(["console", "--listen", "127.0.0.1:0", "--settings"])
        .arg(&settings)
        .env("KINGPIN_COORDINATOR", &setup.zk_url)
        .env("KINGPIN_BLOBSTORE", &setup.blobstore_url)
        .env("AWS_ACCESS_KEY_ID", s3_keys.0)
        .env("AWS_SECRET_ACCESS_KEY", s3_keys.1)
        .env("KINGPIN_HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let stdout = child.stdout.take().expect("the console's stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the console printed its address before exiting")
            .expect("the console's stdout");
        if let Some(at) = line.find("http://") {
            break line[at..].trim_end_matches('/').to_owned();
        }
    };
    (child, address)
}

/// The console's RSS (max of 50 ms samples) and VmRSS/VmHWM now, in KiB.
#[derive(Default)]
struct MemorySampler {
    max_rss_kib: AtomicU64,
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
}

fn sample_memory(pid: u32) -> Arc<MemorySampler> {
    let sampler = Arc::new(MemorySampler::default());
    let into = sampler.clone();
    tokio::spawn(async move {
        while let Some(rss) = proc_status_kib(pid, "VmRSS:") {
            into.max_rss_kib.fetch_max(rss, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    sampler
}

/// One page of the run: what it is, its path, and text its body must hold.
struct PageCase {
    what: &'static str,
    path: String,
    expect: String,
}

async fn fetch(client: &reqwest::Client, base: &str, case: &PageCase) -> Duration {
    let started = Instant::now();
    let response = client
        .get(format!("{base}{}", case.path))
        .header("X-Forwarded-User", "bench")
        .send()
        .await
        .expect("a response");
    let status = response.status();
    let body = response.bytes().await.expect("the body");
    let took = started.elapsed();
    assert!(status.is_success(), "{} answered {status}", case.path);
    assert!(
        String::from_utf8_lossy(&body).contains(&case.expect),
        "{} does not hold {:?}",
        case.path,
        case.expect
    );
    took
}

async fn requests(
    client: &reqwest::Client,
    base: &str,
    case: &PageCase,
    n: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        samples.push(fetch(client, base, case).await);
    }
    samples
}

/// N requests from [`CLIENTS`] clients at once, sharing the connection pool.
async fn concurrent(client: &reqwest::Client, base: &str, case: &PageCase, n: usize) -> Latencies {
    let per_client = n.div_ceil(CLIENTS);
    let runs = (0..CLIENTS).map(|_| requests(client, base, case, per_client));
    Latencies::new(futures::future::join_all(runs).await.concat())
}

fn pages(sizes: &Sizes) -> Vec<PageCase> {
    let deep = config_name((sizes.configs * 7 / 20).min(sizes.configs - 1));
    let deep_prefix = deep
        .as_str()
        .rsplit_once('.')
        .map_or("", |(p, _)| p)
        .to_owned();
    let watched = config_name(5.min(sizes.subscribed - 1));
    let host = host_id(42 % sizes.hosts);
    let on_version = |n: usize| format!("<strong>{n}</strong> on version 1");
    let case = |what, path: String, expect: String| PageCase { what, path, expect };
    vec![
        case("list: root", "/configs".into(), "config".into()),
        case(
            "list: config.bench (teams)",
            "/configs?prefix=config.bench".into(),
            "team00".into(),
        ),
        case(
            "list: deep prefix (50 configs)",
            format!("/configs?prefix={deep_prefix}"),
            "item0".into(),
        ),
        case(
            "search: name",
            "/search?q=item007".into(),
            "matching".into(),
        ),
        case(
            "search: content, some hits",
            format!("/search?q={NEEDLE}&content=on"),
            NEEDLE.into(),
        ),
        case(
            "search: content, no hit",
            "/search?q=nowhere-in-any-config&content=on".into(),
            "0 matching".into(),
        ),
        case(
            "host page",
            format!("/host/{}", host.as_str()),
            "in sync".into(),
        ),
        case(
            "hosts list (all hosts)",
            "/hosts".into(),
            format!("{} hosts report", sizes.hosts),
        ),
        case(
            "config page: hosts on versions",
            format!("/config/{}", watched.as_str()),
            on_version(sizes.hosts),
        ),
    ]
}

fn row(what: &str, mode: &str, latencies: &Latencies) {
    let verdict = if latencies.percentile_us(99.0) < 100_000.0 {
        "ok"
    } else {
        "MISSED p99 < 100 ms"
    };
    println!("{what:<34} {mode:<10} {} {verdict}", latencies.summary_ms());
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            configs: env_number("KINGPIN_BENCH_CONFIGS", 10_000),
            environments: env_number("KINGPIN_BENCH_ENVIRONMENTS", 100),
            hosts: env_number("KINGPIN_BENCH_HOSTS", 1_000),
            subscribed: env_number("KINGPIN_BENCH_SUBSCRIBED", 20),
            requests: env_number("KINGPIN_BENCH_REQUESTS", 300),
        }
    } else {
        Sizes {
            configs: 100,
            environments: 10,
            hosts: 3,
            subscribed: 3,
            requests: 5,
        }
    };
    let mut servers = Vec::new();
    let zk = bench_endpoint(ServerKind::ZooKeeper, &mut servers).await;
    let (s3, credentials) = bench_s3(&mut servers).await;
    let prefix = unique_suffix();
    let blobs: Arc<dyn BlobStore> =
        Arc::new(aws_sdk_store(&s3, &credentials, "kingpin-bench", &prefix).await);
    let zk_url = format!("zk://{zk}{}", unique_namespace());
    let coordinator = kingpin::open_coordinator(&zk_url).await.expect("ZooKeeper");
    let setup = Setup {
        blobstore_url: format!(
            "s3://kingpin-bench/{prefix}?endpoint={s3}&region=us-east-1&path_style=true&conditional_put=if-none-match"
        ),
        store: ConfigStore::new(coordinator.clone(), blobs.clone()),
        zk_url,
        coordinator,
        blobs,
    };
    println!(
        "console benchmark ({} run): {} configs, {} environments, {} reporting hosts syncing {} configs + their environment; ZooKeeper {zk}, S3 {s3}",
        if full { "full" } else { "smoke" },
        sizes.configs,
        sizes.environments,
        sizes.hosts,
        sizes.subscribed,
    );
    seed_configs(&setup, sizes.configs).await;
    let service = ServiceName::parse("benchsvc").expect("a service name");
    let leaves = seed_environments(&setup, &service, sizes.environments).await;
    let scratch = tempfile::tempdir_in(scratch_base()).expect("a scratch dir");
    let monitors = start_monitors(&setup, &service, &leaves, &sizes, scratch.path()).await;

    let started = Instant::now();
    let (mut console, base) = start_console(
        &setup,
        (&credentials.access_key, &credentials.secret_key),
        scratch.path(),
    );
    let memory = sample_memory(console.id());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let cases = pages(&sizes);
    // The first list waits for the catalog's first read of every config;
    // the hosts list, for the first read of every status report.
    fetch(&client, &base, &cases[0]).await;
    let catalog_loaded = started.elapsed();
    let hosts_page = &cases[7];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let response = client
            .get(format!("{base}{}", hosts_page.path))
            .header("X-Forwarded-User", "bench")
            .send()
            .await
            .expect("a response");
        let body = response.text().await.expect("the body");
        if body.contains(&hosts_page.expect) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the console never read every host's report"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "console started; first list answered (catalog loaded) {:.2} s after start, every host report read {:.2} s after start",
        catalog_loaded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let rss_loaded = proc_status_kib(console.id(), "VmRSS:").unwrap_or(0);

    println!(
        "\nrequest sent → full body received, loopback, keep-alive; {} requests per row (concurrent: {CLIENTS} clients)",
        sizes.requests
    );
    for case in &cases {
        let latencies = Latencies::new(requests(&client, &base, case, sizes.requests).await);
        row(case.what, "sequential", &latencies);
    }
    for case in &cases {
        let latencies = concurrent(&client, &base, case, sizes.requests).await;
        row(case.what, "concurrent", &latencies);
    }
    let pid = console.id();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rss_now = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let sampled = memory.max_rss_kib.load(Ordering::Relaxed);
    println!(
        "\nconsole memory: RSS {:.1} MiB after the catalog loaded, {:.1} MiB at the end, max sampled {:.1} MiB, peak (VmHWM) {:.1} MiB — target < 100 MB (95.4 MiB): {}",
        mib(rss_loaded),
        mib(rss_now),
        mib(sampled),
        mib(hwm),
        if (hwm as f64) * 1024.0 < 100e6 { "ok" } else { "MISSED" }
    );
    let _ = console.kill();
    let _ = console.wait();
    drop(monitors);
}

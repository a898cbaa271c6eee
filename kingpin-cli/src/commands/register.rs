//! `kingpin register`: keeps a service instance in its serverset while its
//! health check passes, and leaves on SIGTERM or SIGINT.

use std::future::Future;
use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{Context as _, Result};
use kingpin::kingpin_api::discovery::{HealthPolicy, Member, Registration};
use kingpin::kingpin_api::metaconfig::MetaConfig;
use kingpin::kingpin_api::Error;
use kingpin_client::Endpoint;
use tokio::signal::unix::{signal, SignalKind};

use super::Context;
use crate::cli::RegisterArgs;
use crate::health_checks::CheckSpec;
use crate::settings::redact;

/// How long leaving may take after a signal before kingpin exits anyway
/// (closing the session then removes the member).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Registers until SIGTERM or SIGINT, then leaves.
pub async fn run(args: RegisterArgs, ctx: &Context) -> Result<()> {
    init_logging(ctx.out.is_quiet());
    // Installed first: from here on a signal means "leave", not "die with
    // the member still registered".
    let shutdown = shutdown_signals().context("cannot listen for SIGTERM and SIGINT")?;
    tokio::pin!(shutdown);

    // Everything is checked before the coordinator is opened.
    MetaConfig::serverset(&args.service, &args.env)?;
    let host = match args.host {
        Some(host) => host,
        None => hostname()?,
    };
    let endpoint = endpoint(host, args.port)?;
    let policy = HealthPolicy {
        interval: args.interval,
        timeout: args.timeout,
        rise: args.rise,
        fall: args.fall,
    };
    policy.validate()?;
    let check = CheckSpec::build(args.check.as_ref(), &endpoint, &args.command)?;
    let mut member = Member::new(endpoint);
    if let Some(shard) = args.shard {
        member = member.with_shard(shard);
    }

    let coordinator = tokio::select! {
        coordinator = ctx.backends.coordinator() => coordinator?,
        () = &mut shutdown => return Ok(()),
    };
    tracing::info!(
        coordinator = %redact(&ctx.settings.coordinator.value),
        interval = ?policy.interval,
        timeout = ?policy.timeout,
        rise = policy.rise,
        fall = policy.fall,
        "connected"
    );
    let registration = Registration::builder(coordinator, &args.service, &args.env, member)?
        .shared_check(check)
        .policy(policy)
        .start()?;
    let mut state = registration.state();
    tokio::select! {
        () = &mut shutdown => {}
        // Ended by itself: a join no retry fixes; stop() says why.
        _ = state.wait_for(|s| s.stopped) => {}
    }
    match tokio::time::timeout(LEAVE_TIMEOUT, registration.stop()).await {
        Ok(left) => Ok(left.context("cannot leave the serverset")?),
        Err(_) => Err(Error::unavailable(format!(
            "leaving the serverset took longer than {LEAVE_TIMEOUT:?}; the member goes \
             when the session ends"
        ))
        .into()),
    }
}

/// `host:port` as a serverset endpoint, refusing a host no endpoint can
/// have (so the serverset file stays parseable).
fn endpoint(host: String, port: u16) -> Result<Endpoint, Error> {
    let endpoint = Endpoint::new(host, port);
    match endpoint.to_string().parse::<Endpoint>() {
        Ok(parsed) if parsed == endpoint => Ok(endpoint),
        _ => Err(Error::invalid(format!(
            "--host {:?} is not a host name or IP address",
            endpoint.host
        ))),
    }
}

/// This machine's host name, the default `--host`: stable and readable,
/// where an address looked up from it is often a loopback one.
fn hostname() -> Result<String, Error> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| Error::invalid("cannot read this machine's host name; pass --host"))
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signals() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!("{name}: leaving the serverset");
    })
}

/// Logs to stderr: `info` (`warn` with `--quiet`) unless `RUST_LOG` says
/// otherwise.
pub(super) fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Only fails when a subscriber is already set, which is then used.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_must_be_endpoint_hosts() {
        assert!(endpoint("10.0.0.1".into(), 80).is_ok());
        assert!(endpoint("::1".into(), 80).is_ok());
        assert!(endpoint("web-1.example.com".into(), 80).is_ok());
        for bad in ["", "a b", "a/b", "[x]"] {
            assert!(endpoint(bad.into(), 80).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_host_is_the_host_name() {
        assert!(!hostname().unwrap().is_empty());
    }
}

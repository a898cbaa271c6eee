//! A command run while a lock or a leadership is held (`kingpin lock`,
//! `kingpin elect`): started without a shell in a process group of its
//! own, stopped (SIGTERM, then SIGKILL after a grace period) as soon as the
//! hold is in doubt, and sent on the signals kingpin itself receives.

use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context as _, Result};
use kingpin::kingpin_api::{self, ErrorKind, NodePath};
use kingpin_recipes::{LockGuard, NotHeldReason};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};

/// Where a held command's run ended.
pub enum Ended {
    /// The command exited by itself (or was killed by someone else).
    Exited(ExitStatus),
    /// The hold was suspended or lost; the command was stopped.
    HoldLost(NotHeldReason),
    /// kingpin got SIGTERM or SIGINT; the command got it too and ended.
    Interrupted(ExitStatus),
}

/// Runs `argv` with `env` added to its environment until it exits, the
/// hold stops being held, or kingpin is told to stop.
pub async fn run_while_held(
    argv: &[String],
    env: &[(&str, String)],
    hold: &LockGuard,
    grace: Duration,
) -> Result<Ended> {
    let (program, args) = argv
        .split_first()
        .context("no command to run (give it after `--`)")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    tracing::info!(command = %program, pid = child.id(), "running while held");
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    tokio::select! {
        status = child.wait() => Ok(Ended::Exited(status.context("cannot wait for the command")?)),
        reason = hold.until_not_held() => {
            tracing::warn!(%reason, "no longer held; stopping the command");
            stop(&mut child, group, Signal::SIGTERM, grace).await?;
            Ok(Ended::HoldLost(reason))
        }
        _ = terminate.recv() => Ok(Ended::Interrupted(stop(&mut child, group, Signal::SIGTERM, grace).await?)),
        _ = interrupt.recv() => Ok(Ended::Interrupted(stop(&mut child, group, Signal::SIGINT, grace).await?)),
    }
}

/// Sends `first` to the command's process group, then SIGKILL if it has
/// not exited within `grace`.
async fn stop(
    child: &mut Child,
    group: Option<Pid>,
    first: Signal,
    grace: Duration,
) -> Result<ExitStatus> {
    if let Some(group) = group {
        let _ = killpg(group, first);
    }
    if let Ok(status) = tokio::time::timeout(grace, child.wait()).await {
        return status.context("cannot wait for the command");
    }
    tracing::warn!(?grace, "the command outlived its grace period; killing it");
    if let Some(group) = group {
        let _ = killpg(group, Signal::SIGKILL);
    }
    child.wait().await.context("cannot wait for the command")
}

/// The exit code a shell would report for `status`: the code, or 128 plus
/// the signal that killed it.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => 1,
    }
}

/// The node a lock or election name stands for: an absolute node path as
/// given, or a plain name (`[A-Za-z0-9._-]`) under `dir`.
pub fn recipe_path(dir: &str, name: &str) -> Result<NodePath, kingpin_api::Error> {
    if name.starts_with('/') {
        return NodePath::parse(name);
    }
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(kingpin_api::Error::invalid(format!(
            "{name:?} is not a name (letters, digits, `.`, `_`, `-`) or an absolute node path"
        )));
    }
    NodePath::parse(&format!("/{dir}/{name}"))
}

/// A recipe's error as the kingpin error whose kind sets the exit code.
pub fn recipe_error(e: kingpin_recipes::Error) -> kingpin_api::Error {
    match e {
        kingpin_recipes::Error::Coordinator(e) => e,
        other => kingpin_api::Error::new(other.kind(), other.to_string()),
    }
}

/// The error for a hold lost while its command ran.
pub fn hold_lost(what: &str, reason: NotHeldReason) -> kingpin_api::Error {
    kingpin_api::Error::new(
        ErrorKind::SessionExpired,
        format!("{what} was lost ({reason}); the command was stopped"),
    )
}

/// `host:pid`, the identifier contenders show by default.
pub fn default_identifier() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_default();
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_under_their_directory_and_paths_stay() {
        assert_eq!(
            recipe_path("locks", "nightly-report").unwrap().as_str(),
            "/locks/nightly-report"
        );
        assert_eq!(
            recipe_path("locks", "/app/lock").unwrap().as_str(),
            "/app/lock"
        );
        for bad in ["", "..", "a/b", "a b", "é", "/a/../b"] {
            let err = recipe_path("locks", bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn exit_codes_are_a_shells() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }
}

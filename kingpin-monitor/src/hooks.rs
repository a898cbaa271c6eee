//! Running the host's own hooks after a file changes.

use std::path::Path;
use std::process::Stdio;

use kingpin_api::ConfigName;

use crate::settings::Hook;

/// Runs every hook whose glob matches `name`, in order, each with its
/// timeout. The command comes from the local settings only; the name,
/// file and version are passed in the environment, never spliced into a
/// command line. Returns the failures, described.
pub async fn run_hooks(
    hooks: &[Hook],
    name: &ConfigName,
    file: &Path,
    version: Option<u64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for hook in hooks.iter().filter(|h| h.names.matches(name.as_str())) {
        if let Err(e) = run_hook(hook, name, file, version).await {
            tracing::warn!(config = %name, hook = ?hook.command, error = %e, "hook failed");
            failures.push(format!("hook {:?}: {e}", hook.command[0]));
        }
    }
    failures
}

async fn run_hook(
    hook: &Hook,
    name: &ConfigName,
    file: &Path,
    version: Option<u64>,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new(&hook.command[0]);
    command
        .args(&hook.command[1..])
        .env("KINGPIN_NAME", name.as_str())
        .env("KINGPIN_FILE", file)
        .env(
            "KINGPIN_VERSION",
            version.map(|v| v.to_string()).unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("exited with {status}")),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("timed out after {:?}", hook.timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hook(names: &str, command: &[&str], timeout: Duration) -> Hook {
        Hook {
            names: glob::Pattern::new(names).unwrap(),
            command: command.iter().map(|s| s.to_string()).collect(),
            timeout,
        }
    }

    #[tokio::test]
    async fn matching_hooks_run_with_the_entry_in_their_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let script = format!(
            "echo \"$KINGPIN_NAME $KINGPIN_VERSION\" > {}",
            out.display()
        );
        let hooks = [
            hook(
                "config.app.*",
                &["/bin/sh", "-c", &script],
                Duration::from_secs(10),
            ),
            hook("other.*", &["/bin/false"], Duration::from_secs(10)),
        ];
        let name = ConfigName::parse("config.app.flags").unwrap();
        let failures = run_hooks(&hooks, &name, Path::new("/x"), Some(3)).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "config.app.flags 3\n"
        );
    }

    #[tokio::test]
    async fn failures_and_timeouts_are_reported() {
        let hooks = [
            hook("*", &["/bin/false"], Duration::from_secs(10)),
            hook("*", &["/bin/sleep", "30"], Duration::from_millis(100)),
            hook("*", &["/nonexistent/program"], Duration::from_secs(1)),
        ];
        let name = ConfigName::parse("config.a").unwrap();
        let failures = run_hooks(&hooks, &name, Path::new("/x"), None).await;
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[1].contains("timed out"), "{failures:?}");
    }
}

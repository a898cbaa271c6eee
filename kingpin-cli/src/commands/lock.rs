//! `kingpin lock NAME -- COMMAND`: runs a command while holding a lock,
//! like `zk-flock` or `etcdctl lock`.

use anyhow::Result;
use kingpin_recipes::Lock;

use super::held_command::{
    default_identifier, exit_code, hold_lost, recipe_error, recipe_path, run_while_held, Ended,
};
use super::Context;
use crate::cli::LockArgs;
use crate::failure::{CommandExit, UsageError};

/// Takes the lock, runs the command, releases the lock.
pub async fn run(args: LockArgs, ctx: &Context) -> Result<()> {
    let path = recipe_path("locks", &args.name)?;
    if args.command.is_empty() {
        return Err(UsageError("give the command to run after `--`".to_owned()).into());
    }
    let identifier = args.identifier.unwrap_or_else(default_identifier);
    let coordinator = ctx.backends.coordinator().await?;
    let lock = Lock::new(coordinator, path.clone()).with_identifier(identifier);
    tracing::info!(lock = %path, "waiting for the lock");
    let guard = match args.timeout {
        None => lock.lock().await.map_err(recipe_error)?,
        Some(timeout) => match lock.lock_timeout(timeout).await.map_err(recipe_error)? {
            Some(guard) => guard,
            None => {
                return Err(kingpin::kingpin_api::Error::new(
                    kingpin::kingpin_api::ErrorKind::AlreadyExists,
                    format!("{path} is held by someone else; not acquired within {timeout:?}"),
                )
                .into())
            }
        },
    };
    tracing::info!(lock = %path, token = %guard.token(), "holding the lock");
    let env = [
        ("KINGPIN_FENCING_TOKEN", guard.token().to_string()),
        ("KINGPIN_LOCK_PATH", path.to_string()),
        ("KINGPIN_LOCK_NODE", guard.node().to_string()),
    ];
    let ended = run_while_held(&args.command, &env, &guard, args.grace).await;
    // Released whatever happened; a failed release goes with the session.
    if let Err(e) = guard.release().await {
        tracing::warn!(lock = %path, error = %e, "cannot release the lock; it goes with the session");
    }
    match ended? {
        Ended::Exited(status) | Ended::Interrupted(status) => match exit_code(status) {
            0 => Ok(()),
            code => Err(CommandExit(code).into()),
        },
        Ended::HoldLost(reason) => Err(hold_lost(&format!("the lock {path}"), reason).into()),
    }
}

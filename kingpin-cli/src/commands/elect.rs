//! `kingpin elect NAME -- COMMAND`: runs a command only while this process
//! leads an election, and stops it as soon as leadership is in doubt.

use anyhow::Result;
use kingpin_recipes::Election;

use super::held_command::{
    default_identifier, exit_code, hold_lost, recipe_error, recipe_path, run_while_held, Ended,
};
use super::Context;
use crate::cli::ElectArgs;
use crate::failure::{CommandExit, UsageError};

/// Campaigns, runs the command while leader, resigns.
pub async fn run(args: ElectArgs, ctx: &Context) -> Result<()> {
    let path = recipe_path("elections", &args.name)?;
    if args.command.is_empty() {
        return Err(UsageError("give the command to run after `--`".to_owned()).into());
    }
    let identifier = args.identifier.unwrap_or_else(default_identifier);
    let coordinator = ctx.backends.coordinator().await?;
    let election = Election::new(coordinator, path.clone()).with_identifier(identifier);
    tracing::info!(election = %path, "campaigning");
    let leadership = election.campaign().await.map_err(recipe_error)?;
    tracing::info!(election = %path, token = %leadership.token(), "elected");
    let env = [
        ("KINGPIN_FENCING_TOKEN", leadership.token().to_string()),
        ("KINGPIN_ELECTION_PATH", path.to_string()),
        ("KINGPIN_LEADER_NODE", leadership.node().to_string()),
    ];
    let ended = run_while_held(&args.command, &env, &leadership, args.grace).await;
    if let Err(e) = leadership.resign().await {
        tracing::warn!(election = %path, error = %e, "cannot resign; the candidacy goes with the session");
    }
    match ended? {
        Ended::Exited(status) | Ended::Interrupted(status) => match exit_code(status) {
            0 => Ok(()),
            code => Err(CommandExit(code).into()),
        },
        Ended::HoldLost(reason) => Err(hold_lost(&format!("leadership of {path}"), reason).into()),
    }
}

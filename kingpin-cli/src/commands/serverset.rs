//! `kingpin serverset`: the members of a serverset, and accepting an
//! update monitors refuse (a service retired on purpose).

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use kingpin::kingpin_api::discovery::{alive_endpoints, Acceptance, ServerSet, MAX_ACCEPTANCE};
use kingpin::kingpin_api::{ChangeInfo, ConfigName, Error};
use serde_json::json;

use super::Context;
use crate::cli::ServersetCommand;

/// Runs a `kingpin serverset` command.
pub async fn run(command: ServersetCommand, ctx: &Context) -> Result<()> {
    match command {
        ServersetCommand::Show { name } => {
            let name = serverset_name(&name)?;
            let serverset = ServerSet::from_name(ctx.backends.coordinator().await?, &name)?;
            let members = serverset.members().await?;
            let endpoints: Vec<String> = alive_endpoints(&members)
                .iter()
                .map(ToString::to_string)
                .collect();
            let acceptance = serverset.acceptance().await?;
            let mut text = endpoints.join("\n");
            if let Some(a) = &acceptance {
                text.push_str(&format!("\n# {}", describe(a)));
            }
            ctx.out.data(
                text,
                json!({ "name": name.as_str(), "members": endpoints, "acceptance": acceptance }),
            )
        }
        ServersetCommand::AcceptNext {
            name,
            valid_for,
            message,
        } => {
            let name = serverset_name(&name)?;
            if valid_for.is_zero() || valid_for > MAX_ACCEPTANCE {
                anyhow::bail!(Error::invalid(format!(
                    "--for {}: an acceptance lasts more than 0 and at most {}",
                    humantime::format_duration(valid_for),
                    humantime::format_duration(MAX_ACCEPTANCE)
                )));
            }
            let serverset = ServerSet::from_name(ctx.backends.coordinator().await?, &name)?;
            let message = message.unwrap_or_else(|| "kingpin serverset accept-next".to_owned());
            let acceptance = serverset
                .accept_next(valid_for, &ChangeInfo::new(ctx.author(), message))
                .await?;
            ctx.out.done(describe(&acceptance), json!(acceptance))
        }
        ServersetCommand::CancelAccept { name } => {
            let name = serverset_name(&name)?;
            let serverset = ServerSet::from_name(ctx.backends.coordinator().await?, &name)?;
            let removed = serverset.cancel_acceptance().await?;
            let text = if removed {
                format!("monitors refuse emptying or shrinking updates of {name} again")
            } else {
                format!("{name} had no acceptance")
            };
            ctx.out
                .done(text, json!({ "name": name.as_str(), "removed": removed }))
        }
    }
}

/// A serverset name (`discovery.SERVICE.ENV`), checked before any I/O.
fn serverset_name(name: &str) -> Result<ConfigName> {
    let name = ConfigName::parse(name)?;
    match name.as_str().split('.').collect::<Vec<_>>()[..] {
        ["discovery", _, _] => Ok(name),
        _ => Err(Error::invalid(format!(
            "{name} is not a serverset name: discovery.SERVICE.ENV"
        ))
        .into()),
    }
}

fn describe(a: &Acceptance) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if a.is_valid_at(now) {
        let left = Duration::from_secs(a.expires_ms.saturating_sub(now) / 1000);
        format!(
            "monitors write the next refused update of {} (emptying or shrinking) for {} more, accepted by {}: {}",
            a.serverset,
            humantime::format_duration(left),
            a.author,
            a.message
        )
    } else {
        format!(
            "the acceptance of {} by {} has expired: monitors refuse emptying or shrinking updates",
            a.serverset, a.author
        )
    }
}

//! `kingpin decider`: decider values in [0, 100] (`ManagedDecider`).

use anyhow::Result;
use kingpin::kingpin_api::decider::{validate, ManagedDecider};
use kingpin::kingpin_api::{Error, ErrorKind};
use serde_json::{json, Map, Value};

use super::Context;
use crate::cli::DeciderCommand;
use crate::output::lines;

/// Runs a `kingpin decider` command.
pub async fn run(command: DeciderCommand, ctx: &Context) -> Result<()> {
    match command {
        DeciderCommand::Get { name } => {
            let value = decider(ctx).await?.get(&name).await?.ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("decider {name:?} is not set"))
            })?;
            ctx.out
                .data(value.to_string(), json!({ "name": name, "value": value }))
        }
        DeciderCommand::Set { name, value } => {
            let value = parse_value(&name, &value)?;
            decider(ctx).await?.set(&name, value).await?;
            ctx.out.done(
                format!("set {name} to {value}"),
                json!({ "name": name, "value": value }),
            )
        }
        DeciderCommand::List => {
            let values = decider(ctx).await?.list().await?;
            let text = lines(
                values
                    .iter()
                    .map(|(name, value)| format!("{name}\t{value}")),
            );
            let json: Map<String, Value> = values
                .into_iter()
                .map(|(name, value)| (name, json!(value)))
                .collect();
            ctx.out.data(text, Value::Object(json))
        }
        DeciderCommand::Remove { name } => {
            let removed = decider(ctx).await?.remove(&name).await?;
            let text = if removed {
                format!("removed {name}")
            } else {
                format!("{name} was not set")
            };
            ctx.out
                .done(text, json!({ "name": name, "removed": removed }))
        }
    }
}

async fn decider(ctx: &Context) -> Result<ManagedDecider> {
    Ok(ManagedDecider::new(ctx.store().await?).with_author(ctx.author()))
}

/// A name and a value in [0, 100], checked before anything is opened (the
/// store checks again).
fn parse_value(name: &str, text: &str) -> Result<f64, Error> {
    let value = text.parse::<f64>().map_err(|_| {
        Error::invalid(format!(
            "decider value {text:?} for {name:?} is not a number in [0, 100]; nothing was written"
        ))
    })?;
    validate(name, value)
        .map_err(|e| Error::invalid(format!("{}; nothing was written", e.message())))?;
    Ok(value)
}

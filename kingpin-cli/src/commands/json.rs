//! `kingpin json`: a managed JSON document (`ManagedJson<Value>`).

use anyhow::Result;
use kingpin::kingpin_api::managed::ManagedJson;
use kingpin::kingpin_api::{Error, ErrorKind};
use serde_json::Value;

use super::{config_name, record_json, Context};
use crate::cli::JsonCommand;
use crate::content::read_content;

/// Runs a `kingpin json` command.
pub async fn run(command: JsonCommand, ctx: &Context) -> Result<()> {
    match command {
        JsonCommand::Get { name } => {
            let name = config_name(&name)?;
            let document = ManagedJson::<Value>::new(ctx.store().await?, name.clone())
                .get()
                .await?
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("{name} holds no JSON document (it does not exist or is empty)"),
                    )
                })?;
            let text = serde_json::to_string_pretty(&document)?;
            ctx.out.data(text, document)
        }
        JsonCommand::Set { name, content } => {
            let name = config_name(&name)?;
            let content = read_content(&content)?;
            let invalid = |why: String| {
                Error::invalid(format!(
                    "the new content of {name} is not JSON ({why}); nothing was written"
                ))
            };
            let text = std::str::from_utf8(&content).map_err(|e| invalid(e.to_string()))?;
            // Checked here too, so bad input opens nothing.
            serde_json::from_str::<Value>(text).map_err(|e| invalid(e.to_string()))?;
            let record = ManagedJson::<Value>::new(ctx.store().await?, name.clone())
                .with_author(ctx.author())
                .set_text(text)
                .await?;
            ctx.out
                .done(record.version.to_string(), record_json(&name, &record))
        }
    }
}

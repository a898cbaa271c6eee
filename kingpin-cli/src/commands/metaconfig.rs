//! `kingpin metaconfig`: what monitors sync (`MetaConfigManager`).

use anyhow::Result;
use kingpin::kingpin_api::metaconfig::{MetaConfig, MetaConfigManager};
use kingpin::kingpin_api::{ConfigName, Error, ErrorKind};
use serde_json::{json, Value};

use super::{config_name, Context};
use crate::cli::MetaconfigCommand;
use crate::output::lines;

/// Runs a `kingpin metaconfig` command.
pub async fn run(command: MetaconfigCommand, ctx: &Context) -> Result<()> {
    match command {
        MetaconfigCommand::CreateConfig {
            name,
            max_random_delay_ms,
        } => {
            let metaconfig = MetaConfig::config(config_name(&name)?)?
                .with_max_random_delay_ms(max_random_delay_ms);
            create(ctx, metaconfig).await
        }
        MetaconfigCommand::CreateEnvironment {
            service,
            max_random_delay_ms,
        } => {
            let metaconfig =
                MetaConfig::environment(&service)?.with_max_random_delay_ms(max_random_delay_ms);
            create(ctx, metaconfig).await
        }
        MetaconfigCommand::CreateServerset {
            service,
            env,
            max_random_delay_ms,
        } => {
            let metaconfig = MetaConfig::serverset(&service, &env)?
                .with_max_random_delay_ms(max_random_delay_ms);
            create(ctx, metaconfig).await
        }
        MetaconfigCommand::Show { name } => {
            let name = config_name(&name)?;
            let metaconfig = manager(ctx).await?.get(&name).await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("metaconfig {name} does not exist"),
                )
            })?;
            let text = format!(
                "name: {}\nkind: {}\nnode_path: {}\nfile_name: {}\nmax_random_delay_ms: {}",
                metaconfig.name,
                metaconfig.kind,
                metaconfig.node_path,
                metaconfig.file_name,
                metaconfig.max_random_delay_ms
            );
            ctx.out.data(text, metaconfig_json(&metaconfig))
        }
        MetaconfigCommand::List => {
            let names = manager(ctx).await?.list().await?;
            name_list(ctx, &names)
        }
        MetaconfigCommand::Remove { name } => {
            let name = config_name(&name)?;
            let removed = manager(ctx).await?.remove(&name).await?;
            let text = if removed {
                format!("removed metaconfig {name}")
            } else {
                format!("metaconfig {name} did not exist")
            };
            ctx.out
                .done(text, json!({ "name": name.as_str(), "removed": removed }))
        }
    }
}

/// The metaconfig manager, opening only the coordinator.
pub async fn manager(ctx: &Context) -> Result<MetaConfigManager> {
    Ok(MetaConfigManager::new(ctx.backends.coordinator().await?))
}

async fn create(ctx: &Context, metaconfig: MetaConfig) -> Result<()> {
    manager(ctx).await?.create(&metaconfig).await?;
    ctx.out.done(
        format!("created metaconfig {}", metaconfig.name),
        metaconfig_json(&metaconfig),
    )
}

/// A metaconfig as JSON.
pub fn metaconfig_json(metaconfig: &MetaConfig) -> Value {
    json!({
        "name": metaconfig.name.as_str(),
        "kind": metaconfig.kind.to_string(),
        "node_path": metaconfig.node_path.as_str(),
        "file_name": metaconfig.file_name,
        "max_random_delay_ms": metaconfig.max_random_delay_ms,
    })
}

/// Prints names one per line, or as a JSON array.
pub fn name_list(ctx: &Context, names: &[ConfigName]) -> Result<()> {
    ctx.out.data(
        lines(names.iter().map(ConfigName::as_str)),
        json!(names.iter().map(ConfigName::as_str).collect::<Vec<_>>()),
    )
}

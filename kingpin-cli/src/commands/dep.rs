//! `kingpin dep`: dependencies (`*.dep`), the groups of metaconfigs hosts
//! subscribe to.

use anyhow::Result;
use kingpin::kingpin_api::metaconfig::{is_dependency, MetaConfigManager, DEPENDENCY_SUFFIX};
use kingpin::kingpin_api::{ConfigName, Error, ErrorKind};
use serde_json::{json, Value};

use super::metaconfig::{manager, metaconfig_json, name_list};
use super::{config_name, Context};
use crate::cli::DepCommand;
use crate::output::lines;

/// Runs a `kingpin dep` command.
pub async fn run(command: DepCommand, ctx: &Context) -> Result<()> {
    match command {
        DepCommand::Create { dep } => {
            let dep = dependency_name(&dep)?;
            manager(ctx).await?.create_dependency(&dep).await?;
            ctx.out
                .done(format!("created {dep}"), json!({ "name": dep.as_str() }))
        }
        DepCommand::Add { dep, members } => {
            let dep = dependency_name(&dep)?;
            let members = names(&members)?;
            add(ctx, &dep, &members).await
        }
        DepCommand::Remove { dep, members } => {
            let dep = dependency_name(&dep)?;
            let members = names(&members)?;
            let manager = manager(ctx).await?;
            let mut removed = 0;
            for member in &members {
                removed += usize::from(manager.remove_from_dependency(&dep, member).await?);
            }
            ctx.out.done(
                format!("removed {removed} from {dep}"),
                json!({ "name": dep.as_str(), "removed": removed }),
            )
        }
        DepCommand::Show { dep, resolved } => {
            let dep = dependency_name(&dep)?;
            if resolved {
                show_resolved(ctx, &dep).await
            } else {
                let members = manager(ctx).await?.members(&dep).await?;
                ctx.out.data(
                    lines(members.iter().map(ConfigName::as_str)),
                    json!({ "name": dep.as_str(), "members": as_strs(&members) }),
                )
            }
        }
        DepCommand::List => {
            let names = manager(ctx).await?.list_dependencies().await?;
            name_list(ctx, &names)
        }
        DepCommand::Delete { dep } => {
            let dep = dependency_name(&dep)?;
            let removed = manager(ctx).await?.remove_dependency(&dep).await?;
            let text = if removed {
                format!("deleted {dep}")
            } else {
                format!("{dep} did not exist")
            };
            ctx.out
                .done(text, json!({ "name": dep.as_str(), "removed": removed }))
        }
    }
}

/// A name that must end in `.dep`, checked before any I/O.
fn dependency_name(name: &str) -> Result<ConfigName, Error> {
    let name = config_name(name)?;
    if !is_dependency(&name) {
        return Err(Error::invalid(format!(
            "{name} is not a dependency name: dependency names end in {DEPENDENCY_SUFFIX}"
        )));
    }
    Ok(name)
}

fn names(names: &[String]) -> Result<Vec<ConfigName>, Error> {
    names.iter().map(|name| config_name(name)).collect()
}

fn as_strs(names: &[ConfigName]) -> Vec<&str> {
    names.iter().map(ConfigName::as_str).collect()
}

/// Adds every member, after checking that the dependency and all members
/// exist, so a typo in one member adds none of them.
async fn add(ctx: &Context, dep: &ConfigName, members: &[ConfigName]) -> Result<()> {
    let manager = manager(ctx).await?;
    manager.members(dep).await?;
    for member in members {
        require_member(&manager, member).await?;
    }
    let mut added = 0;
    for member in members {
        added += usize::from(manager.add_to_dependency(dep, member).await?);
    }
    ctx.out.done(
        format!("added {added} to {dep}"),
        json!({ "name": dep.as_str(), "added": added }),
    )
}

async fn require_member(manager: &MetaConfigManager, member: &ConfigName) -> Result<()> {
    if is_dependency(member) {
        manager.members(member).await?;
    } else if manager.get(member).await?.is_none() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("metaconfig {member} does not exist: create it first"),
        )
        .into());
    }
    Ok(())
}

async fn show_resolved(ctx: &Context, dep: &ConfigName) -> Result<()> {
    let subscription = manager(ctx).await?.resolve(dep).await?;
    let mut text = String::from("metaconfigs:\n");
    for metaconfig in &subscription.metaconfigs {
        text.push_str(&format!("  {} ({})\n", metaconfig.name, metaconfig.kind));
    }
    text.push_str("dependencies:\n");
    text.push_str(&indented(&subscription.dependencies));
    if !subscription.missing.is_empty() {
        text.push_str("missing:\n");
        text.push_str(&indented(&subscription.missing));
    }
    let json = json!({
        "name": dep.as_str(),
        "metaconfigs": subscription.metaconfigs.iter().map(metaconfig_json).collect::<Vec<Value>>(),
        "dependencies": as_strs(&subscription.dependencies),
        "missing": as_strs(&subscription.missing),
    });
    ctx.out.data(text, json)
}

fn indented(names: &[ConfigName]) -> String {
    lines(names.iter().map(|name| format!("  {name}")))
}

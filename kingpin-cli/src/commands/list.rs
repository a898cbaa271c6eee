//! `kingpin list`: a managed list of distinct items (`ManagedList`).

use anyhow::Result;
use kingpin::kingpin_api::managed::ManagedList;
use kingpin::kingpin_api::ConfigName;
use serde_json::{json, Value};

use super::{config_name, require_existing, Context};
use crate::cli::ListCommand;
use crate::items::{parse_all, to_json, with_item_type, Item};
use crate::output::{item_text, lines};

/// Runs a `kingpin list` command.
pub async fn run(command: ListCommand, ctx: &Context) -> Result<()> {
    match command {
        ListCommand::Get { name, check } => {
            let name = config_name(&name)?;
            match check.item_type {
                None => get::<Value>(ctx, name).await,
                Some(ty) => with_item_type!(ty, T => get::<T>(ctx, name).await),
            }
        }
        ListCommand::Add { name, items, ty } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => add::<T>(ctx, name, &items).await)
        }
        ListCommand::Remove { name, items, ty } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => remove::<T>(ctx, name, &items).await)
        }
        ListCommand::Contains { name, item, ty } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => contains::<T>(ctx, name, &item).await)
        }
        ListCommand::Set { name, items, ty } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => set::<T>(ctx, name, &items).await)
        }
        ListCommand::Clear { name } => {
            let name = config_name(&name)?;
            list::<Value>(ctx, &name).await?.clear().await?;
            ctx.out
                .done(format!("cleared {name}"), json!({ "name": name.as_str() }))
        }
    }
}

async fn list<T: Item>(ctx: &Context, name: &ConfigName) -> Result<ManagedList<T>> {
    Ok(ManagedList::new(ctx.store().await?, name.clone()).with_author(ctx.author()))
}

async fn get<T: Item>(ctx: &Context, name: ConfigName) -> Result<()> {
    require_existing(ctx, &name).await?;
    let items = list::<T>(ctx, &name).await?.get().await?;
    let items = items.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
    ctx.out
        .data(lines(items.iter().map(item_text)), Value::Array(items))
}

async fn add<T: Item>(ctx: &Context, name: ConfigName, texts: &[String]) -> Result<()> {
    let items = parse_all::<T>(texts)?;
    let added = list::<T>(ctx, &name).await?.add_many(items).await?;
    ctx.out.done(
        format!("added {added}"),
        json!({ "name": name.as_str(), "added": added }),
    )
}

async fn remove<T: Item>(ctx: &Context, name: ConfigName, texts: &[String]) -> Result<()> {
    let items = parse_all::<T>(texts)?;
    let removed = list::<T>(ctx, &name).await?.remove_many(&items).await?;
    ctx.out.done(
        format!("removed {removed}"),
        json!({ "name": name.as_str(), "removed": removed }),
    )
}

async fn contains<T: Item>(ctx: &Context, name: ConfigName, text: &str) -> Result<()> {
    let item = T::parse(text)?;
    let found = list::<T>(ctx, &name).await?.contains(&item).await?;
    ctx.out.data(
        found.to_string(),
        json!({ "name": name.as_str(), "contains": found }),
    )
}

async fn set<T: Item>(ctx: &Context, name: ConfigName, texts: &[String]) -> Result<()> {
    let items = parse_all::<T>(texts)?;
    let count = items.len();
    list::<T>(ctx, &name).await?.set(items).await?;
    ctx.out.done(
        format!("set {count} items"),
        json!({ "name": name.as_str(), "items": count }),
    )
}

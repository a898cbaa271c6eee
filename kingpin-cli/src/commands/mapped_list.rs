//! `kingpin mapped-list`: a managed map of string keys to lists of
//! distinct items (`ManagedMappedList`).

use anyhow::Result;
use kingpin::kingpin_api::managed::ManagedMappedList;
use kingpin::kingpin_api::ConfigName;
use serde_json::{json, Map, Value};

use super::{config_name, require_existing, Context};
use crate::cli::MappedListCommand;
use crate::items::{parse_all, to_json, with_item_type, Item};
use crate::output::{item_text, lines};

/// Runs a `kingpin mapped-list` command.
pub async fn run(command: MappedListCommand, ctx: &Context) -> Result<()> {
    match command {
        MappedListCommand::Get { name, key, check } => {
            let name = config_name(&name)?;
            match check.item_type {
                None => get::<Value>(ctx, name, key).await,
                Some(ty) => with_item_type!(ty, T => get::<T>(ctx, name, key).await),
            }
        }
        MappedListCommand::Add {
            name,
            key,
            items,
            ty,
        } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => add::<T>(ctx, name, &key, &items).await)
        }
        MappedListCommand::Remove {
            name,
            key,
            items,
            ty,
        } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => remove::<T>(ctx, name, &key, &items).await)
        }
        MappedListCommand::Set {
            name,
            key,
            items,
            ty,
        } => {
            let name = config_name(&name)?;
            with_item_type!(ty.item_type, T => set::<T>(ctx, name, &key, &items).await)
        }
        MappedListCommand::RemoveKey { name, key } => {
            let name = config_name(&name)?;
            let removed = mapped::<Value>(ctx, &name).await?.remove_key(&key).await?;
            let text = if removed {
                format!("removed {key}")
            } else {
                format!("{name} has no key {key:?}")
            };
            ctx.out.done(
                text,
                json!({ "name": name.as_str(), "key": key, "removed": removed }),
            )
        }
        MappedListCommand::Keys { name } => {
            let name = config_name(&name)?;
            let keys = mapped::<Value>(ctx, &name).await?.keys().await?;
            ctx.out.data(lines(&keys), json!(keys))
        }
        MappedListCommand::Clear { name } => {
            let name = config_name(&name)?;
            mapped::<Value>(ctx, &name).await?.clear().await?;
            ctx.out
                .done(format!("cleared {name}"), json!({ "name": name.as_str() }))
        }
    }
}

async fn mapped<T: Item>(ctx: &Context, name: &ConfigName) -> Result<ManagedMappedList<T>> {
    Ok(ManagedMappedList::new(ctx.store().await?, name.clone()).with_author(ctx.author()))
}

async fn get<T: Item>(ctx: &Context, name: ConfigName, key: Option<String>) -> Result<()> {
    require_existing(ctx, &name).await?;
    let mapped = mapped::<T>(ctx, &name).await?;
    match key {
        Some(key) => {
            let items = mapped.get(&key).await?;
            let items = items.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
            ctx.out
                .data(lines(items.iter().map(item_text)), Value::Array(items))
        }
        None => {
            let mut lists = Map::new();
            for (key, items) in mapped.get_all().await? {
                lists.insert(key, to_json(&items)?);
            }
            let text = lines(lists.iter().map(|(k, items)| format!("{k}\t{items}")));
            ctx.out.data(text, Value::Object(lists))
        }
    }
}

async fn add<T: Item>(ctx: &Context, name: ConfigName, key: &str, texts: &[String]) -> Result<()> {
    let items = parse_all::<T>(texts)?;
    let added = mapped::<T>(ctx, &name).await?.add_many(key, items).await?;
    ctx.out.done(
        format!("added {added}"),
        json!({ "name": name.as_str(), "key": key, "added": added }),
    )
}

async fn remove<T: Item>(
    ctx: &Context,
    name: ConfigName,
    key: &str,
    texts: &[String],
) -> Result<()> {
    let items = parse_all::<T>(texts)?;
    let removed = mapped::<T>(ctx, &name)
        .await?
        .remove_many(key, &items)
        .await?;
    ctx.out.done(
        format!("removed {removed}"),
        json!({ "name": name.as_str(), "key": key, "removed": removed }),
    )
}

async fn set<T: Item>(ctx: &Context, name: ConfigName, key: &str, texts: &[String]) -> Result<()> {
    let items = parse_all::<T>(texts)?;
    mapped::<T>(ctx, &name).await?.set(key, items).await?;
    ctx.out.done(
        format!("set {key}"),
        json!({ "name": name.as_str(), "key": key }),
    )
}

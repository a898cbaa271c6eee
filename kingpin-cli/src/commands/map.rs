//! `kingpin map`: a managed map of string keys to values
//! (`ManagedHashMap`).

use anyhow::Result;
use kingpin::kingpin_api::managed::ManagedHashMap;
use kingpin::kingpin_api::{ConfigName, Error, ErrorKind};
use serde_json::{json, Map, Value};

use super::{config_name, require_existing, Context};
use crate::cli::MapCommand;
use crate::failure::UsageError;
use crate::items::{to_json, with_item_type, Item};
use crate::output::{item_text, lines};

/// Runs a `kingpin map` command.
pub async fn run(command: MapCommand, ctx: &Context) -> Result<()> {
    match command {
        MapCommand::Get { name, key, check } => {
            let name = config_name(&name)?;
            match check.item_type {
                None => get::<Value>(ctx, name, key).await,
                Some(ty) => with_item_type!(ty, T => get::<T>(ctx, name, key).await),
            }
        }
        MapCommand::Set { name, entries, ty } => {
            let name = config_name(&name)?;
            if entries.len() % 2 != 0 {
                return Err(UsageError(format!(
                    "map set takes KEY VALUE pairs; {:?} has no value",
                    entries.last().map(String::as_str).unwrap_or_default()
                ))
                .into());
            }
            with_item_type!(ty.item_type, T => set::<T>(ctx, name, &entries).await)
        }
        MapCommand::Remove { name, keys } => {
            let name = config_name(&name)?;
            let removed = map::<Value>(ctx, &name)
                .await?
                .remove_many(keys.iter().map(String::as_str))
                .await?;
            ctx.out.done(
                format!("removed {removed}"),
                json!({ "name": name.as_str(), "removed": removed }),
            )
        }
        MapCommand::Keys { name } => {
            let name = config_name(&name)?;
            let keys = map::<Value>(ctx, &name).await?.keys().await?;
            ctx.out.data(lines(&keys), json!(keys))
        }
        MapCommand::Clear { name } => {
            let name = config_name(&name)?;
            map::<Value>(ctx, &name).await?.clear().await?;
            ctx.out
                .done(format!("cleared {name}"), json!({ "name": name.as_str() }))
        }
    }
}

async fn map<V: Item>(ctx: &Context, name: &ConfigName) -> Result<ManagedHashMap<V>> {
    Ok(ManagedHashMap::new(ctx.store().await?, name.clone()).with_author(ctx.author()))
}

async fn get<V: Item>(ctx: &Context, name: ConfigName, key: Option<String>) -> Result<()> {
    require_existing(ctx, &name).await?;
    let map = map::<V>(ctx, &name).await?;
    match key {
        Some(key) => {
            let value = map.get(&key).await?.ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("{name} has no key {key:?}"))
            })?;
            let value = to_json(&value)?;
            ctx.out.data(item_text(&value), value)
        }
        None => {
            let mut entries = Map::new();
            for (key, value) in map.get_all().await? {
                entries.insert(key, to_json(&value)?);
            }
            let text = lines(
                entries
                    .iter()
                    .map(|(k, v)| format!("{k}\t{}", item_text(v))),
            );
            ctx.out.data(text, Value::Object(entries))
        }
    }
}

async fn set<V: Item>(ctx: &Context, name: ConfigName, pairs: &[String]) -> Result<()> {
    let entries = pairs
        .chunks_exact(2)
        .map(|pair| Ok((pair[0].clone(), V::parse(&pair[1])?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let changed = map::<V>(ctx, &name).await?.set_many(entries).await?;
    ctx.out.done(
        format!("changed {changed}"),
        json!({ "name": name.as_str(), "changed": changed }),
    )
}

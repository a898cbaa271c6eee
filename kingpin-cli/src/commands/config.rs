//! `kingpin config`: versioned configs (get, set, history, rollback, diff,
//! gc) on the config store.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use kingpin::kingpin_api::{ChangeInfo, ConfigName, ConfigRecord, ConfigStore, Error, ErrorKind};
use serde_json::{json, Value};
use similar::TextDiff;

use super::{config_name, missing, record_json, Context};
use crate::cli::ConfigCommand;
use crate::content::read_content;

/// Runs a `kingpin config` command.
pub async fn run(command: ConfigCommand, ctx: &Context) -> Result<()> {
    match command {
        ConfigCommand::Get { name, version } => get(ctx, &config_name(&name)?, version).await,
        ConfigCommand::Set {
            name,
            content,
            if_version,
            message,
        } => {
            let name = config_name(&name)?;
            let content = read_content(&content)?;
            let message = message.unwrap_or_else(|| "kingpin config set".to_owned());
            set(ctx, &name, content, if_version, &message).await
        }
        ConfigCommand::History { name, limit } => history(ctx, &config_name(&name)?, limit).await,
        ConfigCommand::Rollback { name, to, message } => {
            let name = config_name(&name)?;
            let message = message.unwrap_or_else(|| format!("rollback to version {to}"));
            let change = ChangeInfo::new(ctx.author(), message);
            let record = ctx.store().await?.rollback(&name, to, &change).await?;
            ctx.out
                .done(record.version.to_string(), record_json(&name, &record))
        }
        ConfigCommand::Diff { name, from, to } => diff(ctx, &config_name(&name)?, from, to).await,
        ConfigCommand::Gc { name, keep } => {
            let name = config_name(&name)?;
            let report = ctx.store().await?.gc(&name, keep).await?;
            ctx.out.done(
                format!(
                    "deleted {} content blobs and {} history records of {name}",
                    report.blobs_deleted, report.records_deleted
                ),
                json!({
                    "name": name.as_str(),
                    "blobs_deleted": report.blobs_deleted,
                    "records_deleted": report.records_deleted,
                }),
            )
        }
    }
}

fn no_version(name: &ConfigName, version: u64) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("{name} has no version {version}"),
    )
}

/// The record of `version`, or of the current version.
async fn record_at(
    store: &ConfigStore,
    name: &ConfigName,
    version: Option<u64>,
) -> Result<ConfigRecord, Error> {
    let (current, _) = store.record(name).await?.ok_or_else(|| missing(name))?;
    match version {
        None => Ok(current),
        Some(v) if v == current.version => Ok(current),
        Some(v) => store
            .record_at(name, v)
            .await?
            .ok_or_else(|| no_version(name, v)),
    }
}

async fn get(ctx: &Context, name: &ConfigName, version: Option<u64>) -> Result<()> {
    let store = ctx.store().await?;
    let record = record_at(&store, name, version).await?;
    let content = store.content(name, &record).await?;
    if !ctx.out.is_json() {
        return ctx.out.raw(&content);
    }
    let text = std::str::from_utf8(&content).map_err(|_| {
        Error::invalid(format!(
            "{name} version {} is not UTF-8 text, which --json cannot show; get it without --json",
            record.version
        ))
    })?;
    let mut json = record_json(name, &record);
    json["content"] = Value::String(text.to_owned());
    ctx.out.data(String::new(), json)
}

async fn set(
    ctx: &Context,
    name: &ConfigName,
    content: Bytes,
    if_version: Option<u64>,
    message: &str,
) -> Result<()> {
    let change = ChangeInfo::new(ctx.author(), message);
    let store = ctx.store().await?;
    let record = match if_version {
        None => store.write(name, content, &change).await?,
        Some(expected) => {
            let current = store.record(name).await?;
            let conflict = |what: String| {
                Error::new(
                    ErrorKind::BadVersion,
                    format!("{name} {what}, not at version {expected}; nothing was written"),
                )
            };
            match (expected, current) {
                (0, None) => store.write_if(name, content, &change, None).await?,
                (0, Some((record, _))) => {
                    return Err(conflict(format!("exists at version {}", record.version)).into())
                }
                (_, None) => return Err(conflict("does not exist".to_owned()).into()),
                (_, Some((record, node_version))) if record.version == expected => {
                    store
                        .write_if(name, content, &change, Some((&record, node_version)))
                        .await?
                }
                (_, Some((record, _))) => {
                    return Err(conflict(format!("is at version {}", record.version)).into())
                }
            }
        }
    };
    ctx.out
        .done(record.version.to_string(), record_json(name, &record))
}

/// `2024-05-01T12:00:00.000Z`.
fn rfc3339(timestamp_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(timestamp_ms)).to_string()
}

/// Text fit for one field of one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub(super) async fn history(ctx: &Context, name: &ConfigName, limit: Option<usize>) -> Result<()> {
    let mut records = ctx.store().await?.history(name).await?;
    if records.is_empty() {
        return Err(missing(name).into());
    }
    records.reverse();
    records.truncate(limit.unwrap_or(usize::MAX));
    let text = records
        .iter()
        .map(|r| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                r.version,
                rfc3339(r.timestamp_ms),
                one_line(&r.author),
                r.size,
                r.sha256.get(..12).unwrap_or(&r.sha256),
                one_line(&r.message)
            )
        })
        .collect::<String>();
    let json = records.iter().map(|r| record_json(name, r)).collect();
    ctx.out.data(text, Value::Array(json))
}

pub(super) async fn diff(
    ctx: &Context,
    name: &ConfigName,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<()> {
    let store = ctx.store().await?;
    let (current, _) = store.record(name).await?.ok_or_else(|| missing(name))?;
    let to = to.unwrap_or(current.version);
    let from_explicit = from.is_some();
    let from = from.unwrap_or(to.saturating_sub(1));
    // Version 0 is "nothing yet"; a default `from` that garbage collection
    // removed reads as nothing too.
    let content_of = |version: u64, explicit: bool| {
        let store = &store;
        async move {
            let record = match version {
                0 => None,
                v => store.record_at(name, v).await?,
            };
            match record {
                Some(record) => Ok(Some(store.content(name, &record).await?)),
                None if version == 0 || !explicit => Ok(None),
                None => Err(no_version(name, version)),
            }
        }
    };
    let new = content_of(to, true).await?.unwrap_or_default();
    let old = content_of(from, from_explicit).await?.unwrap_or_default();
    let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name}@{from}"), &format!("{name}@{to}"))
        .to_string();
    ctx.out.data(
        diff.clone(),
        json!({ "name": name.as_str(), "from": from, "to": to, "diff": diff }),
    )
}

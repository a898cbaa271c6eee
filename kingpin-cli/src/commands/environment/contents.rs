//! Environments' contents and views: create, delete, set, show, view,
//! tree, rollback.

use std::path::Path;

use anyhow::Result;
use kingpin::kingpin_api::environment::{
    parse_content, sources, Content, EnvPath, EnvironmentWrite, ServiceName,
};
use kingpin::kingpin_api::{ChangeInfo, ConfigRecord, Error, ErrorKind};
use serde_json::{json, Value};

use super::{environments, Context};
use crate::cli::ContentArgs;
use crate::content::read_content;
use crate::output::{item_text, lines};

/// Content for `create`: `{}` unless a file or value is given.
pub fn initial_content(file: Option<&Path>, value: Option<&str>) -> Result<Content, Error> {
    if file.is_none() && value.is_none() {
        return Ok(Content::new());
    }
    content_from(&ContentArgs {
        file: file.map(Path::to_path_buf),
        value: value.map(str::to_owned),
    })
}

/// Content from `--file`, `--value` or stdin: a JSON object.
pub fn content_from(args: &ContentArgs) -> Result<Content, Error> {
    parse_content("the environment's content", &read_content(args)?)
}

fn record_json(service: &ServiceName, env: &EnvPath, record: &ConfigRecord) -> Value {
    json!({
        "service": service.as_str(),
        "environment": env.to_string(),
        "version": record.version,
        "sha256": record.sha256,
        "author": record.author,
        "message": record.message,
        "timestamp_ms": record.timestamp_ms,
    })
}

fn write_json(service: &ServiceName, env: &EnvPath, write: &EnvironmentWrite) -> Value {
    let mut out = record_json(service, env, &write.record);
    out["views"] = write
        .views
        .iter()
        .map(|(e, r)| json!({ "environment": e.to_string(), "version": r.version }))
        .collect();
    out
}

pub async fn services(ctx: &Context) -> Result<()> {
    let services = environments(ctx).await?.services().await?;
    let names: Vec<&str> = services.iter().map(|s| s.as_str()).collect();
    ctx.out.data(lines(&names), json!(names))
}

pub async fn create(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    content: Content,
    message: Option<String>,
) -> Result<()> {
    let message = message.unwrap_or_else(|| format!("kingpin env create {env}"));
    let change = ChangeInfo::new(ctx.author(), message);
    let record = environments(ctx)
        .await?
        .create(service, env, content, &change)
        .await?;
    ctx.out.done(
        format!("created {env} in {service} (version {})", record.version),
        record_json(service, env, &record),
    )
}

pub async fn set(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    content: Content,
    if_version: Option<u64>,
    message: Option<String>,
) -> Result<()> {
    let message = message.unwrap_or_else(|| "kingpin env set".to_owned());
    let change = ChangeInfo::new(ctx.author(), message);
    let write = environments(ctx)
        .await?
        .set(service, env, content, &change, if_version)
        .await?;
    ctx.out.done(
        write.record.version.to_string(),
        write_json(service, env, &write),
    )
}

pub async fn rollback(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    to: u64,
    message: Option<String>,
) -> Result<()> {
    let message = message.unwrap_or_else(|| format!("rollback to version {to}"));
    let change = ChangeInfo::new(ctx.author(), message);
    let write = environments(ctx)
        .await?
        .rollback(service, env, to, &change)
        .await?;
    ctx.out.done(
        write.record.version.to_string(),
        write_json(service, env, &write),
    )
}

fn missing(service: &ServiceName, env: &EnvPath) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("environment {env} of service {service} does not exist"),
    )
}

fn pretty(content: &Content) -> String {
    serde_json::to_string_pretty(content).unwrap_or_default()
}

pub async fn show(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    version: Option<u64>,
) -> Result<()> {
    let envs = environments(ctx).await?;
    let (record, content) = match version {
        None => {
            let found = envs
                .read(service, env)
                .await?
                .ok_or_else(|| missing(service, env))?;
            (found.record, found.content)
        }
        Some(v) => envs.read_at(service, env, v).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("environment {env} of service {service} has no version {v}"),
            )
        })?,
    };
    let mut out = record_json(service, env, &record);
    out["content"] = Value::Object(content.clone());
    ctx.out.data(pretty(&content), out)
}

pub async fn view(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    with_sources: bool,
) -> Result<()> {
    let envs = environments(ctx).await?;
    let view = envs
        .view(service, env)
        .await?
        .ok_or_else(|| missing(service, env))?;
    // Provenance from the very versions the view merged.
    let mut chain = Vec::new();
    for (link, source) in env.chain().into_iter().zip(&view.record.sources) {
        let (_, content) = envs
            .read_at(service, &link, source.version)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "version {} of {link} is gone (garbage collected?)",
                        source.version
                    ),
                )
            })?;
        chain.push((link, content));
    }
    let refs: Vec<_> = chain.iter().map(|(e, c)| (e.clone(), c)).collect();
    let found = sources(&refs);
    let merged_from: Vec<Value> = chain
        .iter()
        .zip(&view.record.sources)
        .map(|((e, _), s)| json!({ "environment": e.to_string(), "version": s.version }))
        .collect();
    let json = json!({
        "service": service.as_str(),
        "environment": env.to_string(),
        "version": view.record.version,
        "view": Value::Object(view.content.clone()),
        "merged_from": merged_from,
        "sources": found.iter().map(|s| json!({
            "pointer": s.pointer,
            "value": s.value,
            "environment": s.environment.to_string(),
        })).collect::<Vec<_>>(),
    });
    let text = if with_sources {
        lines(
            found
                .iter()
                .map(|s| format!("{}\t{}\t{}", s.pointer, item_text(&s.value), s.environment)),
        )
    } else {
        pretty(&view.content)
    };
    ctx.out.data(text, json)
}

pub async fn tree(ctx: &Context, service: &ServiceName) -> Result<()> {
    let envs = environments(ctx).await?;
    let mut text = String::new();
    let mut json = Vec::new();
    for env in envs.tree(service).await? {
        let Some(found) = envs.read(service, &env).await? else {
            continue;
        };
        let hosts = envs.hosts_in(service, &env).await?.len();
        let name = if env.is_root() {
            "/".to_owned()
        } else {
            env.components().last().unwrap_or_default().to_owned()
        };
        text.push_str(&format!(
            "{}{name}\tversion {}\t{hosts} host(s)\n",
            "  ".repeat(env.depth()),
            found.record.version
        ));
        json.push(json!({ "environment": env.to_string(), "version": found.record.version, "hosts": hosts }));
    }
    ctx.out.data(text, Value::Array(json))
}

pub async fn delete(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    force: bool,
) -> Result<()> {
    let deletion = environments(ctx).await?.delete(service, env, force).await?;
    let mut text = format!(
        "deleted {}",
        deletion
            .environments
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !deletion.associations.is_empty() {
        text.push_str(&format!(
            "; unassociated {}",
            deletion
                .associations
                .iter()
                .map(|a| format!("{} (was {})", a.host, a.environment))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    ctx.out.done(
        text,
        json!({
            "service": service.as_str(),
            "environments": deletion.environments.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "unassociated": deletion.associations.iter().map(|a| json!({
                "host": a.host.as_str(),
                "environment": a.environment.to_string(),
            })).collect::<Vec<_>>(),
        }),
    )
}

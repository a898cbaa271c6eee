//! Host associations: associate, unassociate, list, pin, unpin.

use anyhow::Result;
use kingpin::kingpin_api::environment::{Association, EnvPath, HostId, ServiceName};
use serde_json::{json, Value};

use super::{environments, Context};
use crate::output::lines;

fn association_json(service: &ServiceName, a: &Association) -> Value {
    json!({
        "service": service.as_str(),
        "host": a.host.as_str(),
        "environment": a.environment.to_string(),
        "pinned_version": a.pinned_version,
    })
}

fn association_line(a: &Association) -> String {
    match a.pinned_version {
        Some(v) => format!("{}\t{}\tpinned to {v}", a.host, a.environment),
        None => format!("{}\t{}", a.host, a.environment),
    }
}

pub async fn associate(
    ctx: &Context,
    service: &ServiceName,
    env: &EnvPath,
    host: &HostId,
) -> Result<()> {
    let association = environments(ctx)
        .await?
        .associate(service, host, env)
        .await?;
    ctx.out.done(
        format!("associated {host} with {env} in {service}"),
        association_json(service, &association),
    )
}

pub async fn unassociate(ctx: &Context, service: &ServiceName, host: &HostId) -> Result<()> {
    let removed = environments(ctx).await?.unassociate(service, host).await?;
    let text = match &removed {
        Some(a) => format!(
            "unassociated {host} from {} in {service}; it reads the root view",
            a.environment
        ),
        None => format!("{host} had no association in {service}"),
    };
    let json = json!({
        "service": service.as_str(),
        "host": host.as_str(),
        "removed": removed.as_ref().map(|a| a.environment.to_string()),
    });
    ctx.out.done(text, json)
}

pub async fn list(ctx: &Context, service: &ServiceName, env: Option<&EnvPath>) -> Result<()> {
    let envs = environments(ctx).await?;
    let mut associations = envs.associations(service).await?;
    if let Some(env) = env {
        associations.retain(|a| a.environment == *env);
    }
    ctx.out.data(
        lines(associations.iter().map(association_line)),
        Value::Array(
            associations
                .iter()
                .map(|a| association_json(service, a))
                .collect(),
        ),
    )
}

pub async fn pin(ctx: &Context, service: &ServiceName, host: &HostId, version: u64) -> Result<()> {
    let association = environments(ctx).await?.pin(service, host, version).await?;
    ctx.out.done(
        format!(
            "pinned {host} to version {version} of {}'s view",
            association.environment
        ),
        association_json(service, &association),
    )
}

pub async fn unpin(ctx: &Context, service: &ServiceName, host: &HostId) -> Result<()> {
    let association = environments(ctx).await?.unpin(service, host).await?;
    ctx.out.done(
        format!("{host} follows {}'s view again", association.environment),
        association_json(service, &association),
    )
}

//! Export, import, and the migration from Jones.

use anyhow::Result;
use kingpin::kingpin_api::environment::{
    plan_jones_import, read_jones, ImportReport, JonesAdjustment, JonesDifference, ServiceDocument,
    ServiceName,
};
use kingpin::kingpin_api::{ChangeInfo, CoordinatorScheme, CoordinatorUrl, Error};
use serde_json::{json, Value};

use super::{environments, Context};
use crate::cli::ContentArgs;
use crate::content::read_content;

pub async fn export(ctx: &Context, service: &ServiceName) -> Result<()> {
    let document = environments(ctx).await?.export(service).await?;
    let json = serde_json::to_value(&document)?;
    ctx.out.data(serde_json::to_string_pretty(&json)?, json)
}

fn report_json(report: &ImportReport) -> Value {
    json!({
        "environments": report.environments.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        "hosts": report.hosts,
        "dropped_pins": report.dropped_pins.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
    })
}

fn report_text(service: &str, report: &ImportReport) -> String {
    let mut text = format!(
        "imported {service}: {} environment(s), {} host association(s)",
        report.environments.len(),
        report.hosts
    );
    if !report.dropped_pins.is_empty() {
        let hosts: Vec<&str> = report.dropped_pins.iter().map(|h| h.as_str()).collect();
        text.push_str(&format!(
            "\npins dropped (view versions start over): {}",
            hosts.join(", ")
        ));
    }
    text
}

pub async fn import(ctx: &Context, content: &ContentArgs) -> Result<()> {
    let bytes = read_content(content)?;
    let document: ServiceDocument = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the document is not an exported service: {e}")))?;
    let change = ChangeInfo::new(ctx.author(), "kingpin env import");
    let report = environments(ctx).await?.import(&document, &change).await?;
    ctx.out.done(
        report_text(&document.service, &report),
        report_json(&report),
    )
}

fn adjustment_text(a: &JonesAdjustment) -> String {
    let why = match a.difference {
        JonesDifference::NestedOverride => {
            "overrides part of a nested object: nulls keep Jones's view"
        }
        JonesDifference::StaleView => {
            "Jones's stored view did not match its content: imported the stored view"
        }
        JonesDifference::ViewChanges => "content kept: the view differs from Jones's",
    };
    format!("{}\t{why}\t{}", a.environment, a.places.join(" "))
}

fn adjustment_json(a: &JonesAdjustment) -> Value {
    json!({
        "environment": a.environment.to_string(),
        "difference": match a.difference {
            JonesDifference::NestedOverride => "nested_override",
            JonesDifference::StaleView => "stale_view",
            JonesDifference::ViewChanges => "view_changes",
        },
        "places": a.places,
    })
}

pub async fn import_jones(
    ctx: &Context,
    service: &ServiceName,
    from: &str,
    keep_contents: bool,
    dry_run: bool,
) -> Result<()> {
    let url = CoordinatorUrl::parse(from)?;
    if url.scheme() != CoordinatorScheme::ZooKeeper {
        return Err(Error::invalid(format!(
            "--from must be Jones's ZooKeeper (zk://…), not a {:?} URL",
            url.scheme()
        ))
        .into());
    }
    let jones = kingpin::open_coordinator(from).await?;
    let read = read_jones(jones.as_ref(), service).await;
    let _ = jones.close().await;
    let plan = plan_jones_import(&read?, keep_contents)?;
    let mut text: Vec<String> = plan.adjustments.iter().map(adjustment_text).collect();
    let mut json = json!({
        "service": service.as_str(),
        "adjustments": plan.adjustments.iter().map(adjustment_json).collect::<Vec<_>>(),
        "document": serde_json::to_value(&plan.document)?,
    });
    if dry_run {
        text.insert(
            0,
            format!(
            "would import {service}: {} environment(s), {} host association(s); nothing written",
            plan.document.environments.len(),
            plan.document.hosts.len()
        ),
        );
        return ctx.out.data(text.join("\n"), json);
    }
    let change = ChangeInfo::new(ctx.author(), "kingpin env import-jones");
    let report = environments(ctx)
        .await?
        .import(&plan.document, &change)
        .await?;
    text.insert(0, report_text(service.as_str(), &report));
    json["imported"] = report_json(&report);
    ctx.out.done(text.join("\n"), json)
}

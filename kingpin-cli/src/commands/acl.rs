//! `kingpin acl`: least privilege on the coordinator (readers, registrars,
//! writers) — set up, check and show the namespace's access policy, and
//! turn a ZooKeeper password into the digest a policy names.

use std::io::BufRead as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use kingpin::access;
use kingpin::kingpin_api::access::{AccessPolicy, AccessReport, FindingOutcome};
use kingpin::kingpin_api::{Error, ErrorKind};
use serde_json::{json, Value};

use super::Context;
use crate::cli::AclCommand;

/// Runs a `kingpin acl` command.
pub async fn run(command: AclCommand, ctx: &Context) -> Result<()> {
    let url = ctx.settings.coordinator.value.as_str();
    match command {
        AclCommand::Setup { policy, dry_run } => {
            let policy = read_policy(&policy, url)?;
            let report = access::apply_policy(url, &policy, dry_run).await?;
            print_report(ctx, &report)?;
            let failed = report
                .findings
                .iter()
                .filter(|f| matches!(f.outcome, FindingOutcome::Failed(_)))
                .count();
            if failed > 0 {
                anyhow::bail!("{failed} could not be changed to match the policy");
            }
            Ok(())
        }
        AclCommand::Check { policy } => {
            let policy = policy.map(|p| read_policy(&p, url)).transpose()?;
            let report = access::check_policy(url, policy.as_ref()).await?;
            print_report(ctx, &report)?;
            if !report.findings.is_empty() {
                anyhow::bail!(
                    "{} of {} checked do not match the access policy",
                    report.findings.len(),
                    report.checked
                );
            }
            Ok(())
        }
        AclCommand::Show => {
            let policy = access::stored_policy(url).await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "the namespace has no access policy; `kingpin acl setup` stores one",
                )
            })?;
            let text = toml::to_string(&policy).context("cannot format the policy")?;
            let json = serde_json::to_value(&policy).context("cannot format the policy")?;
            ctx.out.data(text, json)
        }
        AclCommand::Digest { user } => {
            if user.is_empty() || user.contains(':') {
                return Err(Error::invalid("the user name must be non-empty, without ':'").into());
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(Error::invalid("no password on standard input").into());
            }
            let identity = format!(
                "digest:{}",
                access::zookeeper_digest_identity(&user, password)
            );
            ctx.out
                .data(identity.clone(), json!({ "identity": identity }))
        }
    }
}

/// Reads and validates a policy file for the backend `url` names, before
/// anything is opened.
fn read_policy(path: &Path, url: &str) -> Result<AccessPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let policy: AccessPolicy = toml::from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "the policy file {} is not a policy: {}",
            path.display(),
            e.message()
        ))
    })?;
    access::validate_policy(url, &policy)?;
    Ok(policy)
}

fn outcome_text(outcome: &FindingOutcome) -> String {
    match outcome {
        FindingOutcome::Mismatch => "differs".to_owned(),
        FindingOutcome::Fixed => "fixed".to_owned(),
        FindingOutcome::Failed(why) => format!("FAILED: {why}"),
    }
}

fn print_report(ctx: &Context, report: &AccessReport) -> Result<()> {
    let mut text = String::new();
    for f in &report.findings {
        text.push_str(&format!(
            "{}  {}\n    expected: {}\n    actual:   {}\n",
            f.target,
            outcome_text(&f.outcome),
            f.expected,
            f.actual
        ));
    }
    text.push_str(&format!(
        "{} checked, {} not matching the policy",
        report.checked,
        report
            .findings
            .iter()
            .filter(|f| f.outcome != FindingOutcome::Fixed)
            .count()
    ));
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (outcome, error) = match &f.outcome {
                FindingOutcome::Mismatch => ("differs", None),
                FindingOutcome::Fixed => ("fixed", None),
                FindingOutcome::Failed(why) => ("failed", Some(why.as_str())),
            };
            json!({
                "target": f.target,
                "expected": f.expected,
                "actual": f.actual,
                "outcome": outcome,
                "error": error,
            })
        })
        .collect();
    ctx.out.data(
        text,
        json!({ "checked": report.checked, "findings": findings }),
    )
}

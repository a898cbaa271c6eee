//! Deleting an environment (or, at the root, the whole service): refused
//! while it has children or associated hosts, unless forced, and then
//! reported in full.

use super::hosts::Association;
use super::names::{EnvPath, ServiceName};
use super::store::{backoff, is_race, missing_environment, Environments, ATTEMPTS};
use crate::config::ConfigName;
use crate::coordinator::Op;
use crate::error::{Error, ErrorKind, Result};

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletion {
    /// The environments deleted, parents first.
    pub environments: Vec<EnvPath>,
    /// The associations removed with them: those hosts read the root view
    /// now (or nothing, when the service itself was deleted).
    pub associations: Vec<Association>,
}

impl Environments {
    /// Deletes `env` (the whole service when `env` is the root). Refused
    /// (`NotEmpty`) while it has child environments or associated hosts,
    /// unless `force`, which deletes the children too and unassociates the
    /// hosts first. Blobs of the deleted configs are removed afterwards.
    pub async fn delete(
        &self,
        service: &ServiceName,
        env: &EnvPath,
        force: bool,
    ) -> Result<Deletion> {
        let mut report = Deletion::default();
        let mut backoff = backoff();
        for _ in 0..ATTEMPTS {
            let shape = self.service_version(service).await?;
            let subtree = self.subtree(service, env).await?;
            let envs = futures::future::try_join_all(subtree.iter().map(|e| self.read(service, e)))
                .await?;
            if envs.first().is_none_or(Option::is_none) {
                return Err(missing_environment(service, env));
            }
            let members =
                futures::future::try_join_all(subtree.iter().map(|e| self.hosts_in(service, e)))
                    .await?;
            let hosts: Vec<_> = members.into_iter().flatten().collect();
            if !force && (subtree.len() > 1 || !hosts.is_empty()) {
                let children: Vec<String> = subtree.iter().skip(1).map(|e| e.to_string()).collect();
                return Err(Error::new(
                    ErrorKind::NotEmpty,
                    format!(
                        "environment {env} of service {service} has {} child environment(s) [{}] and {} associated host(s); nothing was deleted (force deletes them too)",
                        children.len(),
                        children.join(", "),
                        hosts.len()
                    ),
                ));
            }
            if !hosts.is_empty() {
                // Hosts fall back to the root view one batch at a time; a
                // host associated meanwhile makes the deletion below fail
                // and come back here.
                report
                    .associations
                    .extend(self.unassociate_many(service, &hosts).await?);
                continue;
            }
            let mut ops = Vec::new();
            if !env.is_root() {
                ops.push(Op::Set {
                    path: service.node_path()?,
                    data: serde_json::json!({ "service": service.as_str() })
                        .to_string()
                        .into_bytes(),
                    expected_version: Some(shape),
                });
            }
            let mut names: Vec<ConfigName> = Vec::new();
            for found in envs.iter().rev() {
                let Some(found) = found else {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        "an environment went away during the deletion",
                    ));
                };
                let content = service.content_config(&found.path)?;
                let view = service.view_config(&found.path)?;
                ops.push(Op::Delete {
                    path: service.members_path(&found.path)?,
                    expected_version: None,
                });
                ops.push(Op::Delete {
                    path: view.node_path().clone(),
                    expected_version: None,
                });
                ops.push(Op::Delete {
                    path: content.node_path().clone(),
                    expected_version: Some(found.node_version),
                });
                names.push(content);
                names.push(view);
            }
            if env.is_root() {
                for parent in ["members", "hosts"] {
                    let path = service.node_path()?.join(parent)?;
                    if self.coordinator.exists(&path).await?.is_some() {
                        ops.push(Op::Delete {
                            path,
                            expected_version: None,
                        });
                    }
                }
                ops.push(Op::Delete {
                    path: service.node_path()?,
                    expected_version: Some(shape),
                });
            }
            match self.coordinator.transaction(ops).await {
                Ok(_) => {
                    for name in &names {
                        if let Err(e) = self.store.purge(name).await {
                            tracing::warn!(config = %name, error = %e, "could not remove the blobs of a deleted environment");
                        }
                    }
                    report.environments = subtree;
                    return Ok(report);
                }
                Err(e) if is_race(&e) => tokio::time::sleep(backoff.next_delay()).await,
                Err(e) => return Err(e),
            }
        }
        Err(super::store::gave_up(service, env))
    }
}

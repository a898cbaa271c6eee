//! Host associations: one node per host, `/environments/<service>/hosts/<host>`,
//! holding the environment the host reads and, when pinned, the view
//! version it keeps. A host without an association reads the root view.
//!
//! Each association is also listed under its environment
//! (`/environments/<service>/members/<env>/<host>`), in the same
//! transaction, so that deleting an environment that still has hosts
//! fails inside the deletion's own transaction.

use serde::{Deserialize, Serialize};

use super::names::{EnvPath, HostId, ServiceName};
use super::store::{
    backoff, check_environment, is_race, missing_environment, Environments, ATTEMPTS,
};
use crate::coordinator::{CreateMode, Op};
use crate::error::{Error, ErrorKind, Result};

/// Hosts associated per transaction when many are: well under etcd's
/// default limit of 128 operations per transaction.
const HOSTS_PER_TRANSACTION: usize = 25;

/// Which environment a host reads, and whether it is pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// The host.
    pub host: HostId,
    /// The environment whose view it reads.
    pub environment: EnvPath,
    /// The view version it keeps until unpinned; `None` follows the
    /// current view.
    pub pinned_version: Option<u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAssociation {
    environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pinned_version: Option<u64>,
}

impl Association {
    /// The association node's data.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = StoredAssociation {
            environment: self.environment.to_string(),
            pinned_version: self.pinned_version,
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Parses an association node's data (remote data: checked).
    pub fn from_json(host: HostId, json: &[u8]) -> Result<Self> {
        let stored: StoredAssociation = serde_json::from_slice(json).map_err(|e| {
            Error::invalid(format!("the association of host {host} is not valid: {e}"))
        })?;
        Ok(Association {
            environment: EnvPath::parse(&stored.environment)?,
            pinned_version: stored.pinned_version,
            host,
        })
    }
}

impl Environments {
    /// `host`'s association and its node version, if it has one.
    pub async fn association(
        &self,
        service: &ServiceName,
        host: &HostId,
    ) -> Result<Option<(Association, u64)>> {
        match self.coordinator.get(&service.host_path(host)?).await {
            Ok(node) => Ok(Some((
                Association::from_json(host.clone(), &node.data)?,
                node.stat.version,
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Associates `host` with `env` (a remap when it had another one; a
    /// pin is dropped with the old environment). Refused (`NotFound`) when
    /// `env` does not exist, checked in the same transaction.
    pub async fn associate(
        &self,
        service: &ServiceName,
        host: &HostId,
        env: &EnvPath,
    ) -> Result<Association> {
        self.associate_many(service, std::slice::from_ref(host), env)
            .await?;
        Ok(Association {
            host: host.clone(),
            environment: env.clone(),
            pinned_version: None,
        })
    }

    /// Associates every host of `hosts` with `env`, a batch of hosts per
    /// transaction.
    pub async fn associate_many(
        &self,
        service: &ServiceName,
        hosts: &[HostId],
        env: &EnvPath,
    ) -> Result<()> {
        for batch in hosts.chunks(HOSTS_PER_TRANSACTION) {
            self.set_associations(service, batch, env, |_| None).await?;
        }
        Ok(())
    }

    /// Pins `host` to version `version` of its environment's view (the
    /// root's, for a host without an association). The version must exist.
    pub async fn pin(
        &self,
        service: &ServiceName,
        host: &HostId,
        version: u64,
    ) -> Result<Association> {
        let env = match self.association(service, host).await? {
            Some((association, _)) => association.environment,
            None => EnvPath::root(),
        };
        if self.view_at(service, &env, version).await?.is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("the view of {env} in service {service} has no version {version}"),
            ));
        }
        self.set_associations(service, std::slice::from_ref(host), &env, |_| Some(version))
            .await?;
        Ok(Association {
            host: host.clone(),
            environment: env,
            pinned_version: Some(version),
        })
    }

    /// Lets `host` follow its environment's current view again.
    pub async fn unpin(&self, service: &ServiceName, host: &HostId) -> Result<Association> {
        let Some((association, _)) = self.association(service, host).await? else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("host {host} has no association in service {service}"),
            ));
        };
        let env = association.environment;
        self.set_associations(service, std::slice::from_ref(host), &env, |_| None)
            .await?;
        Ok(Association {
            host: host.clone(),
            environment: env,
            pinned_version: None,
        })
    }

    /// Writes the associations of `hosts` with `env` in one transaction
    /// that checks `env` exists, retried on races.
    async fn set_associations(
        &self,
        service: &ServiceName,
        hosts: &[HostId],
        env: &EnvPath,
        pin: impl Fn(&HostId) -> Option<u64>,
    ) -> Result<()> {
        let mut backoff = backoff();
        for _ in 0..ATTEMPTS {
            let Some(target) = self.read(service, env).await? else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "cannot associate hosts with {env} in service {service}: {}",
                        missing_environment(service, env).message()
                    ),
                ));
            };
            let current =
                futures::future::try_join_all(hosts.iter().map(|h| self.association(service, h)))
                    .await?;
            let mut ops = vec![check_environment(service, &target)?];
            for (host, existing) in hosts.iter().zip(current) {
                let wanted = Association {
                    host: host.clone(),
                    environment: env.clone(),
                    pinned_version: pin(host),
                };
                let path = service.host_path(host)?;
                match existing {
                    Some((old, _)) if old == wanted => continue,
                    Some((old, version)) => {
                        ops.push(Op::Set {
                            path,
                            data: wanted.to_json(),
                            expected_version: Some(version),
                        });
                        if old.environment != *env {
                            ops.push(Op::Delete {
                                path: service
                                    .members_path(&old.environment)?
                                    .join(host.as_str())?,
                                expected_version: None,
                            });
                            ops.push(member_create(service, env, host)?);
                        }
                    }
                    None => {
                        ops.push(Op::Create {
                            path,
                            data: wanted.to_json(),
                            mode: CreateMode::Persistent,
                        });
                        ops.push(member_create(service, env, host)?);
                    }
                }
            }
            if ops.len() == 1 {
                return Ok(());
            }
            match self.coordinator.transaction(ops).await {
                Ok(_) => return Ok(()),
                Err(e) if is_race(&e) => tokio::time::sleep(backoff.next_delay()).await,
                Err(e) => return Err(e),
            }
        }
        Err(super::store::gave_up(service, env))
    }

    /// Removes `host`'s association (it reads the root view again); the
    /// association removed, if there was one.
    pub async fn unassociate(
        &self,
        service: &ServiceName,
        host: &HostId,
    ) -> Result<Option<Association>> {
        let removed = self
            .unassociate_many(service, std::slice::from_ref(host))
            .await?;
        Ok(removed.into_iter().next())
    }

    /// Removes the associations of `hosts`, a batch per transaction; the
    /// associations removed.
    pub async fn unassociate_many(
        &self,
        service: &ServiceName,
        hosts: &[HostId],
    ) -> Result<Vec<Association>> {
        let mut removed = Vec::new();
        for batch in hosts.chunks(HOSTS_PER_TRANSACTION) {
            let mut backoff = backoff();
            let mut done = false;
            for _ in 0..ATTEMPTS {
                let current = futures::future::try_join_all(
                    batch.iter().map(|h| self.association(service, h)),
                )
                .await?;
                let mut ops = Vec::new();
                let mut batch_removed = Vec::new();
                for (association, version) in current.into_iter().flatten() {
                    ops.push(Op::Delete {
                        path: service.host_path(&association.host)?,
                        expected_version: Some(version),
                    });
                    ops.push(Op::Delete {
                        path: service
                            .members_path(&association.environment)?
                            .join(association.host.as_str())?,
                        expected_version: None,
                    });
                    batch_removed.push(association);
                }
                if ops.is_empty() {
                    done = true;
                    break;
                }
                match self.coordinator.transaction(ops).await {
                    Ok(_) => {
                        removed.extend(batch_removed);
                        done = true;
                        break;
                    }
                    Err(e) if is_race(&e) => tokio::time::sleep(backoff.next_delay()).await,
                    Err(e) => return Err(e),
                }
            }
            if !done {
                return Err(Error::unavailable(format!(
                    "unassociating hosts of service {service} kept racing with other changes"
                )));
            }
        }
        Ok(removed)
    }

    /// The hosts associated with `env`, sorted.
    pub async fn hosts_in(&self, service: &ServiceName, env: &EnvPath) -> Result<Vec<HostId>> {
        match self.coordinator.children(&service.members_path(env)?).await {
            Ok(names) => Ok(names.iter().filter_map(|n| HostId::parse(n).ok()).collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Every association of the service, sorted by host.
    pub async fn associations(&self, service: &ServiceName) -> Result<Vec<Association>> {
        let hosts = match self.coordinator.children(&service.hosts_path()?).await {
            Ok(names) => names,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let hosts: Vec<HostId> = hosts.iter().filter_map(|n| HostId::parse(n).ok()).collect();
        let mut found = Vec::with_capacity(hosts.len());
        for chunk in hosts.chunks(256) {
            let read =
                futures::future::try_join_all(chunk.iter().map(|h| self.association(service, h)))
                    .await?;
            found.extend(read.into_iter().flatten().map(|(a, _)| a));
        }
        Ok(found)
    }
}

fn member_create(service: &ServiceName, env: &EnvPath, host: &HostId) -> Result<Op> {
    Ok(Op::Create {
        path: service.members_path(env)?.join(host.as_str())?,
        data: Vec::new(),
        mode: CreateMode::Persistent,
    })
}

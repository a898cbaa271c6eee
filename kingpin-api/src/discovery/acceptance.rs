//! Accepting a serverset update that monitors would refuse: the way out
//! when a service is retired on purpose.
//!
//! Monitors refuse an update that empties a serverset (or shrinks it past
//! their configured ratio) and keep the members they had: the right thing
//! when ZooKeeper glitches, the wrong one when the last instance of a
//! service leaves for good. An operator then writes an **acceptance**: one
//! node, `/metaconfig/serverset-acceptance/<serverset>`, saying who
//! accepted, why, and until when. Every monitor that follows the
//! serverset writes the update it refused while the acceptance is valid;
//! it expires by itself, so the protection comes back without anyone
//! having to remember it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serverset::ServerSet;
use crate::config::{ChangeInfo, ConfigName};
use crate::coordinator::CreateMode;
use crate::error::{Error, ErrorKind, Result};
use crate::path::NodePath;

/// Where acceptances live: one node per serverset name.
pub const ACCEPTANCE_ROOT: &str = "/metaconfig/serverset-acceptance";
/// The longest an acceptance may last.
pub const MAX_ACCEPTANCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// An operator's acceptance of the next refused update of a serverset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The serverset (`discovery.<service>.<env>`).
    pub serverset: String,
    /// Who accepted.
    pub author: String,
    /// Why.
    pub message: String,
    /// When, in ms since the Unix epoch.
    pub created_ms: u64,
    /// Until when monitors honour it.
    pub expires_ms: u64,
}

impl Acceptance {
    /// Whether monitors honour it at `now_ms`.
    pub fn is_valid_at(&self, now_ms: u64) -> bool {
        self.created_ms <= now_ms && now_ms < self.expires_ms
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The acceptance node of serverset `name`.
pub fn acceptance_path(name: &ConfigName) -> Result<NodePath> {
    NodePath::parse(ACCEPTANCE_ROOT)?.join(name.as_str())
}

impl ServerSet {
    /// The node of this serverset's acceptance (for watching it).
    pub fn acceptance_path(&self) -> Result<NodePath> {
        acceptance_path(self.name())
    }

    /// Accepts, for `valid_for` from now, the updates of this serverset
    /// that monitors refuse (an emptied serverset, a shrink past their
    /// ratio). Replaces an earlier acceptance.
    ///
    /// Errors: `InvalidArgument` for a zero duration or one over
    /// [`MAX_ACCEPTANCE`], before any I/O.
    pub async fn accept_next(
        &self,
        valid_for: Duration,
        change: &ChangeInfo,
    ) -> Result<Acceptance> {
        if valid_for.is_zero() || valid_for > MAX_ACCEPTANCE {
            return Err(Error::invalid(format!(
                "an acceptance lasts more than 0 and at most {} hours",
                MAX_ACCEPTANCE.as_secs() / 3600
            )));
        }
        let created_ms = now_ms();
        let acceptance = Acceptance {
            serverset: self.name().to_string(),
            author: change.author.clone(),
            message: change.message.clone(),
            created_ms,
            expires_ms: created_ms + valid_for.as_millis() as u64,
        };
        let json = serde_json::to_vec(&acceptance).unwrap_or_default();
        let path = self.acceptance_path()?;
        let coordinator = self.coordinator();
        match coordinator
            .create(&path, &json, CreateMode::Persistent)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                coordinator.set(&path, &json, None).await?;
            }
            Err(e) => return Err(e),
        }
        Ok(acceptance)
    }

    /// The current acceptance, valid or expired, if any.
    pub async fn acceptance(&self) -> Result<Option<Acceptance>> {
        match self.coordinator().get(&self.acceptance_path()?).await {
            Ok(node) => serde_json::from_slice(&node.data).map(Some).map_err(|e| {
                Error::invalid(format!(
                    "the acceptance of {} is not valid: {e}",
                    self.name()
                ))
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the acceptance (monitors refuse again at once); whether
    /// there was one.
    pub async fn cancel_acceptance(&self) -> Result<bool> {
        match self
            .coordinator()
            .delete(&self.acceptance_path()?, None)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryServer;

    #[tokio::test]
    async fn an_acceptance_is_written_replaced_read_and_cancelled() {
        let api = ServerSet::new(Arc::new(MemoryServer::new().connect()), "api", "prod").unwrap();
        assert_eq!(api.acceptance().await.unwrap(), None);
        let who = ChangeInfo::new("ann", "retiring api");
        let first = api
            .accept_next(Duration::from_secs(60), &who)
            .await
            .unwrap();
        assert!(first.is_valid_at(first.created_ms));
        assert!(!first.is_valid_at(first.expires_ms));
        assert_eq!(api.acceptance().await.unwrap(), Some(first.clone()));
        let longer = api
            .accept_next(Duration::from_secs(3600), &who)
            .await
            .unwrap();
        assert_eq!(api.acceptance().await.unwrap(), Some(longer));
        assert!(api.cancel_acceptance().await.unwrap());
        assert!(!api.cancel_acceptance().await.unwrap());
        for bad in [Duration::ZERO, MAX_ACCEPTANCE + Duration::from_secs(1)] {
            let err = api.accept_next(bad, &who).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }
    }
}

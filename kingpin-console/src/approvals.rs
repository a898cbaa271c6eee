//! Approvals: under the prefixes that need them, a change is a proposal
//! that another user publishes.
//!
//! Proposals live where every console instance sees them: the record in
//! the coordinator (`/console/proposals/p_NNNNNNNNNN`, changed only by
//! compare-and-set, so two approvers cannot both decide one), the
//! proposed content in the blob store under `console/proposals/<sha256>`
//! (written once, named by its hash). Publishing is a compare-and-set
//! against the proposal's base version, so a stale proposal never
//! overwrites a newer version.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use kingpin_api::{
    BlobKey, BlobStore, Coordinator, CreateMode, Error, ErrorKind, NodePath, Result,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::roles::covers;

/// The coordinator node under which proposals are kept.
pub const PROPOSALS_ROOT: &str = "/console/proposals";
/// The blob prefix of proposed contents.
pub const PROPOSAL_BLOBS: &str = "console/proposals";

/// Where a proposal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalState {
    /// Waiting for a reviewer.
    Open,
    /// Approved and written.
    Published,
    /// Turned down by a reviewer.
    Rejected,
    /// Taken back by its author.
    Withdrawn,
}

impl ProposalState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Open => "open",
            ProposalState::Published => "published",
            ProposalState::Rejected => "rejected",
            ProposalState::Withdrawn => "withdrawn",
        }
    }
}

/// A proposed change to one config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The config (or environment content) to change.
    pub config: String,
    /// The version the change was made against (0: the config is new).
    pub base_version: u64,
    /// Who proposed it.
    pub author: String,
    /// Why.
    pub message: String,
    /// When (ms since the epoch).
    pub created_ms: u64,
    /// The blob holding the proposed content.
    pub content_key: String,
    /// Its sha256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// Where it stands.
    pub state: ProposalState,
    /// Who published, rejected or withdrew it.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// When.
    #[serde(default)]
    pub decided_ms: Option<u64>,
    /// The version publishing wrote.
    #[serde(default)]
    pub published_version: Option<u64>,
}

/// A proposal with its id and its node's version (for compare-and-set).
#[derive(Debug, Clone)]
pub struct StoredProposal {
    /// `p_0000000007`.
    pub id: String,
    /// The proposal.
    pub proposal: Proposal,
    /// The node's version.
    pub node_version: u64,
}

/// The proposals, and which names need them.
#[derive(Debug, Clone)]
pub struct Approvals {
    coordinator: Arc<dyn Coordinator>,
    blobs: Arc<dyn BlobStore>,
    prefixes: Vec<String>,
}

fn root() -> Result<NodePath> {
    NodePath::parse(PROPOSALS_ROOT)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether `id` looks like a proposal id (checked before it becomes a path).
fn valid_id(id: &str) -> bool {
    id.len() == 12 && id.starts_with("p_") && id[2..].bytes().all(|b| b.is_ascii_digit())
}

impl Approvals {
    /// Proposals kept in `coordinator` and `blobs`; changes to names under
    /// `prefixes` need approval.
    pub fn new(
        coordinator: Arc<dyn Coordinator>,
        blobs: Arc<dyn BlobStore>,
        prefixes: Vec<String>,
    ) -> Self {
        Approvals {
            coordinator,
            blobs,
            prefixes,
        }
    }

    /// Whether changes to `name` need another user's approval.
    pub fn required(&self, name: &str) -> bool {
        self.prefixes.iter().any(|p| covers(p, name))
    }

    /// Records a proposal of `content` for `config` against
    /// `base_version`; its id.
    pub async fn propose(
        &self,
        config: &str,
        base_version: u64,
        content: Bytes,
        author: &str,
        message: &str,
    ) -> Result<String> {
        let sha256 = format!("{:x}", Sha256::digest(&content));
        let key = BlobKey::parse(&format!("{PROPOSAL_BLOBS}/{sha256}"))?;
        let size = content.len() as u64;
        match self.blobs.put_if_absent(&key, content).await {
            // Same hash, same content: proposed before.
            Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let proposal = Proposal {
            config: config.to_owned(),
            base_version,
            author: author.to_owned(),
            message: message.to_owned(),
            created_ms: now_ms(),
            content_key: key.as_str().to_owned(),
            sha256,
            size,
            state: ProposalState::Open,
            decided_by: None,
            decided_ms: None,
            published_version: None,
        };
        let json = serde_json::to_vec(&proposal).unwrap_or_default();
        let path = self
            .coordinator
            .create(
                &root()?.join("p_")?,
                &json,
                CreateMode::PersistentSequential,
            )
            .await?;
        Ok(path.name().to_owned())
    }

    /// One proposal; `NotFound` for an unknown (or malformed) id.
    pub async fn get(&self, id: &str) -> Result<StoredProposal> {
        if !valid_id(id) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("there is no proposal {id:?}"),
            ));
        }
        let node = self
            .coordinator
            .get(&root()?.join(id)?)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    Error::new(ErrorKind::NotFound, format!("there is no proposal {id}"))
                } else {
                    e
                }
            })?;
        let proposal = serde_json::from_slice(&node.data).map_err(|e| {
            Error::new(ErrorKind::Backend, format!("proposal {id} is not readable")).with_source(e)
        })?;
        Ok(StoredProposal {
            id: id.to_owned(),
            proposal,
            node_version: node.stat.version,
        })
    }

    /// The proposed content, verified against its sha256.
    pub async fn content(&self, proposal: &Proposal) -> Result<Bytes> {
        let content = self
            .blobs
            .get(&BlobKey::parse(&proposal.content_key)?)
            .await?;
        if format!("{:x}", Sha256::digest(&content)) != proposal.sha256 {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("the proposed content for {} is corrupt", proposal.config),
            ));
        }
        Ok(content)
    }

    /// Every proposal, newest first.
    pub async fn list(&self) -> Result<Vec<StoredProposal>> {
        let ids = match self.coordinator.children(&root()?).await {
            Ok(ids) => ids,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut all: Vec<StoredProposal> = stream::iter(ids)
            .map(|id| async move {
                self.get(&id).await.map(Some).or_else(|e| {
                    if e.kind() == ErrorKind::NotFound {
                        Ok(None)
                    } else {
                        Err(e)
                    }
                })
            })
            .buffer_unordered(32)
            .try_filter_map(|p| async move { Ok(p) })
            .try_collect()
            .await?;
        all.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(all)
    }

    /// Records a decision on an open proposal, by compare-and-set on the
    /// version read: `BadVersion` when someone decided first.
    pub async fn decide(
        &self,
        stored: &StoredProposal,
        state: ProposalState,
        by: &str,
        published_version: Option<u64>,
    ) -> Result<()> {
        let mut proposal = stored.proposal.clone();
        proposal.state = state;
        proposal.decided_by = Some(by.to_owned());
        proposal.decided_ms = Some(now_ms());
        proposal.published_version = published_version;
        let json = serde_json::to_vec(&proposal).unwrap_or_default();
        self.coordinator
            .set(&root()?.join(&stored.id)?, &json, Some(stored.node_version))
            .await
            .map(|_| ())
    }
}

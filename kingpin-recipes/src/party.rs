//! Group membership: who is in the party, each with its data.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{
    Backoff, Coordinator, CreateMode, ErrorKind, NodePath, SessionState, WatchKind, WatchStream,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::contender::unique_id;
use crate::error::Result;
use crate::hold::delete_in_background;

/// What marks a child as a party member: kazoo's `Party` names its members
/// `<uuid hex>__party__` and counts only children containing this.
pub const PARTY_MARKER: &str = "__party__";

/// How often a membership checks its node even when no event said
/// anything changed.
const SAFETY_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// A party on a coordinator node: members join with some data and are
/// listed by anyone, as kazoo's `Party` (same names, same data), so the two
/// read each other's members.
///
/// # Guarantees
///
/// * A member's node is ephemeral: it goes when the member's session ends,
///   so a crashed process leaves the party within its session timeout.
/// * A [`PartyMembership`] puts its node back after a session expiry (and
///   after anyone deleted it), until it leaves.
/// * A create whose reply was lost does not make a second member: the
///   member's name is fixed and unique, so the retry finds it.
///
/// # Not guaranteed
///
/// * That [`members`](Self::members) is current a moment later: follow
///   [`watch`](Self::watch) and read again.
/// * That a member whose session is suspended is still listed by others:
///   check [`PartyMembership::is_member`].
#[derive(Debug, Clone)]
pub struct Party {
    coordinator: Arc<dyn Coordinator>,
    path: NodePath,
}

/// One member as read from the party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyMember {
    /// The member's node.
    pub node: NodePath,
    /// The data it joined with (kazoo: its identifier, UTF-8).
    pub data: Vec<u8>,
}

impl Party {
    /// The party on `path`. Nothing is created until someone joins.
    pub fn new(coordinator: Arc<dyn Coordinator>, path: NodePath) -> Self {
        Party { coordinator, path }
    }

    /// The party's path.
    pub fn path(&self) -> &NodePath {
        &self.path
    }

    /// Joins with `data` as the ephemeral node `<id>__party__`, kept until
    /// [`PartyMembership::leave`].
    ///
    /// # Errors
    ///
    /// The coordinator's, when the first create fails; nothing is kept
    /// trying then.
    pub async fn join(&self, data: impl Into<Vec<u8>>) -> Result<PartyMembership> {
        let node = self.path.join(&format!("{}{PARTY_MARKER}", unique_id()))?;
        let keeper = Keeper {
            coordinator: self.coordinator.clone(),
            node: node.clone(),
            data: data.into(),
        };
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
        // A reply lost once is retried: the fixed name makes that safe.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match keeper.ensure().await {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempts < 3 => {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    delete_in_background(self.coordinator.clone(), node);
                    return Err(e.into());
                }
            }
        }
        let (present_tx, present) = watch::channel(true);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(keeper.run(present_tx, stopped));
        Ok(PartyMembership {
            coordinator: self.coordinator.clone(),
            node,
            present,
            stop,
            task: Some(task),
        })
    }

    /// The members now, in node-name order. Children that are not members
    /// are skipped; a party that does not exist has none.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn members(&self) -> Result<Vec<PartyMember>> {
        let children = match self.coordinator.children(&self.path).await {
            Ok(children) => children,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut members = Vec::new();
        for child in children.iter().filter(|c| c.contains(PARTY_MARKER)) {
            let node = self.path.join(child)?;
            match self.coordinator.get(&node).await {
                Ok(found) => members.push(PartyMember {
                    node,
                    data: found.data,
                }),
                // It left meanwhile.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(members)
    }

    /// A watch on the membership: fires when a member joins or leaves.
    ///
    /// # Errors
    ///
    /// The coordinator's.
    pub async fn watch(&self) -> Result<WatchStream> {
        Ok(self
            .coordinator
            .watch(&self.path, WatchKind::Children)
            .await?)
    }
}

/// Being in a party, until [`leave`](Self::leave). Dropping it leaves in
/// the background (the node also goes with the session).
#[derive(Debug)]
pub struct PartyMembership {
    coordinator: Arc<dyn Coordinator>,
    node: NodePath,
    present: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl PartyMembership {
    /// The member's node.
    pub fn node(&self) -> &NodePath {
        &self.node
    }

    /// Whether others see this member now, as far as can be told: its node
    /// is in place and the session connected.
    pub fn is_member(&self) -> bool {
        *self.present.borrow() && self.coordinator.session_state() == SessionState::Connected
    }

    /// Whether the node is in place, followed as it is put back after an
    /// expiry.
    pub fn watch_presence(&self) -> watch::Receiver<bool> {
        self.present.clone()
    }

    /// Leaves the party: stops keeping the node and deletes it.
    ///
    /// # Errors
    ///
    /// The coordinator's when the delete fails (the node still goes with
    /// the session, and the delete is retried in the background).
    pub async fn leave(mut self) -> Result<()> {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        match self.coordinator.delete(&self.node, None).await {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                delete_in_background(self.coordinator.clone(), self.node.clone());
                Err(e.into())
            }
            _ => Ok(()),
        }
    }
}

impl Drop for PartyMembership {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            delete_in_background(self.coordinator.clone(), self.node.clone());
        }
    }
}

/// Keeps an ephemeral node at a fixed path through session expiry.
struct Keeper {
    coordinator: Arc<dyn Coordinator>,
    node: NodePath,
    data: Vec<u8>,
}

impl Keeper {
    async fn run(self, present: watch::Sender<bool>, mut stopped: watch::Receiver<bool>) {
        let mut sessions = self.coordinator.session_events();
        let mut backoff = Backoff::default();
        loop {
            // Armed before the check, so a removal after it is seen.
            let mut node_watch = self
                .coordinator
                .watch(&self.node, WatchKind::Data)
                .await
                .ok();
            let wait = match self.ensure().await {
                Ok(()) => {
                    present.send_if_modified(|p| !std::mem::replace(p, true));
                    backoff.reset();
                    SAFETY_CHECK_INTERVAL
                }
                Err(e) => {
                    present.send_if_modified(|p| std::mem::replace(p, false));
                    tracing::warn!(member = %self.node, error = %e, "cannot keep the party member; retrying");
                    backoff.next_delay()
                }
            };
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                event = sessions.next() => match event {
                    None => return,
                    Some(_) => {
                        let here = self.coordinator.session_state() == SessionState::Connected;
                        if !here {
                            present.send_if_modified(|p| std::mem::replace(p, false));
                        }
                    }
                },
                _ = next_event(&mut node_watch) => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Makes sure the node is there and ours.
    async fn ensure(&self) -> kingpin_api::Result<()> {
        let session = self.coordinator.session_id();
        if let Some(stat) = self.coordinator.exists(&self.node).await? {
            if stat.ephemeral_owner.is_some() && stat.ephemeral_owner == session {
                return Ok(());
            }
            // Ours by name, left by an ended session of ours.
            match self.coordinator.delete(&self.node, None).await {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match self
            .coordinator
            .create(&self.node, &self.data, CreateMode::Ephemeral)
            .await
        {
            Ok(_) => Ok(()),
            // A lost reply's create, or a race with the check: look again.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                match self.coordinator.exists(&self.node).await? {
                    Some(stat) if stat.ephemeral_owner == self.coordinator.session_id() => Ok(()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

async fn next_event(watch: &mut Option<WatchStream>) {
    match watch {
        Some(stream) => {
            if stream.next().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[tokio::test]
    async fn members_are_listed_and_kept_through_expiry() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/party").unwrap();
        let session = Arc::new(server.connect());
        let party = Party::new(session.clone(), path.clone());
        let observer = Party::new(Arc::new(server.connect()), path);
        let mut watch = observer.watch().await.unwrap();
        let me = party.join("me").await.unwrap();
        assert!(me.is_member());
        let members = observer.members().await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].data, b"me");

        session.expire_session();
        loop {
            watch.next().await.unwrap();
            let members = observer.members().await.unwrap();
            if members.len() == 1
                && observer
                    .coordinator
                    .get(&members[0].node)
                    .await
                    .unwrap()
                    .stat
                    .ephemeral_owner
                    == session.session_id()
            {
                break;
            }
        }
        me.leave().await.unwrap();
        assert!(observer.members().await.unwrap().is_empty());
    }
}

//! A set of items divided among the live members of a party.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::{Backoff, Coordinator, NodePath, SessionEvent, SessionEvents, WatchStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::contender::unique_id;
use crate::error::{Error, Result};
use crate::hold::LockGuard;
use crate::lock::Lock;
use crate::party::Party;

/// Where a partitioner is, as kazoo's `PartitionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionState {
    /// Waiting for the party to settle, then taking this member's items.
    Allocating,
    /// This member holds its [`items`](SetPartitioner::items) and may work
    /// on them.
    Acquired,
    /// The party changed or the session is suspended: stop working on the
    /// items, then call [`release_set`](SetPartitioner::release_set).
    Release,
    /// The session expired (the items' locks are gone) or the partitioner
    /// could not go on; it does nothing more. Start a new one.
    Failed,
}

/// Decides a member's share: `(identifier, members, items) → share`.
/// Every member must decide the same way.
pub type PartitionFn = Arc<dyn Fn(&str, &[String], &[String]) -> Vec<String> + Send + Sync>;

/// Divides a set of items among the live members of a party: each member
/// takes a share (by default every n-th item of the sorted set, as
/// kazoo's `SetPartitioner`), and holds a [`Lock`] on each of its items
/// while it works on them.
///
/// ```no_run
/// # async fn demo(coordinator: std::sync::Arc<dyn kingpin_api::Coordinator>) -> kingpin_recipes::Result<()> {
/// use kingpin_api::NodePath;
/// use kingpin_recipes::{PartitionState, SetPartitioner};
///
/// let shards: Vec<String> = (0..16).map(|n| format!("shard-{n}")).collect();
/// let partitioner = SetPartitioner::builder(coordinator, NodePath::parse("/work/shards")?, shards)?
///     .start();
/// let mut state = partitioner.watch_state();
/// loop {
///     match *state.borrow_and_update() {
///         PartitionState::Acquired => { /* work on partitioner.items() until the state changes */ }
///         PartitionState::Release => partitioner.release_set().await?,
///         PartitionState::Allocating => {}
///         PartitionState::Failed => break,
///     }
///     if state.changed().await.is_err() { break }
/// }
/// # Ok(()) }
/// ```
///
/// # Guarantees
///
/// * Members' shares are disjoint at all times, even while members see the
///   party differently: an item is worked on only under its lock.
/// * Once the party has been stable for the settle time and every member
///   is `Acquired`, the shares cover the set.
/// * A member stops owning its items as soon as its session is suspended
///   (`Release`), and for good when it expires (`Failed`).
///
/// # Not guaranteed
///
/// * That a member hears of its session's end before another takes its
///   items over (see [`LockGuard`]): guard writes or fence them.
/// * Covering while members join or leave, or while one in `Release` has
///   not yet called `release_set`.
/// * Anything sensible when two members share an identifier.
pub struct SetPartitioner {
    state: watch::Receiver<Snapshot>,
    commands: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
}

/// Settings of a [`SetPartitioner`], from [`SetPartitioner::builder`].
pub struct SetPartitionerBuilder {
    coordinator: Arc<dyn Coordinator>,
    path: NodePath,
    items: Vec<String>,
    identifier: String,
    settle_time: Duration,
    partition: PartitionFn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    state: PartitionState,
    items: Vec<String>,
}

enum Command {
    ReleaseSet(oneshot::Sender<Result<()>>),
    Finish(oneshot::Sender<Result<()>>),
}

impl SetPartitioner {
    /// A partitioner of `items` under `path` (members in `path/party`,
    /// item locks in `path/locks/<item>`).
    ///
    /// # Errors
    ///
    /// `InvalidArgument`, before any I/O, when an item is not a valid node
    /// name component.
    pub fn builder(
        coordinator: Arc<dyn Coordinator>,
        path: NodePath,
        items: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<SetPartitionerBuilder> {
        let mut items: Vec<String> = items.into_iter().map(Into::into).collect();
        items.sort();
        items.dedup();
        let locks = path.join("locks")?;
        for item in &items {
            locks.join(item)?;
        }
        Ok(SetPartitionerBuilder {
            coordinator,
            path,
            items,
            identifier: format!("{}-{}", std::process::id(), &unique_id()[..12]),
            settle_time: Duration::from_secs(1),
            partition: Arc::new(every_nth),
        })
    }

    /// The state now.
    pub fn state(&self) -> PartitionState {
        self.state.borrow().state
    }

    /// This member's items: its share while `Acquired`, what it must stop
    /// working on while `Release`, none otherwise.
    pub fn items(&self) -> Vec<String> {
        self.state.borrow().items.clone()
    }

    /// The state, to await its changes.
    pub fn watch_state(&self) -> watch::Receiver<PartitionState> {
        let mut snapshots = self.state.clone();
        let (sender, receiver) = watch::channel(snapshots.borrow_and_update().state);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = snapshots.changed() => if changed.is_err() { return },
                    () = sender.closed() => return,
                }
                let state = snapshots.borrow_and_update().state;
                sender.send_if_modified(|s| std::mem::replace(s, state) != state);
            }
        });
        receiver
    }

    /// Waits at most `timeout` for the `Acquired` state; whether it came.
    pub async fn wait_for_acquire(&self, timeout: Duration) -> bool {
        let mut state = self.state.clone();
        let settled = tokio::time::timeout(timeout, async {
            state
                .wait_for(|s| matches!(s.state, PartitionState::Acquired | PartitionState::Failed))
                .await
                .map(|s| s.state)
        })
        .await;
        matches!(settled, Ok(Ok(PartitionState::Acquired)))
    }

    /// In `Release`: releases the items' locks and allocates again.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] in any other state; the coordinator's
    /// when a lock cannot be released (it is retried in the background).
    pub async fn release_set(&self) -> Result<()> {
        self.ask(Command::ReleaseSet).await
    }

    /// Releases the items, leaves the party and stops.
    ///
    /// # Errors
    ///
    /// The coordinator's when a lock or the membership cannot be released
    /// (they are retried in the background, and go with the session).
    pub async fn finish(mut self) -> Result<()> {
        let outcome = self.ask(Command::Finish).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        outcome
    }

    async fn ask(&self, command: fn(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(command(reply)).is_err() {
            return Err(Error::InvalidArgument(format!(
                "the partitioner has stopped ({:?})",
                self.state()
            )));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::InvalidArgument(
                "the partitioner stopped before answering".to_owned(),
            ))
        })
    }
}

impl fmt::Debug for SetPartitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetPartitioner")
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl Drop for SetPartitioner {
    fn drop(&mut self) {
        // Dropping the task drops its locks and membership, which delete
        // their nodes in the background.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl SetPartitionerBuilder {
    /// This member's identifier in the party (default: process id and a
    /// random suffix). Identifiers must be unique among members.
    pub fn identifier(mut self, identifier: impl Into<String>) -> Self {
        self.identifier = identifier.into();
        self
    }

    /// How long the party must stay unchanged before shares are taken
    /// (default 1 s; kazoo's `time_boundary`). Longer rides out members
    /// restarting; shorter reacts faster.
    pub fn settle_time(mut self, settle_time: Duration) -> Self {
        self.settle_time = settle_time;
        self
    }

    /// Decides shares another way than every n-th item.
    pub fn partition_fn(mut self, partition: PartitionFn) -> Self {
        self.partition = partition;
        self
    }

    /// Joins the party and starts allocating, on the current Tokio runtime.
    pub fn start(self) -> SetPartitioner {
        let (state_tx, state) = watch::channel(Snapshot {
            state: PartitionState::Allocating,
            items: Vec::new(),
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        let runner = Runner {
            sessions: self.coordinator.session_events(),
            party: Party::new(
                self.coordinator.clone(),
                self.path
                    .join("party")
                    .unwrap_or_else(|_| self.path.clone()),
            ),
            locks: self
                .path
                .join("locks")
                .unwrap_or_else(|_| self.path.clone()),
            coordinator: self.coordinator,
            items: self.items,
            identifier: self.identifier,
            settle_time: self.settle_time,
            partition: self.partition,
            state: state_tx,
            commands: command_rx,
            held: Vec::new(),
        };
        SetPartitioner {
            state,
            commands,
            task: Some(tokio::spawn(runner.run())),
        }
    }
}

/// kazoo's default: the i-th member (by sorted identifier) takes every
/// n-th item of the sorted set, starting at the i-th.
fn every_nth(identifier: &str, members: &[String], items: &[String]) -> Vec<String> {
    let mut members = members.to_vec();
    members.sort();
    let Some(index) = members.iter().position(|m| m == identifier) else {
        return Vec::new();
    };
    items
        .iter()
        .skip(index)
        .step_by(members.len())
        .cloned()
        .collect()
}

/// Why the runner left a state.
enum Exit {
    /// Start allocating again.
    Reallocate,
    /// The session expired or something no retry fixes.
    Fail,
    /// `finish` was called; answer it.
    Finish(oneshot::Sender<Result<()>>),
}

/// The task behind a [`SetPartitioner`].
struct Runner {
    coordinator: Arc<dyn Coordinator>,
    sessions: SessionEvents,
    party: Party,
    locks: NodePath,
    items: Vec<String>,
    identifier: String,
    settle_time: Duration,
    partition: PartitionFn,
    state: watch::Sender<Snapshot>,
    commands: mpsc::UnboundedReceiver<Command>,
    held: Vec<LockGuard>,
}

impl Runner {
    async fn run(mut self) {
        let membership = match self.party.join(self.identifier.clone().into_bytes()).await {
            Ok(membership) => membership,
            Err(e) => {
                tracing::warn!(party = %self.party.path(), error = %e, "cannot join the partitioner's party");
                return self.fail().await;
            }
        };
        loop {
            let exit = self.allocate().await;
            let exit = match exit {
                Exit::Reallocate if self.state.borrow().state == PartitionState::Acquired => {
                    self.release_phase().await
                }
                other => other,
            };
            match exit {
                Exit::Reallocate => continue,
                Exit::Fail => {
                    drop(membership);
                    return self.fail().await;
                }
                Exit::Finish(reply) => {
                    let released = self.release_all().await;
                    let left = membership.leave().await;
                    self.publish(PartitionState::Failed, Vec::new());
                    let _ = reply.send(released.and(left));
                    return;
                }
            }
        }
    }

    /// Settles, takes the share's locks, and holds them until something
    /// changes. Ends in `Acquired` (to be released) or not.
    async fn allocate(&mut self) -> Exit {
        self.publish(PartitionState::Allocating, Vec::new());
        let mut backoff = Backoff::default();
        loop {
            match self.try_allocate().await {
                Ok(exit) => return exit,
                Err(e) if e.is_retryable() => {
                    tracing::debug!(party = %self.party.path(), error = %e, "cannot allocate yet; retrying");
                    self.release_all().await.ok();
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                        exit = self.next_interruption() => if let Some(exit) = exit { return exit },
                    }
                }
                Err(e) => {
                    tracing::warn!(party = %self.party.path(), error = %e, "the partitioner cannot go on");
                    return Exit::Fail;
                }
            }
        }
    }

    async fn try_allocate(&mut self) -> Result<Exit> {
        // Armed before the members are read, so no change is missed.
        let mut changes = self.party.watch().await?;
        if let Some(exit) = self.settle(&mut changes).await {
            return Ok(exit);
        }
        let members: Vec<String> = self
            .party
            .members()
            .await?
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m.data).into_owned())
            .collect();
        if !members.contains(&self.identifier) {
            return Err(
                kingpin_api::Error::unavailable("this member is not in the party yet").into(),
            );
        }
        let share = (self.partition)(&self.identifier, &members, &self.items);
        for item in &share {
            let lock = Lock::new(self.coordinator.clone(), self.locks.join(item)?)
                .with_identifier(self.identifier.clone());
            tokio::select! {
                guard = lock.lock() => self.held.push(guard?),
                _ = changes.next() => {
                    self.release_all().await?;
                    return Ok(Exit::Reallocate);
                }
                exit = self.next_interruption() => if let Some(exit) = exit {
                    return Ok(exit);
                },
            }
        }
        self.publish(PartitionState::Acquired, share);
        loop {
            tokio::select! {
                _ = changes.next() => return Ok(Exit::Reallocate),
                exit = self.next_interruption() => if let Some(exit) = exit {
                    return Ok(exit);
                },
            }
        }
    }

    /// Waits until the party has not changed for the settle time.
    async fn settle(&mut self, changes: &mut WatchStream) -> Option<Exit> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settle_time) => return None,
                _ = changes.next() => {}
                exit = self.next_interruption() => if let Some(exit) = exit { return Some(exit) },
            }
        }
    }

    /// The next session event or command that ends the current state;
    /// `None` for one that does not (the caller waits again).
    async fn next_interruption(&mut self) -> Option<Exit> {
        tokio::select! {
            event = self.sessions.next() => match event {
                Some(SessionEvent::Expired) | None => Some(Exit::Fail),
                Some(SessionEvent::Suspended) if self.state.borrow().state == PartitionState::Acquired => {
                    Some(Exit::Reallocate)
                }
                Some(_) => None,
            },
            command = self.commands.recv() => match command {
                Some(Command::Finish(reply)) => Some(Exit::Finish(reply)),
                Some(Command::ReleaseSet(reply)) => {
                    let state = self.state.borrow().state;
                    let _ = reply.send(Err(Error::InvalidArgument(format!(
                        "release_set is for the Release state; the partitioner is {state:?}"
                    ))));
                    None
                }
                // Nobody can ask anything any more: finish.
                None => {
                    let (reply, _) = oneshot::channel();
                    Some(Exit::Finish(reply))
                }
            },
        }
    }

    /// In `Release`, until `release_set` (or `finish`, or expiry).
    async fn release_phase(&mut self) -> Exit {
        let items = self.state.borrow().items.clone();
        self.publish(PartitionState::Release, items);
        loop {
            tokio::select! {
                event = self.sessions.next() => match event {
                    Some(SessionEvent::Expired) | None => return Exit::Fail,
                    Some(_) => {}
                },
                command = self.commands.recv() => match command {
                    Some(Command::ReleaseSet(reply)) => {
                        let released = self.release_all().await;
                        // Published before answering, so the caller never
                        // sees `Release` after its release_set returned.
                        self.publish(PartitionState::Allocating, Vec::new());
                        let _ = reply.send(released);
                        return Exit::Reallocate;
                    }
                    Some(Command::Finish(reply)) => return Exit::Finish(reply),
                    None => {
                        let (reply, _) = oneshot::channel();
                        return Exit::Finish(reply);
                    }
                },
            }
        }
    }

    async fn release_all(&mut self) -> Result<()> {
        let mut outcome = Ok(());
        for guard in self.held.drain(..) {
            if let Err(e) = guard.release().await {
                outcome = Err(e);
            }
        }
        outcome
    }

    async fn fail(mut self) {
        self.held.clear();
        self.publish(PartitionState::Failed, Vec::new());
        // Answer whoever asks from now on, until `finish`.
        while let Some(command) = self.commands.recv().await {
            match command {
                Command::ReleaseSet(reply) => {
                    let _ = reply.send(Err(Error::InvalidArgument(
                        "release_set is for the Release state; the partitioner has failed"
                            .to_owned(),
                    )));
                }
                Command::Finish(reply) => {
                    let _ = reply.send(Ok(()));
                    return;
                }
            }
        }
    }

    fn publish(&self, state: PartitionState, items: Vec<String>) {
        let next = Snapshot { state, items };
        self.state.send_if_modified(|s| {
            let changed = *s != next;
            *s = next;
            changed
        });
        tracing::debug!(party = %self.party.path(), ?state, "partition state");
    }
}

#[cfg(test)]
mod tests {
    use kingpin_api::MemoryServer;

    use super::*;

    #[test]
    fn every_nth_divides_the_sorted_set() {
        let items: Vec<String> = (0..7).map(|n| n.to_string()).collect();
        let members = ["b".to_owned(), "a".to_owned()];
        assert_eq!(every_nth("a", &members, &items), ["0", "2", "4", "6"]);
        assert_eq!(every_nth("b", &members, &items), ["1", "3", "5"]);
        assert!(every_nth("c", &members, &items).is_empty());
    }

    #[tokio::test]
    async fn two_members_split_the_set_and_reallocate_when_one_leaves() {
        let server = MemoryServer::new();
        let path = NodePath::parse("/partitioned").unwrap();
        let items: Vec<String> = (0..6).map(|n| format!("item-{n}")).collect();
        let start = |id: &str| {
            SetPartitioner::builder(Arc::new(server.connect()), path.clone(), items.clone())
                .unwrap()
                .identifier(id)
                .settle_time(Duration::from_millis(50))
                .start()
        };
        let (a, b) = (start("a"), start("b"));
        let bound = Duration::from_secs(10);
        loop {
            assert!(a.wait_for_acquire(bound).await);
            assert!(b.wait_for_acquire(bound).await);
            let (mut mine, theirs) = (a.items(), b.items());
            if a.state() == PartitionState::Acquired && b.state() == PartitionState::Acquired {
                assert!(mine.iter().all(|i| !theirs.contains(i)));
                mine.extend(theirs);
                mine.sort();
                if mine == items {
                    break;
                }
            }
            for p in [&a, &b] {
                if p.state() == PartitionState::Release {
                    p.release_set().await.unwrap();
                }
            }
        }
        b.finish().await.unwrap();
        let mut state = a.watch_state();
        state
            .wait_for(|s| *s == PartitionState::Release)
            .await
            .unwrap();
        a.release_set().await.unwrap();
        assert!(a.wait_for_acquire(bound).await);
        assert_eq!(a.items(), items);
        a.finish().await.unwrap();
    }
}

//! The faults a soak injects in turn, each a whole episode: inject, hold,
//! undo, and wait until every member serves again.

use std::time::{Duration, Instant};

use super::{Cluster, Node};

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The leader is killed with `kill -9`, and restarted on its data
    /// after the hold.
    LeaderKill,
    /// The leader is frozen (SIGSTOP, a GC-pause stand-in) and resumed
    /// after the hold.
    LeaderPause,
    /// The leader is cut off from every other node (a minority of one)
    /// until the heal.
    MemberPartition,
    /// A client keeps one follower, which loses the other members: the
    /// client is in the minority until the heal.
    ClientPartition,
}

impl Fault {
    /// Every fault, in the order a rotation injects them.
    pub const ROTATION: [Fault; 4] = [
        Fault::LeaderKill,
        Fault::LeaderPause,
        Fault::MemberPartition,
        Fault::ClientPartition,
    ];

    /// A short name for tables.
    pub fn label(self) -> &'static str {
        match self {
            Fault::LeaderKill => "leader kill -9 + restart",
            Fault::LeaderPause => "leader pause + resume",
            Fault::MemberPartition => "member partitioned (minority)",
            Fault::ClientPartition => "client partitioned (minority)",
        }
    }
}

/// What an episode did.
#[derive(Debug, Clone)]
pub struct Episode {
    /// The fault.
    pub fault: Fault,
    /// Which members it hit and who led after, for logs.
    pub description: String,
    /// From the injection until a new leader was seen (faults that take
    /// the leader away), or `None`.
    pub election: Option<Duration>,
    /// From the undo (restart, resume, heal) until every member served.
    pub recovery: Duration,
}

impl Cluster {
    /// Injects `fault`, holds it for `hold`, undoes it and waits until
    /// every member serves and one leads. `client` is the node a
    /// [`Fault::ClientPartition`] puts in the minority.
    pub async fn run_episode(
        &mut self,
        fault: Fault,
        client: &Node,
        hold: Duration,
    ) -> Result<Episode, String> {
        let leader = self.leader().await?;
        let injected = Instant::now();
        let (description, election) = match fault {
            Fault::LeaderKill => {
                self.kill(leader)?;
                let next = self.wait_for_new_leader(leader).await?;
                let election = injected.elapsed();
                tokio::time::sleep(hold.saturating_sub(election)).await;
                self.restart(leader).await?;
                (
                    format!("killed m{}, m{} led", leader + 1, next + 1),
                    Some(election),
                )
            }
            Fault::LeaderPause => {
                self.pause(leader)?;
                let next = self.wait_for_new_leader(leader).await?;
                let election = injected.elapsed();
                tokio::time::sleep(hold.saturating_sub(election)).await;
                self.resume(leader)?;
                (
                    format!("paused m{}, m{} led", leader + 1, next + 1),
                    Some(election),
                )
            }
            Fault::MemberPartition => {
                self.isolate(leader)?;
                tokio::time::sleep(hold).await;
                self.heal()?;
                (format!("isolated m{}", leader + 1), None)
            }
            Fault::ClientPartition => {
                let kept = (0..self.size()).find(|&i| i != leader).unwrap_or(leader);
                for other in (0..self.size()).filter(|&i| i != kept) {
                    self.network().block(client.addr, self.member_addr(other))?;
                    self.network()
                        .block(self.member_addr(kept), self.member_addr(other))?;
                }
                tokio::time::sleep(hold).await;
                self.heal()?;
                (
                    format!(
                        "{} kept m{} only, cut from the majority",
                        client.label,
                        kept + 1
                    ),
                    None,
                )
            }
        };
        let undone = Instant::now();
        self.wait_ready().await?;
        Ok(Episode {
            fault,
            description,
            election,
            recovery: undone.elapsed(),
        })
    }
}

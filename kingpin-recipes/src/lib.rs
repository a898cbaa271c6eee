//! Coordination recipes over any kingpin [`Coordinator`](kingpin_api::Coordinator):
//! ZooKeeper, etcd, SQLite or the in-memory reference, through the one
//! trait and never a backend crate.
//!
//! | recipe | what |
//! |---|---|
//! | [`Lock`] | fair mutual exclusion with fencing tokens and guarded writes |
//! | [`RwLock`] | readers share, writers exclude |
//! | [`Semaphore`] | at most N holders |
//! | [`Election`] | one leader at a time, observed by anyone |
//! | [`Party`] | group membership, each member with its data |
//! | [`SetPartitioner`] | a set of items divided among a party's live members |
//! | [`Counter`] | an integer added to atomically, never twice |
//! | [`Barrier`], [`DoubleBarrier`] | wait for a gate to open; enter and leave together |
//!
//! Each recipe's rustdoc says what it guarantees and what it does not.
//! Owners stop acting as owners when the session is suspended, not only
//! when it expires; every hold carries a [`FencingToken`]; and a write to
//! the coordinator can be made conditional on still holding, in the same
//! transaction ([`LockGuard::guarded_transaction`]).
//!
//! Node names follow kazoo's recipes where they meet the Python world
//! (`<uuid hex>__lock__<sequence>` contenders, `<uuid hex>__party__`
//! members), so a kazoo `Lock` and ours on one path exclude each other; see
//! [`contender`] for the details and where ours differ.
#![deny(missing_docs)]

mod barrier;
pub mod contender;
mod counter;
mod election;
mod error;
mod hold;
mod lock;
mod partitioner;
mod party;
mod queue;
mod rwlock;
mod semaphore;

pub use barrier::{Barrier, DoubleBarrier};
pub use counter::Counter;
pub use election::{Election, Leadership};
pub use error::{Error, LossReason, NotHeldReason, Result};
pub use hold::{FencingToken, HoldState, LockGuard};
pub use lock::{Contender, Lock};
pub use partitioner::{PartitionFn, PartitionState, SetPartitioner, SetPartitionerBuilder};
pub use party::{Party, PartyMember, PartyMembership};
pub use rwlock::RwLock;
pub use semaphore::Semaphore;

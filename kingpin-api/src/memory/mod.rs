//! In-memory reference implementations of the two traits:
//! [`MemoryCoordinator`] (with [`MemoryServer`]) and [`MemoryBlobStore`].
//! Unit tests of the components above the traits run on these.

mod blob_store;
mod coordinator;

pub use blob_store::MemoryBlobStore;
pub use coordinator::{MemoryCoordinator, MemoryServer};

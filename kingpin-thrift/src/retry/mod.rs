//! When a failed call is tried again, and how often: the [`RetryPolicy`]
//! of one client and the [`RetryBudget`] that caps retries across calls.

mod budget;
mod policy;

pub use budget::RetryBudget;
pub use policy::RetryPolicy;

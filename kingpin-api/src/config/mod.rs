//! The config store (design.md §4): versioned configs whose content lives
//! in the blob store and whose current record lives in the coordinator.

mod name;
mod record;
mod store;

pub use name::{ConfigName, MAX_CONFIG_NAME_LEN};
pub use record::{ChangeInfo, ConfigRecord};
pub use store::{Config, ConfigStore, GcReport, DEFAULT_KEEP_VERSIONS, DEFAULT_MAX_CONFIG_SIZE};

//! The config store (design.md §4): versioned configs whose content lives
//! in the blob store and whose current record lives in the coordinator.

mod cleanup;
mod name;
mod prepared;
mod record;
mod resolve;
mod restore;
mod store;

pub use name::{ConfigName, MAX_CONFIG_NAME_LEN};
pub use prepared::PreparedWrite;
pub use record::{ChangeInfo, ConfigRecord, SourceVersion};
pub use resolve::DEFAULT_RESOLVE_TIMEOUT;
pub use store::{Config, ConfigStore, GcReport, DEFAULT_KEEP_VERSIONS, DEFAULT_MAX_CONFIG_SIZE};

//! Environments (design.md §9): Jones's hierarchical configuration on the
//! config store.
//!
//! A service (`web`) has a root environment `/` and any depth of children
//! (`/prod`, `/prod/us-east`). Each environment's own content is a JSON
//! object stored as a versioned config; its **view** is the merge of the
//! contents from the root down by JSON Merge Patch (RFC 7396): objects
//! merge key by key at every depth, `null` removes an inherited key,
//! anything else replaces. Views are materialized as versioned configs, so
//! a host reads one record and one blob, and a write commits every view it
//! rebuilds in one coordinator transaction that checks every environment
//! merged: concurrent writers retry instead of clobbering a view (Jones's
//! defect), and each view's record names the versions it merged.
//!
//! Hosts are associated with an environment, one node per host (Jones kept
//! them all in one znode); a host without an association reads the root
//! view, and an association may pin a view version. The monitor resolves
//! its host's association ([`local_host_id`]) and writes the view to a
//! local file.
//!
//! | what | coordinator node | config |
//! |---|---|---|
//! | the service (its version counts shape changes) | `/environments/<svc>` | — |
//! | `/prod`'s own content | `/environments/<svc>/conf/prod` | `environments.<svc>.conf.prod` |
//! | `/prod`'s view | `/environments/<svc>/views/prod` | `environments.<svc>.views.prod` |
//! | a host's association | `/environments/<svc>/hosts/<host>` | — |
//! | the hosts of `/prod` | `/environments/<svc>/members/prod/<host>` | — |
//!
//! ```
//! # async fn demo() -> kingpin_api::Result<()> {
//! use kingpin_api::environment::{content_of, EnvPath, Environments, HostId, ServiceName};
//! use kingpin_api::{ChangeInfo, ConfigStore, MemoryBlobStore, MemoryServer};
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! let store = ConfigStore::new(Arc::new(MemoryServer::new().connect()), Arc::new(MemoryBlobStore::new()));
//! let envs = Environments::new(store);
//! let (web, who) = (ServiceName::parse("web")?, ChangeInfo::new("alice", "setup"));
//! envs.create(&web, &EnvPath::root(), content_of("root", json!({"db": {"host": "db1", "pool": 10}}))?, &who).await?;
//! let prod = EnvPath::parse("/prod")?;
//! envs.create(&web, &prod, content_of("prod", json!({"db": {"pool": 50}}))?, &who).await?;
//! let view = envs.view(&web, &prod).await?.expect("created with the environment");
//! assert_eq!(serde_json::Value::Object(view.content), json!({"db": {"host": "db1", "pool": 50}}));
//! envs.associate(&web, &HostId::parse("web-1.example.com")?, &prod).await?;
//! # Ok(()) }
//! ```

mod delete;
mod hosts;
mod identity;
mod jones;
mod merge;
mod names;
mod store;
mod transfer;
mod write;

pub use delete::Deletion;
pub use hosts::Association;
pub use identity::{fqdn, local_host_id, HOST_ENV};
pub use jones::{
    plan_jones_import, read_jones, JonesAdjustment, JonesDifference, JonesPlan, JonesService,
};
pub use merge::{
    content_bytes, content_of, merge_chain, parse_content, sources, Content, ValueSource,
};
pub use names::{
    EnvPath, HostId, ServiceName, ENVIRONMENTS_PREFIX, ENVIRONMENTS_ROOT, MAX_HOST_LEN,
};
pub use store::{Environment, EnvironmentWrite, Environments, View};
pub use transfer::{HostEntry, ImportReport, ServiceDocument, DOCUMENT_FORMAT};

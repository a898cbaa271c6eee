//! Thrift for kingpin services, on volo-thrift.
//!
//! - [`ClientBuilder`] turns a volo-generated client into one that calls
//!   the hosts of a serverset ([`ServersetDiscover`]: the monitor's local
//!   file, or the coordinator), on pooled connections recycled after a
//!   number of requests or an age, with a per-call timeout, retries on
//!   another host ([`RetryPolicy`], [`RetryBudget`]) and per-method
//!   [`ClientMetrics`]. Framed or buffered transport, binary protocol:
//!   it talks to plain Apache Thrift servers.
//! - [`ServerBuilder`] serves a volo-thrift service and keeps it a member
//!   of its serverset while it serves; it leaves, drains and stops on
//!   [`RunningServer::stop`] or a signal.
//!
//! The code for an IDL is generated in the application's `build.rs` by
//! volo-build, with no external compiler; `examples/ping` in the
//! repository is a complete service.
#![deny(missing_docs)]

mod balance;
mod client;
mod discover;
mod error;
mod metrics;
mod recycle;
mod retry;
mod server;
mod striped;

pub use client::{BoxedService, ClientBuilder, GeneratedBuilder, Transport};
pub use discover::{default_hosts, ServersetDiscover};
pub use error::{AttemptFailure, CallFailure, FailureReason};
pub use metrics::{ClientMetrics, ErrorKind};
pub use recycle::Recycle;
pub use retry::{RetryBudget, RetryPolicy};
pub use server::{RunningServer, ServeError, ServerBuilder};

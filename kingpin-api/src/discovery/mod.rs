//! Service discovery (design.md §6): serversets on the coordinator.
//!
//! A serverset `discovery.<service>.<env>` lives at
//! `/discovery/<service>/<env>`; each member is an ephemeral-sequential
//! `member_NNNNNNNNNN` node holding Finagle's serverset JSON, so Finagle,
//! Aurora and kazoo-based clients read our members and we read theirs.
//! KingPin's `<id>-<host:port>` member names are read too.
//!
//! - [`ServerSet::join`] registers a [`Member`] and keeps it registered
//!   through reconnects and session expiry; [`Membership::leave`] removes it.
//! - [`ServerSet::members`] and [`MemberCache`] read the members;
//!   [`ServerSet::watch`] says when they change.
//! - [`Registration`] keeps a member joined while a [`HealthCheck`]
//!   passes, with HAProxy-style rise/fall ([`HealthPolicy`]).
//! - [`ServerSet::hosts_provider`] gives a `kingpin_client::HostsProvider`
//!   fed straight from the coordinator.

mod acceptance;
mod hosts;
mod member;
mod registration;
mod serverset;

pub use acceptance::{acceptance_path, Acceptance, ACCEPTANCE_ROOT, MAX_ACCEPTANCE};
pub use hosts::HostsFollower;
pub use member::{Member, MemberStatus, MEMBER_PREFIX};
pub use registration::{
    AlwaysHealthy, HealthCheck, HealthPolicy, Registration, RegistrationBuilder, RegistrationState,
};
pub use serverset::{alive_endpoints, MemberCache, Membership, ServerSet};

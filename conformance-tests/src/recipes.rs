//! The recipe suite: every recipe of `kingpin-recipes` on a backend, with
//! the faults the backend allows injected (session expiry, server restart,
//! a holding process killed with SIGKILL, replies lost after the server
//! applied them). Backends run it through [`recipes_suite!`](crate::recipes_suite).

use std::future::Future;
use std::time::Duration;

use kingpin_api::NodePath;

pub mod counter;
pub mod election;
pub mod faults;
pub mod lock;
pub mod membership;
pub mod partitioner;
pub mod peer;
pub mod sharing;

/// How long a case waits for something the recipe owes it (an
/// acquisition, an event). Only turns a hang into a failure.
pub const BOUND: Duration = Duration::from_secs(60);

pub(crate) fn p(s: &str) -> NodePath {
    NodePath::parse(s).expect("test paths are valid")
}

/// Awaits `future` at most [`BOUND`], failing the case with `what`.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, future).await {
        Ok(value) => value,
        Err(_) => panic!("no {what} within {BOUND:?}"),
    }
}

/// Declares the recipe suite for a backend: `recipes_suite!(harness)`,
/// where `harness(needs, case)` returns an `Option<impl Harness>` as for
/// [`coordinator_suite!`](crate::coordinator_suite). Cases that kill a
/// process use the `kingpin-recipes-peer` binary of this package, so the
/// macro is for this package's tests.
#[macro_export]
macro_rules! recipes_suite {
    ($harness:path) => {
        $crate::recipes_suite!(@cases $harness, $crate::ServerNeeds::Shared;
            lock::excludes_with_growing_tokens_under_expiry,
            lock::try_lock_timeout_and_fifo_without_herd,
            lock::lost_create_reply_leaves_no_orphan,
            lock::waiter_rechecks_the_queue_when_its_predecessor_expires,
            lock::expiry_kills_the_token,
            election::one_leader_at_a_time_and_failover,
            counter::concurrent_additions_are_exact_despite_lost_replies,
            partitioner::shares_are_disjoint_and_cover_the_set,
            membership::party_members_are_seen_and_kept_through_expiry,
            sharing::rwlock_readers_share_writers_exclude,
            sharing::semaphore_admits_at_most_its_limit,
            sharing::barrier_and_double_barrier);
        $crate::recipes_suite!(@cases $harness, $crate::ServerNeeds::Restartable;
            lock::holder_stops_owning_while_suspended,
            election::leader_is_not_leader_while_suspended,
            counter::additions_are_exact_across_a_server_restart);
        $crate::recipes_suite!(@peer $harness;
            lock::waiter_takes_over_when_the_holder_process_is_killed,
            election::fails_over_when_the_leader_process_is_killed);
    };
    (@cases $harness:path, $needs:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(harness) = $harness($needs, stringify!($case)).await {
                    $crate::recipes::$module::$case(&harness).await;
                }
            }
        )*
    };
    (@peer $harness:path; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(harness) = $harness($crate::ServerNeeds::Shared, stringify!($case)).await {
                    $crate::recipes::$module::$case(
                        &harness,
                        env!("CARGO_BIN_EXE_kingpin-recipes-peer"),
                    )
                    .await;
                }
            }
        )*
    };
}

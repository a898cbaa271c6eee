//! The set partitioner's cases: shares disjoint at all times and covering
//! the set once everyone has acquired, through joins and an expiry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kingpin_recipes::{PartitionState, SetPartitioner};

use super::{p, within};
use crate::harness::{Harness, TestSession};

const PARTITIONED: &str = "/recipes/partitioned";
const SETTLE: Duration = Duration::from_millis(300);

fn items() -> Vec<String> {
    (0..12).map(|n| format!("item-{n:02}")).collect()
}

fn start(session: &TestSession, identifier: &str) -> SetPartitioner {
    SetPartitioner::builder(session.coordinator.clone(), p(PARTITIONED), items())
        .expect("valid items")
        .identifier(identifier)
        .settle_time(SETTLE)
        .start()
}

/// Checks that the acquired members' shares never overlap, and drives the
/// members (releasing in `Release`) until all are acquired and their
/// shares cover the set.
async fn until_covered(members: &[&SetPartitioner]) {
    let all: BTreeSet<String> = items().into_iter().collect();
    let mut states: Vec<_> = members.iter().map(|m| m.watch_state()).collect();
    within("the shares to cover the set", async {
        loop {
            let mut seen = BTreeSet::new();
            let mut acquired = 0;
            for member in members {
                if member.state() == PartitionState::Acquired {
                    acquired += 1;
                    for item in member.items() {
                        assert!(seen.insert(item.clone()), "{item} is in two shares");
                    }
                }
            }
            if acquired == members.len() && seen == all {
                return;
            }
            for member in members {
                match member.state() {
                    PartitionState::Release => member.release_set().await.expect("released"),
                    PartitionState::Failed => panic!("a live member failed"),
                    _ => {}
                }
            }
            let changes = states.iter_mut().map(|s| Box::pin(s.changed()));
            let _ = futures::future::select_all(changes).await;
        }
    })
    .await;
}

/// Three members split twelve items; a fourth joins and the shares move;
/// one member's session expires: it fails and the others take its items.
pub async fn shares_are_disjoint_and_cover_the_set(h: &dyn Harness) {
    let sessions: Vec<Arc<TestSession>> = {
        let mut sessions = Vec::new();
        for _ in 0..4 {
            sessions.push(Arc::new(h.connect().await));
        }
        sessions
    };
    let a = start(&sessions[0], "a");
    let b = start(&sessions[1], "b");
    let c = start(&sessions[2], "c");
    until_covered(&[&a, &b, &c]).await;
    assert_eq!(a.items().len(), 4);

    let d = start(&sessions[3], "d");
    until_covered(&[&a, &b, &c, &d]).await;
    assert_eq!(d.items().len(), 3);

    let mut c_state = c.watch_state();
    sessions[2].expire().await.unwrap();
    within(
        "the expired member to fail",
        c_state.wait_for(|s| *s == PartitionState::Failed),
    )
    .await
    .unwrap();
    assert!(c.items().is_empty());
    until_covered(&[&a, &b, &d]).await;
    for member in [a, b, d] {
        member.finish().await.unwrap();
    }
    c.finish().await.unwrap();
}

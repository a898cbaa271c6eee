//! The party's cases.

use std::sync::Arc;

use futures::StreamExt;
use kingpin_recipes::Party;

use super::{p, within};
use crate::harness::Harness;

const PARTY: &str = "/recipes/party";

/// Members are listed with their data by others; a member whose session
/// expired is back under a new session; a member that leaves is gone.
pub async fn party_members_are_seen_and_kept_through_expiry(h: &dyn Harness) {
    let observer_session = h.connect().await;
    let observer = Party::new(observer_session.coordinator.clone(), p(PARTY));
    let mut changes = observer.watch().await.unwrap();
    let a_session = Arc::new(h.connect().await);
    let a = Party::new(a_session.coordinator.clone(), p(PARTY))
        .join("member a")
        .await
        .unwrap();
    let b_session = h.connect().await;
    let b = Party::new(b_session.coordinator.clone(), p(PARTY))
        .join("member b")
        .await
        .unwrap();
    assert!(a.is_member() && b.is_member());
    let mut data: Vec<Vec<u8>> = observer
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.data)
        .collect();
    data.sort();
    assert_eq!(data, [b"member a".to_vec(), b"member b".to_vec()]);

    a_session.expire().await.unwrap();
    let new_session = a_session.session_id();
    within("the member to be back", async {
        loop {
            let members = observer.members().await.unwrap();
            let back = members.iter().any(|m| m.node == *a.node());
            if back {
                let stat = observer_session.exists(a.node()).await.unwrap();
                if stat.and_then(|s| s.ephemeral_owner) == new_session {
                    return;
                }
            }
            changes.next().await;
        }
    })
    .await;
    let mut present = a.watch_presence();
    within(
        "the membership to see itself back",
        present.wait_for(|here| *here),
    )
    .await
    .unwrap();
    assert!(a.is_member());

    a.leave().await.unwrap();
    b.leave().await.unwrap();
    within("the members to leave", async {
        while !observer.members().await.unwrap().is_empty() {
            changes.next().await;
        }
    })
    .await;
}

//! The election's cases: one leader at a time through resignation and
//! expiry, an old leader's writes refused, suspension, a killed leader.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kingpin_api::{CreateMode, WatchKind};
use kingpin_recipes::{Contender, Election, Error, HoldState, Leadership};
use tokio::sync::{mpsc, watch};

use super::peer::Peer;
use super::{p, within};
use crate::harness::{skip, Harness};
use crate::recipes::lock::{hold_after_outage, until_children};

const ELECTION: &str = "/recipes/election";
const WRITES: &str = "/recipes/leader-writes";

/// Waits until the observed leader has `identifier` (`None`: no leader).
async fn until_leader(observed: &mut watch::Receiver<Option<Contender>>, identifier: Option<&str>) {
    within(&format!("leader {identifier:?}"), async {
        observed
            .wait_for(|leader| {
                leader.as_ref().map(|l| l.identifier.as_slice()) == identifier.map(str::as_bytes)
            })
            .await
            .expect("the observer runs");
    })
    .await;
}

async fn next_leader(
    elected: &mut mpsc::UnboundedReceiver<(usize, Leadership)>,
) -> (usize, Leadership) {
    within("a leader", elected.recv())
        .await
        .expect("a candidate")
}

/// Four candidates; leaders resign or have their session expired in turn.
/// There is exactly one leader at a time and always one while a candidate
/// runs, observers follow it, tokens grow, and a deposed leader's guarded
/// write fails once a new one is elected.
pub async fn one_leader_at_a_time_and_failover(h: &dyn Harness) {
    const CANDIDATES: usize = 4;
    let observer_session = h.connect().await;
    observer_session
        .create(&p(WRITES), b"", CreateMode::Persistent)
        .await
        .unwrap();
    let observer = Election::new(observer_session.coordinator.clone(), p(ELECTION));
    let mut observed = observer.observe().await.unwrap();
    assert!(observed.borrow().is_none(), "no candidate yet");

    let (elected_tx, mut elected) = mpsc::unbounded_channel::<(usize, Leadership)>();
    let mut sessions = Vec::new();
    for i in 0..CANDIDATES {
        let session = Arc::new(h.connect().await);
        let election = Election::new(session.coordinator.clone(), p(ELECTION))
            .with_identifier(format!("candidate-{i}"));
        let elected_tx = elected_tx.clone();
        tokio::spawn(async move {
            let leadership = election.campaign().await.expect("a campaign");
            let _ = elected_tx.send((i, leadership));
        });
        sessions.push(session);
    }
    let (first, l1) = next_leader(&mut elected).await;
    until_leader(&mut observed, Some(&format!("candidate-{first}"))).await;
    assert!(l1.is_leader());
    until_children(
        &*observer_session,
        &p(ELECTION),
        "every candidate to run",
        |c| c.len() == CANDIDATES,
    )
    .await;
    assert!(l1.is_leader(), "still the leader with every candidate in");
    l1.guarded_set(&p(WRITES), b"first", None).await.unwrap();
    let t1 = l1.token();
    l1.resign().await.unwrap();

    let (second, l2) = next_leader(&mut elected).await;
    assert_ne!(second, first);
    assert!(l2.token() > t1);
    until_leader(&mut observed, Some(&format!("candidate-{second}"))).await;
    l2.guarded_set(&p(WRITES), b"second", None).await.unwrap();

    sessions[second].expire().await.unwrap();
    let (third, l3) = next_leader(&mut elected).await;
    assert!(l3.token() > l2.token());
    assert!(!l2.is_leader());
    match l2.guarded_set(&p(WRITES), b"deposed", None).await {
        Err(Error::NotHeld { .. }) => {}
        other => panic!("a deposed leader's write was not refused: {other:?}"),
    }
    l3.guarded_set(&p(WRITES), b"third", None).await.unwrap();
    assert_eq!(
        observer_session.get(&p(WRITES)).await.unwrap().data,
        b"third"
    );
    until_leader(&mut observed, Some(&format!("candidate-{third}"))).await;

    l3.resign().await.unwrap();
    let (fourth, l4) = next_leader(&mut elected).await;
    until_leader(&mut observed, Some(&format!("candidate-{fourth}"))).await;
    assert!(elected.try_recv().is_err(), "one leader at a time");
    l4.resign().await.unwrap();
    until_leader(&mut observed, None).await;
    drop(l2);
}

/// While the server is down the leader is not leader; back with its
/// session intact, it leads again.
pub async fn leader_is_not_leader_while_suspended(h: &dyn Harness) {
    if !h.can_restart_server() {
        return skip(
            h.name(),
            "leader_is_not_leader_while_suspended",
            "this harness cannot stop its server",
        );
    }
    let session = h.connect().await;
    let leadership = Election::new(session.coordinator.clone(), p(ELECTION))
        .campaign()
        .await
        .unwrap();
    let session_before = session.session_id();
    let mut state = leadership.watch_state();
    h.stop_server().await;
    within(
        "the leader to step back",
        state.wait_for(|s| *s != HoldState::Held),
    )
    .await
    .unwrap();
    assert!(!leadership.is_leader());
    within("until_not_leader", leadership.until_not_leader()).await;
    h.start_server().await;
    let back = hold_after_outage(&*session, session_before, &leadership).await;
    assert_eq!(leadership.is_leader(), back);
}

/// The leader runs in another process, killed with SIGKILL; a candidate
/// here leads within the leader's session timeout plus one second.
pub async fn fails_over_when_the_leader_process_is_killed(h: &dyn Harness, peer_binary: &str) {
    let Some(peer_session) = h.peer_session() else {
        return skip(
            h.name(),
            "fails_over_when_the_leader_process_is_killed",
            "sessions cannot be shared between processes",
        );
    };
    let leader = Peer::hold(peer_binary, &peer_session, "campaign", ELECTION).await;
    let session = h.connect().await;
    let election = Election::new(session.coordinator.clone(), p(ELECTION)).with_identifier("here");
    let mut candidates = session
        .watch(&p(ELECTION), WatchKind::Children)
        .await
        .unwrap();
    let campaign = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign().await })
    };
    within("our candidacy", async {
        while election.candidates().await.unwrap().len() < 2 {
            candidates.next().await;
        }
    })
    .await;
    let peer_token = leader.token;
    let killed = Instant::now();
    leader.kill().await;
    let leadership = within("the failover", campaign).await.unwrap().unwrap();
    let took = killed.elapsed();
    let bound = peer_session.session_timeout + peer_session.reaping_delay + Duration::from_secs(1);
    assert!(
        took <= bound,
        "a new leader took {took:?} after the old one died (bound {bound:?})"
    );
    assert!(leadership.token() > peer_token);
    assert_eq!(
        election.leader().await.unwrap().map(|l| l.identifier),
        Some(b"here".to_vec())
    );
    leadership.resign().await.unwrap();
}

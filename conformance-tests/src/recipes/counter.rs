//! The counter's cases: exact totals under contention, lost replies and a
//! server restart.

use kingpin_recipes::Counter;

use super::faults::FaultyCoordinator;
use super::{p, within};
use crate::harness::{skip, Harness};
use crate::recipes::lock::until_no_children;

const COUNTER: &str = "/recipes/counter";

/// `clients` sessions add 1 `additions` times each; every `period`-th
/// transaction of each loses its reply after the server applied it.
/// Returns the replies lost.
async fn add_concurrently(h: &dyn Harness, clients: usize, additions: usize, period: u64) -> u64 {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let faulty = FaultyCoordinator::connect(h).await;
        faulty.lose_every_nth_transaction_reply(period);
        let counter = Counter::new(faulty.clone(), p(COUNTER));
        tasks.push(tokio::spawn(async move {
            for _ in 0..additions {
                within("an addition", counter.add(1)).await.expect("added");
            }
            faulty.injected()
        }));
    }
    let mut lost = 0;
    for task in tasks {
        lost += task.await.expect("a client");
    }
    lost
}

/// 8 clients add 1 200 times each, every 7th transaction's reply lost:
/// the counter ends at exactly 1,600 and no receipt is left behind.
pub async fn concurrent_additions_are_exact_despite_lost_replies(h: &dyn Harness) {
    let lost = add_concurrently(h, 8, 200, 7).await;
    assert!(lost > 0, "replies were lost");
    let reader = h.connect().await;
    let counter = Counter::new(reader.coordinator.clone(), p(COUNTER));
    assert_eq!(
        counter.get().await.unwrap(),
        1600,
        "{lost} replies were lost"
    );
    until_no_children(&*reader, &p(COUNTER), "the receipts to go").await;
}

/// Additions made while the server restarts all count, once.
pub async fn additions_are_exact_across_a_server_restart(h: &dyn Harness) {
    if !h.can_restart_server() {
        return skip(
            h.name(),
            "additions_are_exact_across_a_server_restart",
            "this harness cannot restart its server",
        );
    }
    let reader = h.connect().await;
    let counter = Counter::new(reader.coordinator.clone(), p(COUNTER));
    counter.add(0).await.unwrap();
    let adding = {
        let h: &dyn Harness = h;
        let clients = async move { add_concurrently(h, 4, 50, 0).await };
        let restart = async move {
            // A restart in the middle of the additions.
            let mut watch = reader
                .watch(&p(COUNTER), kingpin_api::WatchKind::Data)
                .await
                .unwrap();
            within("the first additions", async {
                while counter.get().await.unwrap() < 20 {
                    futures::StreamExt::next(&mut watch).await;
                }
            })
            .await;
            h.restart_server().await;
        };
        futures::future::join(clients, restart)
    };
    adding.await;
    let reader = h.connect().await;
    let total = Counter::new(reader.coordinator.clone(), p(COUNTER));
    assert_eq!(total.get().await.unwrap(), 200);
    until_no_children(&*reader, &p(COUNTER), "the receipts to go").await;
}

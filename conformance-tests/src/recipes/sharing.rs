//! The read-write lock's, the semaphore's and the barriers' cases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kingpin_recipes::{Barrier, DoubleBarrier, RwLock, Semaphore};

use super::{p, within};
use crate::harness::Harness;
use crate::recipes::lock::{until_children, until_no_children};

const RWLOCK: &str = "/recipes/rwlock";
const SEMAPHORE: &str = "/recipes/semaphore";

/// Readers hold together; a writer waits for them and excludes everyone;
/// a reader arriving behind a waiting writer waits for it.
pub async fn rwlock_readers_share_writers_exclude(h: &dyn Harness) {
    let observer = h.connect().await;
    let rw = |session: &crate::TestSession| RwLock::new(session.coordinator.clone(), p(RWLOCK));
    let (s1, s2, s3, s4) = (
        h.connect().await,
        h.connect().await,
        h.connect().await,
        h.connect().await,
    );
    let r1 = rw(&s1).read().await.unwrap();
    let r1_token = r1.token();
    let r2 = rw(&s2).try_read().await.unwrap().expect("readers share");
    assert!(rw(&s3).try_write().await.unwrap().is_none());
    let writer = rw(&s3);
    let writing = tokio::spawn(async move { writer.write().await });
    until_children(&*observer, &p(RWLOCK), "the writer to queue", |c| {
        c.len() == 3
    })
    .await;
    assert!(
        rw(&s4).try_read().await.unwrap().is_none(),
        "a reader behind a waiting writer waits"
    );
    let late_reader = rw(&s4);
    let reading = tokio::spawn(async move { late_reader.read().await });
    r1.release().await.unwrap();
    r2.release().await.unwrap();
    let w = within("the writer's turn", writing).await.unwrap().unwrap();
    assert!(w.token() > r1_token);
    assert!(!reading.is_finished(), "the writer excludes readers");
    w.release().await.unwrap();
    let r3 = within("the late reader's turn", reading)
        .await
        .unwrap()
        .unwrap();
    r3.release().await.unwrap();
    until_no_children(&*observer, &p(RWLOCK), "an empty queue").await;
}

/// Six sessions take a lease of a 2-lease semaphore 5 times each: never
/// more than two at once, and everyone gets through.
pub async fn semaphore_admits_at_most_its_limit(h: &dyn Harness) {
    const LIMIT: usize = 2;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let session = h.connect().await;
        let semaphore = Semaphore::new(session.coordinator.clone(), p(SEMAPHORE), LIMIT).unwrap();
        let (inside, most) = (inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            let _session = session;
            for _ in 0..5 {
                let lease = within("a lease", semaphore.acquire()).await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                assert!(now <= LIMIT, "{now} holders of a {LIMIT}-lease semaphore");
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lease.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(most.load(Ordering::SeqCst) >= 1);
    let session = h.connect().await;
    let other = Semaphore::new(session.coordinator.clone(), p(SEMAPHORE), LIMIT + 1).unwrap();
    assert!(
        other.try_acquire().await.is_err(),
        "a semaphore with another limit is refused"
    );
}

/// A barrier holds waiters until removed; a double barrier lets its
/// participants in together and out together, and leaves nothing.
pub async fn barrier_and_double_barrier(h: &dyn Harness) {
    let s1 = h.connect().await;
    let gate = Barrier::new(s1.coordinator.clone(), p("/recipes/gate"));
    gate.create().await.unwrap();
    let s2 = h.connect().await;
    let waiter = Barrier::new(s2.coordinator.clone(), p("/recipes/gate"));
    assert!(!waiter
        .wait_timeout(Duration::from_millis(100))
        .await
        .unwrap());
    let waiting = tokio::spawn(async move { waiter.wait().await });
    gate.remove().await.unwrap();
    within("the gate to open", waiting).await.unwrap().unwrap();

    const PARTICIPANTS: usize = 3;
    let entered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..PARTICIPANTS {
        let session = h.connect().await;
        let barrier = DoubleBarrier::new(
            session.coordinator.clone(),
            p("/recipes/double"),
            PARTICIPANTS,
        )
        .unwrap()
        .with_data(format!("p{i}"));
        let entered = entered.clone();
        tasks.push(tokio::spawn(async move {
            let _session = session;
            within("everyone to enter", barrier.enter()).await.unwrap();
            entered.fetch_add(1, Ordering::SeqCst);
            within("everyone to leave", barrier.leave()).await.unwrap();
            assert_eq!(
                entered.load(Ordering::SeqCst),
                PARTICIPANTS,
                "left before all entered"
            );
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    until_no_children(&*s1, &p("/recipes/double"), "the double barrier to empty").await;
}

//! Writers adding unique items to one managed list until stopped, keeping
//! which adds were acknowledged and which failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kingpin_api::managed::ManagedList;
use kingpin_api::ErrorKind;
use kingpin_conformance_tests::cluster::ClientRuntime;

/// What the writers did.
#[derive(Debug, Default)]
pub struct Adds {
    /// Items whose add was acknowledged.
    pub acknowledged: Vec<String>,
    /// Items whose add failed (it may have landed all the same), with the
    /// error's kind and whether it was retryable.
    pub failed: Vec<(String, ErrorKind, bool)>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct ListWriters {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Adds>>,
}

impl ListWriters {
    /// Starts writer `writer` on this runtime.
    pub fn start(&mut self, writer: usize, list: ManagedList<String>) {
        self.tasks
            .push(tokio::spawn(write(writer, list, self.stop.clone())));
    }

    /// Starts writer `writer` on a client node's runtime.
    pub fn start_on(&mut self, client: &ClientRuntime, writer: usize, list: ManagedList<String>) {
        self.tasks
            .push(client.spawn(write(writer, list, self.stop.clone())));
    }

    /// Stops every writer after its add in flight; what they all did.
    pub async fn finish(self) -> anyhow::Result<Adds> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Adds::default();
        for task in self.tasks {
            let adds = task.await?;
            all.acknowledged.extend(adds.acknowledged);
            all.failed.extend(adds.failed);
        }
        Ok(all)
    }
}

async fn write(writer: usize, list: ManagedList<String>, stop: Arc<AtomicBool>) -> Adds {
    let mut adds = Adds::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let item = format!("w{writer}-{n}");
        match list.add(item.clone()).await {
            Ok(_) => adds.acknowledged.push(item),
            Err(e) => adds.failed.push((item, e.kind(), e.is_retryable())),
        }
    }
    adds
}

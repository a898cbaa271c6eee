//! A tokio runtime whose threads live in a node's network namespace: every
//! socket a client opens from it (connections, reconnections, its admin
//! listener) comes from that node's address, so the network can cut this
//! client off while the test process's other clients stay connected.

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::netns::{NetError, Node};

/// A runtime in `node`'s namespace. Dropping it stops its tasks.
#[derive(Debug)]
pub struct ClientRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    node: Node,
}

impl ClientRuntime {
    /// Builds a runtime (2 workers) whose worker and blocking threads enter
    /// `node`'s namespace as they start. The namespace is per thread, so
    /// the runtime's threads and nothing else move.
    pub fn new(node: &Node) -> Result<Self, NetError> {
        let path = format!("/var/run/netns/{}", node.namespace);
        let fd: Arc<OwnedFd> = Arc::new(
            std::fs::File::open(&path)
                .map_err(|e| format!("cannot open {path}: {e}"))?
                .into(),
        );
        let enter = {
            let fd = fd.clone();
            move || {
                // SAFETY: setns on this thread only, with a namespace fd
                // that outlives the runtime's threads (they hold the Arc).
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    // A thread outside the namespace would silently bypass
                    // every partition: better to stop here.
                    eprintln!(
                        "cannot enter a network namespace: {}",
                        std::io::Error::last_os_error()
                    );
                    std::process::abort();
                }
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("ns-{}", node.label))
            .on_thread_start(enter)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a runtime: {e}"))?;
        Ok(ClientRuntime {
            runtime: Some(runtime),
            node: node.clone(),
        })
    }

    /// The node this runtime's sockets belong to.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Runs `future` on this runtime (in the namespace) and waits for it.
    pub async fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        match runtime.spawn(future).await {
            Ok(output) => output,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a task in {} ended early: {e}", self.node.label),
        }
    }

    /// Spawns `future` on this runtime without waiting for it.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        runtime.spawn(future)
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Allowed inside an async context, unlike a plain drop.
            runtime.shutdown_background();
        }
    }
}

//! The conformance suite on the in-memory reference coordinator.

use std::sync::Arc;

use async_trait::async_trait;
use kingpin_api::MemoryServer;
use kingpin_conformance_tests::{
    coordinator_suite, recipes_suite, Harness, ServerNeeds, TestSession,
};

struct MemoryHarness {
    server: MemoryServer,
}

async fn harness(_needs: ServerNeeds, _case: &'static str) -> Option<MemoryHarness> {
    Some(MemoryHarness {
        server: MemoryServer::new(),
    })
}

#[async_trait]
impl Harness for MemoryHarness {
    fn name(&self) -> &str {
        "memory"
    }

    async fn connect(&self) -> TestSession {
        TestSession::new(Arc::new(self.server.connect()), |c| async move {
            c.expire_session();
            Ok(())
        })
    }

    fn can_restart_server(&self) -> bool {
        true
    }

    async fn stop_server(&self) {
        self.server.stop();
    }

    async fn start_server(&self) {
        self.server.start();
    }
}

coordinator_suite!(harness);

mod recipes {
    super::recipes_suite!(super::harness);
}

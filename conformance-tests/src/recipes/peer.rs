//! Another OS process holding a recipe (`kingpin-recipes-peer`), to be
//! killed with SIGKILL.

use std::process::Stdio;

use kingpin_recipes::FencingToken;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{within, BOUND};
use crate::harness::PeerSession;

/// A running `kingpin-recipes-peer` that holds a lock or leads.
pub struct Peer {
    child: Child,
    /// The token it holds with.
    pub token: FencingToken,
}

impl Peer {
    /// Starts `binary` as `URL <verb> PATH` and waits until it holds.
    pub async fn hold(binary: &str, session: &PeerSession, verb: &str, path: &str) -> Peer {
        let mut child = Command::new(binary)
            .args([session.url.as_str(), verb, path])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = within("the peer process to hold", lines.next_line())
            .await
            .unwrap_or_else(|e| panic!("reading the peer's output: {e}"))
            .unwrap_or_else(|| panic!("the peer process exited without holding (see its stderr)"));
        let token = line
            .strip_prefix("held ")
            .and_then(|t| t.parse().ok())
            .map(FencingToken::new)
            .unwrap_or_else(|| panic!("the peer printed {line:?}, not `held <token>`"));
        Peer { child, token }
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL the peer");
        let _ = tokio::time::timeout(BOUND, self.child.wait()).await;
    }
}

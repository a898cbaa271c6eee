//! Python's kazoo (Debian's `python3-kazoo`) as a second, third-party
//! client on the run's ZooKeeper: interop tests run small kazoo scripts as
//! child processes that print JSON lines, read commands from stdin, and
//! keep their session (and so their ephemeral nodes) until stdin closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kingpin_api::Coordinator;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::endpoints::{shared_endpoint, skip_external, SKIP_EXTERNAL_ENV};
use crate::harness::skip;
use crate::servers::ServerKind;
use crate::unique_namespace;

/// Where kazoo may be: `python3` on `PATH` first; then Debian's own
/// interpreter, which is where `apt-get install python3-kazoo` puts it even
/// when a pyenv or venv `python3` comes first on `PATH`.
const PYTHONS: [&str; 2] = ["python3", "/usr/bin/python3"];

/// How long a script may take to print its next line or to exit.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The run's ZooKeeper, a chroot of the test's own, and a Python with kazoo.
pub struct Kazoo {
    hosts: String,
    chroot: String,
    python: &'static str,
}

impl Kazoo {
    /// `None` when the run opted out of external servers and tools;
    /// otherwise a missing ZooKeeper, Python or kazoo fails the test.
    pub async fn find(case: &str) -> Option<Self> {
        let hosts = shared_endpoint(ServerKind::ZooKeeper, case).await?;
        let mut tried = Vec::new();
        for python in PYTHONS {
            match Command::new(python).args(["-c", "import kazoo"]).output() {
                Ok(output) if output.status.success() => {
                    return Some(Kazoo {
                        hosts,
                        chroot: unique_namespace(),
                        python,
                    });
                }
                Ok(output) => {
                    // The traceback's last line says what is wrong.
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    let last = stderr.trim().lines().last().unwrap_or_default();
                    tried.push(format!("{python}: {last}"));
                }
                Err(e) => tried.push(format!("{python}: {e}")),
            }
        }
        let why = format!("no Python imports kazoo ({})", tried.join("; "));
        if skip_external() {
            skip("kazoo", case, &format!("{why}; {SKIP_EXTERNAL_ENV}=1"));
            return None;
        }
        panic!(
            "{case} checks against Python's kazoo, but {why}. ./scripts/test installs it \
             (Debian: apt-get install python3-kazoo), or set {SKIP_EXTERNAL_ENV}=1 to opt out"
        );
    }

    /// A session of ours in the chroot (created if missing).
    pub async fn connect(&self) -> Arc<dyn Coordinator> {
        let url = format!("zk://{}{}", self.hosts, self.chroot);
        kingpin::open_coordinator(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    }

    /// Runs `script` with kazoo's hosts string (chroot included) as its
    /// first argument, then `args`.
    pub fn run(&self, script: &str, args: &[&str]) -> KazooScript {
        let hosts = format!("{}{}", self.hosts, self.chroot);
        let mut all = vec![hosts.as_str()];
        all.extend_from_slice(args);
        KazooScript::start(self.python, script, &all)
    }
}

/// A running kazoo script: JSON lines from its stdout, commands to its
/// stdin, its stderr kept for failure messages; killed if the test ends
/// without [`finish`](Self::finish) so that its ephemeral nodes do not
/// outlive the test.
pub struct KazooScript {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl KazooScript {
    fn start(python: &str, script: &str, args: &[&str]) -> Self {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} cannot run: {e}"));
        let (send, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        KazooScript {
            stdin: child.stdin.take(),
            child: Some(child),
            lines,
            stderr: Some(stderr),
        }
    }

    /// Sends one command line to the script.
    pub fn send(&mut self, command: &str) {
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{command}").and_then(|()| stdin.flush()),
            None => Ok(()),
        };
        if let Err(e) = sent {
            self.fail(&format!("did not take the command {command:?} ({e})"));
        }
    }

    /// The next line the script prints, as JSON.
    pub async fn next_json(&mut self, what: &str) -> Value {
        match tokio::time::timeout(SCRIPT_TIMEOUT, self.lines.recv()).await {
            Ok(Some(line)) => serde_json::from_str(&line)
                .unwrap_or_else(|e| self.fail(&format!("printed {line:?}, not JSON ({e})"))),
            Ok(None) => self.fail(&format!("ended before printing {what}")),
            Err(_) => self.fail(&format!("printed no {what} within {SCRIPT_TIMEOUT:?}")),
        }
    }

    /// Reads lines until one satisfies `done`.
    pub async fn until_json(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let value = self.next_json(what).await;
            if done(&value) {
                return value;
            }
        }
    }

    /// Closes stdin, so the script closes its session, and waits for it to
    /// exit successfully.
    pub async fn finish(mut self) {
        drop(self.stdin.take());
        let mut child = self.child.take().expect("not finished yet");
        let exit = tokio::time::timeout(
            SCRIPT_TIMEOUT,
            tokio::task::spawn_blocking(move || child.wait()),
        )
        .await;
        match exit {
            Ok(Ok(Ok(status))) if status.success() => {}
            Ok(Ok(Ok(status))) => self.fail(&format!("exited with {status}")),
            Ok(Ok(Err(e))) => self.fail(&format!("cannot be waited for: {e}")),
            Ok(Err(e)) => self.fail(&format!("waiting panicked: {e}")),
            Err(_) => self.fail(&format!("did not exit within {SCRIPT_TIMEOUT:?}")),
        }
    }

    /// Stops the script and panics with `why` and what it wrote to stderr.
    pub fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let stderr = self
            .stderr
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        panic!("the kazoo script {why}; its stderr:\n{stderr}");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for KazooScript {
    fn drop(&mut self) {
        self.kill();
    }
}

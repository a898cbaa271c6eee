//! `kingpin lock` and `kingpin elect` end to end, on the embedded SQLite
//! coordinator shared by the test's processes.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin::kingpin_api::{Coordinator, NodePath, WatchKind};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long a kingpin process may take to do what a test waits for.
const BOUND: Duration = Duration::from_secs(30);

/// Environment variables that would pick other backends or settings.
const SETTINGS_VARS: [&str; 4] = [
    "KINGPIN_COORDINATOR",
    "KINGPIN_BLOBSTORE",
    "KINGPIN_CONFIG",
    "KINGPIN_AUTHOR",
];

/// A `KINGPIN_HOME` of the test's own, whose embedded database the test
/// also opens to watch what the kingpin processes do.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn kingpin(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kingpin"));
        command
            .args(args)
            .current_dir(self.path())
            .env("KINGPIN_HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("xdg"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for var in SETTINGS_VARS {
            command.env_remove(var);
        }
        command
    }

    fn start(&self, args: &[&str]) -> Child {
        self.kingpin(args).spawn().expect("kingpin starts")
    }

    async fn status(&self, args: &[&str]) -> ExitStatus {
        let mut child = self.start(args);
        exit(&mut child).await
    }

    /// A session on the database the kingpin processes use.
    async fn coordinator(&self) -> Arc<dyn Coordinator> {
        let url = format!("sqlite://{}/.kingpin/kingpin.db", self.path().display());
        kingpin::open_coordinator(&url).await.expect("the database")
    }
}

async fn exit(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(BOUND, child.wait())
        .await
        .expect("kingpin exits in time")
        .expect("kingpin can be waited for")
}

/// Waits until `path` has `n` children.
async fn until_children(c: &dyn Coordinator, path: &str, n: usize) -> Vec<String> {
    let path = NodePath::parse(path).unwrap();
    let mut watch = c.watch(&path, WatchKind::Children).await.unwrap();
    tokio::time::timeout(BOUND, async {
        loop {
            let children = c.children(&path).await.unwrap_or_default();
            if children.len() == n {
                return children;
            }
            watch.next().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} never had {n} children"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_runs_the_command_with_its_token_and_passes_its_status() {
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("out");
    let script = format!(
        "echo \"$KINGPIN_FENCING_TOKEN $KINGPIN_LOCK_PATH\" > {}",
        out.display()
    );
    let status = sandbox
        .status(&["lock", "report", "--", "sh", "-c", &script])
        .await;
    assert!(status.success(), "{status}");
    let written = std::fs::read_to_string(&out).unwrap();
    let (token, path) = written.trim().split_once(' ').expect("token and path");
    assert!(token.parse::<u64>().is_ok(), "{written}");
    assert_eq!(path, "/locks/report");

    let status = sandbox
        .status(&["lock", "report", "--", "sh", "-c", "exit 3"])
        .await;
    assert_eq!(status.code(), Some(3), "the command's status is kingpin's");
    let c = sandbox.coordinator().await;
    assert!(c
        .children(&NodePath::parse("/locks/report").unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_keeps_others_out_until_released() {
    let sandbox = Sandbox::new();
    let c = sandbox.coordinator().await;
    let mut holder = sandbox.start(&["lock", "batch", "--", "sleep", "60"]);
    until_children(&*c, "/locks/batch", 1).await;

    let status = sandbox
        .status(&["lock", "batch", "--timeout", "300ms", "--", "true"])
        .await;
    assert_eq!(status.code(), Some(4), "not taken within the timeout");

    // SIGTERM reaches the command, whose status kingpin passes on.
    let pid = Pid::from_raw(holder.id().unwrap() as i32);
    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(exit(&mut holder).await.code(), Some(128 + 15));
    until_children(&*c, "/locks/batch", 0).await;
    assert!(sandbox
        .status(&["lock", "batch", "--", "true"])
        .await
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_stops_the_command_when_leadership_is_lost() {
    let sandbox = Sandbox::new();
    let c = sandbox.coordinator().await;
    let pid_file = sandbox.path().join("leader.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let mut leader = sandbox.start(&[
        "elect",
        "scheduler",
        "--grace",
        "2s",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let candidates = until_children(&*c, "/elections/scheduler", 1).await;
    // A second candidate waits: its command does not run.
    let second_out = sandbox.path().join("second");
    let second_script = format!("touch {}", second_out.display());
    let mut second = sandbox.start(&["elect", "scheduler", "--", "sh", "-c", &second_script]);
    until_children(&*c, "/elections/scheduler", 2).await;
    assert!(!second_out.exists(), "a second leader ran");

    // An operator deletes the leader's node: leadership is lost.
    let node = NodePath::parse(&format!("/elections/scheduler/{}", candidates[0])).unwrap();
    c.delete(&node, None).await.unwrap();
    let status = exit(&mut leader).await;
    assert_eq!(status.code(), Some(5), "leadership lost is exit 5");
    let command_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        kill(Pid::from_raw(command_pid), None).is_err(),
        "the command was stopped"
    );
    // The second candidate leads now and runs its command.
    assert!(exit(&mut second).await.success());
    assert!(second_out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_missing_commands_are_refused() {
    let sandbox = Sandbox::new();
    let status = sandbox.status(&["lock", "a/b", "--", "true"]).await;
    assert_eq!(status.code(), Some(6), "an invalid name");
    let status = sandbox.status(&["elect", "ok"]).await;
    assert_eq!(status.code(), Some(2), "no command");
}

//! What the integration tests share: waiting for reloads through
//! callbacks (never by sleeping) and writing files the monitor's way.

use std::fmt::Debug;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use kingpin_client::ConfigFile;

/// How long a reload may take before a test fails: generous, for loaded
/// CI machines.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Every value `file` changes to from now on.
pub fn changes<T: Clone + Send + Sync + 'static>(file: &ConfigFile<T>) -> Receiver<T> {
    let (sender, receiver) = mpsc::channel();
    file.on_change(move |value: &T| {
        let _ = sender.send(value.clone());
    });
    receiver
}

/// Every failed reload of `file` from now on, as its message.
pub fn errors<T: Send + Sync + 'static>(file: &ConfigFile<T>) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    file.on_error(move |error| {
        let _ = sender.send(error.to_string());
    });
    receiver
}

/// The first value from `receiver` that is `wanted`; fails the test after
/// [`TIMEOUT`].
pub fn wait_for<T: Debug>(receiver: &Receiver<T>, what: &str, wanted: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(value) if wanted(&value) => return value,
            Ok(value) => seen.push(value),
            Err(_) => panic!("{what}: nothing wanted within {TIMEOUT:?}; saw {seen:?}"),
        }
    }
}

/// Replaces `path` as the monitor does: a temporary file in the same
/// directory, renamed over it.
pub fn replace(path: &Path, content: &str) {
    let dir = path.parent().expect("a file in a directory");
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().expect("a file name").to_string_lossy()
    ));
    std::fs::write(&temp, content).expect("write the temporary file");
    std::fs::rename(&temp, path).expect("rename it over the file");
}

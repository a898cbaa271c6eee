//! A reader that reads a file written by renames every few milliseconds
//! while a test runs, and counts what it found that is not a whole JSON
//! document: a torn file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// See the module docs. Reads on a blocking thread until
/// [`TornFileReader::finish`] or until dropped.
#[derive(Debug)]
pub struct TornFileReader {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<FileReads>,
}

/// What a [`TornFileReader`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileReads {
    /// Reads that found the file.
    pub reads: usize,
    /// Reads that found something other than a whole JSON document.
    pub torn: usize,
}

impl TornFileReader {
    /// Starts reading `file` (a missing file is not counted).
    pub fn start(file: PathBuf) -> TornFileReader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut seen = FileReads::default();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(bytes) = std::fs::read(&file) {
                    seen.reads += 1;
                    if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
                        seen.torn += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        });
        TornFileReader { stop, task }
    }

    /// Stops reading: what it saw.
    pub async fn finish(mut self) -> FileReads {
        self.stop.store(true, Ordering::Relaxed);
        match (&mut self.task).await {
            Ok(seen) => seen,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the file reader ended early: {e}"),
        }
    }
}

impl Drop for TornFileReader {
    fn drop(&mut self) {
        // A reader left behind (a test that failed early) would keep its
        // runtime from shutting down.
        self.stop.store(true, Ordering::Relaxed);
    }
}

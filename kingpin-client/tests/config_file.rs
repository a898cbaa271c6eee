//! `ConfigFile`: loading, reloading on change, keeping the last good
//! snapshot, against a real directory and the real file watcher.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kingpin_client::{ConfigFile, Error, Reload};
use support::{changes, errors, replace, wait_for};

fn numbers(content: &[u8]) -> Result<Vec<u64>, serde_json::Error> {
    serde_json::from_slice(content)
}

fn dir_with(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write the file");
    (dir, path)
}

#[test]
fn open_loads_the_file() {
    let (_dir, path) = dir_with("config.test.numbers", "[1, 2]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    assert_eq!(*file.snapshot(), [1, 2]);
    assert_eq!(file.path(), path);
    assert!(file.last_loaded().is_some());
    assert_eq!(file.last_error(), None);
    assert_eq!(file.failed_reloads(), 0);
}

#[test]
fn open_fails_on_a_missing_or_unparsable_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = ConfigFile::open(dir.path().join("missing"), numbers).unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let (_dir, path) = dir_with("broken", "[1,");
    let err = ConfigFile::open(&path, numbers).unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err}");
    assert!(err.to_string().contains("broken"), "names the file: {err}");
}

#[test]
fn an_atomic_replace_reloads_and_calls_back() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    let changes = changes(&file);
    replace(&path, "[2, 3]");
    let value = wait_for(&changes, "the replaced file", |v| *v == [2, 3]);
    assert_eq!(value, [2, 3]);
    assert_eq!(*file.snapshot(), [2, 3]);
    assert_eq!(file.last_error(), None);
}

#[test]
fn an_in_place_write_reloads() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    let changes = changes(&file);
    // Truncate-and-write may be seen half way (an empty file does not
    // parse here); the final content is what counts.
    std::fs::write(&path, "[7, 8, 9]").unwrap();
    wait_for(&changes, "the rewritten file", |v| *v == [7, 8, 9]);
    assert_eq!(*file.snapshot(), [7, 8, 9]);
}

#[test]
fn unparsable_content_keeps_the_last_good_snapshot_until_fixed() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    let (changes, errors) = (changes(&file), errors(&file));

    replace(&path, r#"{"not": "a list"}"#);
    let error = wait_for(&errors, "the parse error", |e| e.contains("cannot parse"));
    assert!(error.contains("config.test.numbers"), "{error}");
    assert_eq!(*file.snapshot(), [1], "the last good snapshot");
    assert_eq!(file.last_error().as_deref(), Some(error.as_str()));
    assert!(file.failed_reloads() >= 1);
    assert!(matches!(file.reload_now(), Err(Error::Parse { .. })));

    replace(&path, "[2]");
    wait_for(&changes, "the fixed file", |v| *v == [2]);
    assert_eq!(file.last_error(), None, "a good load clears the error");
}

#[test]
fn a_deleted_file_keeps_the_snapshot_and_comes_back() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    let (changes, errors) = (changes(&file), errors(&file));

    std::fs::remove_file(&path).unwrap();
    wait_for(&errors, "the deletion", |e| e.contains("cannot read"));
    assert_eq!(*file.snapshot(), [1]);
    assert!(file.reload_now().unwrap_err().is_not_found());

    replace(&path, "[3]");
    wait_for(&changes, "the file again", |v| *v == [3]);
}

#[test]
fn open_or_starts_with_the_default_and_loads_the_file_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.test.later");
    let file = ConfigFile::open_or(&path, vec![0], numbers).unwrap();
    assert_eq!(*file.snapshot(), [0]);
    assert_eq!(file.last_loaded(), None);
    assert!(file.last_error().unwrap().contains("cannot read"));

    let changes = changes(&file);
    replace(&path, "[5]");
    wait_for(&changes, "the new file", |v| *v == [5]);
    assert!(file.last_loaded().is_some());
    assert_eq!(file.last_error(), None);
}

#[test]
fn open_or_needs_a_directory_to_watch() {
    let dir = tempfile::tempdir().unwrap();
    let err =
        ConfigFile::open_or(dir.path().join("no-such-dir/file"), vec![], numbers).unwrap_err();
    assert!(matches!(err, Error::Watch { .. }), "{err}");
}

#[test]
fn the_same_content_is_not_a_change() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    let before = file.snapshot();
    assert_eq!(file.reload_now().unwrap(), Reload::Unchanged);
    assert!(Arc::ptr_eq(&before, &file.snapshot()));
    std::fs::write(&path, "[1, 2]").unwrap();
    // The watcher may have got there first.
    let _ = file.reload_now().unwrap();
    assert_eq!(*file.snapshot(), [1, 2]);
}

#[test]
fn an_update_check_refuses_and_keeps_the_snapshot() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::builder(&path, numbers)
        .check_update(|_, next| match next.is_empty() {
            true => Err("empty".to_owned()),
            false => Ok(()),
        })
        .open()
        .unwrap();
    let (changes, errors) = (changes(&file), errors(&file));
    replace(&path, "[]");
    wait_for(&errors, "the refusal", |e| e.contains("refused"));
    assert_eq!(*file.snapshot(), [1]);
    replace(&path, "[4]");
    wait_for(&changes, "an accepted update", |v| *v == [4]);
}

#[test]
fn a_panicking_callback_does_not_stop_the_others() {
    let (_dir, path) = dir_with("config.test.numbers", "[1]");
    let file = ConfigFile::open(&path, numbers).unwrap();
    file.on_change(|_| panic!("a broken callback"));
    let changes = changes(&file);
    replace(&path, "[2]");
    wait_for(&changes, "the change", |v| *v == [2]);
    replace(&path, "[3]");
    wait_for(&changes, "the next change", |v| *v == [3]);
}

/// Readers on several threads never see a torn value while the file is
/// replaced over and over: each version is an array of identical numbers.
#[test]
fn readers_never_see_a_torn_value() {
    const ITEMS: usize = 1000;
    const VERSIONS: u64 = 200;
    let content = |version: u64| serde_json::to_string(&vec![version; ITEMS]).unwrap();
    let (_dir, path) = dir_with("config.test.numbers", &content(0));
    let file = Arc::new(ConfigFile::open(&path, numbers).unwrap());
    let changes = changes(&file);
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (file, done) = (Arc::clone(&file), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last = 0;
                while !done.load(Ordering::Relaxed) {
                    let snapshot = file.snapshot();
                    assert_eq!(snapshot.len(), ITEMS);
                    let version = snapshot[0];
                    assert!(snapshot.iter().all(|&n| n == version), "torn: {version}");
                    assert!(version >= last, "went back from {last} to {version}");
                    last = version;
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    for version in 1..=VERSIONS {
        replace(&path, &content(version));
    }
    wait_for(&changes, "the last version", |v| v[0] == VERSIONS);
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("a reader thread") > 0);
    }
    assert_eq!(file.failed_reloads(), 0, "{:?}", file.last_error());
}

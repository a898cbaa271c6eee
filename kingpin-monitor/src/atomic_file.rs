//! Replacing a file so that a reader never sees it torn: a temp file in the
//! same directory, fsync, rename over the target, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Checks that `file_name` is a plain name inside a directory: not empty,
/// no `/` or NUL, not `.` or `..`, not a temp-file name of ours nor the
/// version stamps' directory. Remote data names files, so this runs before
/// any I/O.
pub fn check_file_name(file_name: &str) -> io::Result<()> {
    let bad = file_name.is_empty()
        || file_name == "."
        || file_name == ".."
        || file_name == kingpin_client::STAMP_DIR
        || file_name.starts_with(TEMP_PREFIX)
        || file_name.contains(['/', '\\', '\0']);
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{file_name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

/// Temp files start with this, so a crash's leftovers are recognisable.
const TEMP_PREFIX: &str = ".kingpin-tmp-";

/// Writes `content` to `dir/file_name` atomically and durably. On error the
/// old file (if any) is untouched and the temp file is removed.
pub fn write_atomically(dir: &Path, file_name: &str, content: &[u8]) -> io::Result<PathBuf> {
    replace(dir, file_name, content, Durability::Synced)
}

/// Writes `content` to `dir/file_name` atomically but without waiting for
/// the disk (a few milliseconds less): for what a crash may lose, such as
/// a version stamp, which readers check against the content it names.
pub fn write_atomically_unsynced(
    dir: &Path,
    file_name: &str,
    content: &[u8],
) -> io::Result<PathBuf> {
    replace(dir, file_name, content, Durability::Unsynced)
}

#[derive(PartialEq)]
enum Durability {
    /// fsync the file before the rename and the directory after it.
    Synced,
    Unsynced,
}

fn replace(
    dir: &Path,
    file_name: &str,
    content: &[u8],
    durability: Durability,
) -> io::Result<PathBuf> {
    check_file_name(file_name)?;
    let target = dir.join(file_name);
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{file_name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(content)?;
        if durability == Durability::Synced {
            file.sync_all()?;
        }
        fs::rename(&temp, &target)?;
        if durability == Durability::Synced {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map(|()| target)
}

/// Removes temp files a killed writer left in `dir`.
pub fn remove_leftover_temp_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "config.a", b"one").unwrap();
        write_atomically(dir.path(), "config.a", b"two").unwrap();
        assert_eq!(fs::read(dir.path().join("config.a")).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\0b",
            ".kingpin-tmp-x",
            ".versions",
        ] {
            assert!(write_atomically(dir.path(), bad, b"x").is_err(), "{bad:?}");
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_a_killed_writer_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".kingpin-tmp-config.a-1-2"), b"half").unwrap();
        fs::write(dir.path().join("config.a"), b"whole").unwrap();
        assert_eq!(remove_leftover_temp_files(dir.path()).unwrap(), 1);
        assert_eq!(fs::read(dir.path().join("config.a")).unwrap(), b"whole");
    }
}

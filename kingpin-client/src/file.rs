//! [`ConfigFile`]: one local file, parsed into a snapshot that readers get
//! without locks and that is replaced whenever the file changes.

use std::ffi::OsString;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::{BoxError, Error, Result};
use crate::version_stamp::{content_sha256, VersionStamp};

type Parser<T> = Box<dyn Fn(&[u8]) -> Result<T, BoxError> + Send + Sync>;
type UpdateCheck<T> = Box<dyn Fn(&T, &T) -> Result<(), String> + Send + Sync>;
type Callback<T> = Arc<dyn Fn(&T) + Send + Sync>;
type ErrorCallback = Arc<dyn Fn(&Error) + Send + Sync>;

/// The sha256 of a file's content, lowercase hex: how a reload tells that
/// nothing changed (one write makes several file system events), and which
/// version stamp belongs to the snapshot.
type ContentDigest = String;

/// A local file parsed into a `T`, re-read whenever it changes.
///
/// - **Lock-free reads**: [`snapshot`](Self::snapshot) hands out the current
///   `Arc<T>` without taking a lock, so any number of threads can read on
///   every request.
/// - **Reload on change**: the file's directory is watched (inotify on
///   Linux). The monitor replaces files atomically by renaming a temporary
///   file over them, so the directory, not the file, is what is watched;
///   creations, renames and in-place writes of the file all trigger a
///   reload. Content that did not change leaves the snapshot alone.
/// - **Last good snapshot on errors**: a file that goes missing, cannot be
///   read, does not parse or is refused by an update check keeps the
///   previous snapshot; the failure is logged (`tracing::warn!`) and shown by
///   [`last_error`](Self::last_error) until a reload succeeds.
///
/// Dropping the handle stops watching.
///
/// ```
/// use kingpin_client::ConfigFile;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("config.app.limits");
/// std::fs::write(&path, "[1, 2, 3]")?;
/// let limits = ConfigFile::open(&path, |content: &[u8]| serde_json::from_slice::<Vec<u32>>(content))?;
/// assert_eq!(*limits.snapshot(), [1, 2, 3]);
///
/// // Replaced the way the monitor does it: a temporary file renamed over it.
/// std::fs::write(dir.path().join(".tmp"), "[4]")?;
/// std::fs::rename(dir.path().join(".tmp"), &path)?;
/// limits.reload_now()?; // not needed in an application: the watch does it
/// assert_eq!(*limits.snapshot(), [4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ConfigFile<T> {
    shared: Arc<Shared<T>>,
    // Watching lasts as long as the handle: dropping the watcher stops its
    // thread, whose event handler only holds a weak reference.
    _watcher: RecommendedWatcher,
}

/// How loading a [`ConfigFile`] has gone so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadStatus {
    /// When the file was last read, parsed and accepted (whether or not its
    /// content had changed); `None` until it has been once.
    pub last_loaded: Option<SystemTime>,
    /// Why the latest reload failed; `None` once a reload succeeds.
    pub last_error: Option<String>,
    /// How many reloads failed (missing, unreadable, unparsable or refused
    /// content) since the file was opened.
    pub failed_reloads: u64,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The snapshot was replaced and the change callbacks ran.
    Changed,
    /// The content was the same as the current snapshot's; nothing changed.
    Unchanged,
}

/// Options for opening a [`ConfigFile`]: a default value and an update
/// check. [`ConfigFile::open`] and [`ConfigFile::open_or`] cover the common
/// cases.
///
/// ```
/// use kingpin_client::ConfigFile;
/// # let dir = tempfile::tempdir()?;
/// let hosts = ConfigFile::builder(dir.path().join("hosts"), |content: &[u8]| {
///     Ok::<_, std::str::Utf8Error>(std::str::from_utf8(content)?.lines().map(str::to_owned).collect::<Vec<_>>())
/// })
/// .default_value(Vec::new())
/// .check_update(|current, next| match (current.is_empty(), next.is_empty()) {
///     (false, true) => Err("an emptied host list is almost always a mistake".to_owned()),
///     _ => Ok(()),
/// })
/// .open()?;
/// assert!(hosts.snapshot().is_empty(), "no file yet: the default");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ConfigFileBuilder<T> {
    path: PathBuf,
    parse: Parser<T>,
    default: Option<T>,
    check_update: Option<UpdateCheck<T>>,
}

impl<T: Send + Sync + 'static> ConfigFileBuilder<T> {
    /// Opens the file even when it is missing or does not parse, with
    /// `value` as the snapshot until a load succeeds.
    pub fn default_value(mut self, value: T) -> Self {
        self.default = Some(value);
        self
    }

    /// Checks each reloaded value against the current snapshot before it
    /// replaces it: `check(current, next)` returning `Err(reason)` keeps the
    /// current snapshot and reports the reason as the reload's error. The
    /// first load of a file opened without a default is not checked: there
    /// is nothing to compare it with.
    pub fn check_update(
        mut self,
        check: impl Fn(&T, &T) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.check_update = Some(Box::new(check));
        self
    }

    /// Loads the file and starts watching it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] when the path has no file name,
    /// [`Error::Watch`] when its directory cannot be watched (it must
    /// exist), and, without a [default value](Self::default_value),
    /// [`Error::Io`] or [`Error::Parse`] when the file cannot be loaded.
    pub fn open(self) -> Result<ConfigFile<T>> {
        let path = self.path;
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::InvalidName {
                name: path.display().to_string(),
                reason: "the path does not end in a file name",
            })?
            .to_owned();
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let (initial, digest, status) = match self.default {
            Some(value) => (value, None, LoadStatus::default()),
            None => {
                let (value, digest) = read_and_parse(&path, &self.parse)?;
                let status = LoadStatus {
                    last_loaded: Some(SystemTime::now()),
                    ..LoadStatus::default()
                };
                (value, Some(digest), status)
            }
        };
        let shared = Arc::new(Shared {
            path,
            file_name,
            parse: self.parse,
            check_update: self.check_update,
            current: ArcSwap::from_pointee(initial),
            loaded: Mutex::new(digest),
            status: Mutex::new(status),
            callbacks: Mutex::new(Vec::new()),
            error_callbacks: Mutex::new(Vec::new()),
        });
        let watcher = watch(&dir, Arc::downgrade(&shared))?;
        // The file may have changed between the first read and the start of
        // the watch; with a default value this is the first load. Failures
        // are recorded in the status.
        let _ = shared.reload();
        Ok(ConfigFile {
            shared,
            _watcher: watcher,
        })
    }
}

impl<T: Send + Sync + 'static> ConfigFile<T> {
    /// Opens the file at `path`, parsed by `parse`, and watches it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read (a missing file
    /// included), [`Error::Parse`] when `parse` fails, [`Error::Watch`] when
    /// its directory cannot be watched.
    pub fn open<P, E>(path: impl Into<PathBuf>, parse: P) -> Result<Self>
    where
        P: Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        Self::builder(path, parse).open()
    }

    /// Opens the file at `path` like [`open`](Self::open), but with
    /// `default` as the snapshot while the file is missing or does not
    /// parse; it is loaded as soon as it appears. Only a directory that
    /// cannot be watched is an error.
    pub fn open_or<P, E>(path: impl Into<PathBuf>, default: T, parse: P) -> Result<Self>
    where
        P: Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        Self::builder(path, parse).default_value(default).open()
    }

    /// Options for opening the file at `path`, parsed by `parse`.
    pub fn builder<P, E>(path: impl Into<PathBuf>, parse: P) -> ConfigFileBuilder<T>
    where
        P: Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        ConfigFileBuilder {
            path: path.into(),
            parse: Box::new(move |content| parse(content).map_err(Into::into)),
            default: None,
            check_update: None,
        }
    }

    /// The current value, without locking. Hold on to the `Arc` to read
    /// several things from one consistent snapshot.
    pub fn snapshot(&self) -> Arc<T> {
        self.shared.current.load_full()
    }

    /// The current value and the config version it is, when known: the
    /// monitor stamps each file with its version (see
    /// [`VersionStamp`](crate::VersionStamp)), and the stamp is believed
    /// only for the content it names. `None` for a default value, a file
    /// without a stamp (written by hand, or by an older monitor), or one
    /// whose stamp is for other content. Reads the small stamp file; take
    /// [`snapshot`](Self::snapshot) where the version is not needed.
    pub fn versioned_snapshot(&self) -> (Arc<T>, Option<u64>) {
        // The reload lock: the snapshot and its digest change together.
        let (value, digest) = {
            let loaded = lock(&self.shared.loaded);
            (self.shared.current.load_full(), loaded.clone())
        };
        let version = digest.and_then(|digest| {
            let dir = self.shared.path.parent()?;
            let file_name = self.shared.file_name.to_str()?;
            VersionStamp::read(dir, file_name)?.version_of(&digest)
        });
        (value, version)
    }

    /// Calls `callback` with the new value after each reload that changes
    /// the snapshot, on the thread that reloaded (the watcher's, or the
    /// caller of [`reload_now`](Self::reload_now)), in the order of the
    /// changes. A callback must not call `reload_now` on the same file
    /// (it would wait for itself); a panicking callback is logged and the
    /// others still run.
    pub fn on_change(&self, callback: impl Fn(&T) + Send + Sync + 'static) {
        lock(&self.shared.callbacks).push(Arc::new(callback));
    }

    /// Calls `callback` with the error of each failed reload (the snapshot
    /// stays as it was), on the thread that reloaded; for alerts and
    /// metrics. The same rules as for [`on_change`](Self::on_change) apply.
    pub fn on_error(&self, callback: impl Fn(&Error) + Send + Sync + 'static) {
        lock(&self.shared.error_callbacks).push(Arc::new(callback));
    }

    /// Re-reads the file now, as a change notification would.
    ///
    /// # Errors
    ///
    /// Why the reload failed ([`Error::Io`], [`Error::Parse`],
    /// [`Error::Refused`]); the snapshot is then unchanged.
    pub fn reload_now(&self) -> Result<Reload> {
        self.shared.reload()
    }
}

impl<T> ConfigFile<T> {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How loading has gone: when it last succeeded, the latest error, and
    /// how many reloads failed.
    pub fn status(&self) -> LoadStatus {
        lock(&self.shared.status).clone()
    }

    /// Why the latest reload failed, while the snapshot is older than the
    /// file; `None` once a reload succeeds.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.status).last_error.clone()
    }

    /// When the file was last loaded successfully; `None` while the
    /// snapshot is still the default value.
    pub fn last_loaded(&self) -> Option<SystemTime> {
        lock(&self.shared.status).last_loaded
    }

    /// How many reloads failed since the file was opened.
    pub fn failed_reloads(&self) -> u64 {
        lock(&self.shared.status).failed_reloads
    }
}

impl<T> fmt::Debug for ConfigFile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.shared.path)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// What the handle and the watcher's event handler share.
struct Shared<T> {
    path: PathBuf,
    file_name: OsString,
    parse: Parser<T>,
    check_update: Option<UpdateCheck<T>>,
    current: ArcSwap<T>,
    // The digest of the content behind `current` (`None` while it is a
    // default value). Its lock also serializes reloads, so snapshots and
    // callbacks follow the order of the changes.
    loaded: Mutex<Option<ContentDigest>>,
    status: Mutex<LoadStatus>,
    callbacks: Mutex<Vec<Callback<T>>>,
    error_callbacks: Mutex<Vec<ErrorCallback>>,
}

impl<T> Shared<T> {
    fn reload(&self) -> Result<Reload> {
        let mut loaded = lock(&self.loaded);
        let next = match self.load(loaded.as_deref()) {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(
                    path = %self.path.display(),
                    %error,
                    "reload failed; keeping the last good snapshot"
                );
                {
                    let mut status = lock(&self.status);
                    status.last_error = Some(error.to_string());
                    status.failed_reloads += 1;
                }
                let callbacks = lock(&self.error_callbacks).clone();
                for callback in callbacks {
                    run_callback(&self.path, || callback(&error));
                }
                return Err(error);
            }
        };
        {
            let mut status = lock(&self.status);
            status.last_loaded = Some(SystemTime::now());
            status.last_error = None;
        }
        let Some((value, digest)) = next else {
            return Ok(Reload::Unchanged);
        };
        let value = Arc::new(value);
        self.current.store(Arc::clone(&value));
        *loaded = Some(digest);
        tracing::info!(path = %self.path.display(), "reloaded");
        let callbacks = lock(&self.callbacks).clone();
        for callback in callbacks {
            run_callback(&self.path, || callback(&value));
        }
        Ok(Reload::Changed)
    }

    /// The file's new value, `None` when its content is `loaded`.
    fn load(&self, loaded: Option<&str>) -> Result<Option<(T, ContentDigest)>> {
        let content = std::fs::read(&self.path).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        let digest = content_sha256(&content);
        if loaded == Some(digest.as_str()) {
            return Ok(None);
        }
        let next = (self.parse)(&content).map_err(|source| Error::Parse {
            path: self.path.clone(),
            source,
        })?;
        if let Some(check) = &self.check_update {
            check(&self.current.load(), &next).map_err(|reason| Error::Refused {
                path: self.path.clone(),
                reason,
            })?;
        }
        Ok(Some((next, digest)))
    }

    /// Whether `event` may mean the file changed.
    fn concerns(&self, event: &Event) -> bool {
        if event.need_rescan() {
            return true;
        }
        let may_change_content = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            // Opening and reading, our own reloads included, change nothing.
            EventKind::Access(_) => false,
            _ => true,
        };
        may_change_content
            && event
                .paths
                .iter()
                .any(|path| path.file_name() == Some(self.file_name.as_os_str()))
    }
}

fn read_and_parse<T>(path: &Path, parse: &Parser<T>) -> Result<(T, ContentDigest)> {
    let content = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let value = parse(&content).map_err(|source| Error::Parse {
        path: path.to_owned(),
        source,
    })?;
    Ok((value, content_sha256(&content)))
}

/// Watches `dir` (not recursively) and reloads `shared` on every event that
/// concerns its file.
fn watch<T: Send + Sync + 'static>(
    dir: &Path,
    shared: Weak<Shared<T>>,
) -> Result<RecommendedWatcher> {
    let watch_error = |source| Error::Watch {
        path: dir.to_owned(),
        source,
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match event {
            Ok(event) if !shared.concerns(&event) => {}
            Ok(_) => {
                // Failures are logged and recorded by `reload`.
                let _ = shared.reload();
            }
            Err(error) => {
                tracing::warn!(path = %shared.path.display(), %error, "file watch error; reloading");
                let _ = shared.reload();
            }
        }
    })
    .map_err(watch_error)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(watch_error)?;
    Ok(watcher)
}

/// Runs a callback of the file at `path`; a panic is logged, so the other
/// callbacks and the watcher's thread carry on.
fn run_callback(path: &Path, callback: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(callback)).is_err() {
        tracing::warn!(path = %path.display(), "a callback panicked");
    }
}

/// Locks `mutex`, also after a panic elsewhere: every value behind these
/// locks stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

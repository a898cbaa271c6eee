//! Keeping one config or serverset file in sync: watch its node, fetch the
//! newest version when it changes (bursts coalesce into one fetch), verify,
//! replace the file atomically, run the host's hooks, and re-check
//! periodically. Errors keep the last good file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::discovery::{acceptance_path, alive_endpoints, MemberCache, ServerSet};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigKind};
use kingpin_api::{Backoff, ConfigStore, Coordinator, WatchEvent, WatchKind, WatchStream};
use kingpin_client::{content_sha256, parse_serverset, VersionStamp, STAMP_DIR};
use rand::Rng;

use crate::atomic_file::{write_atomically, write_atomically_unsynced};
use crate::hooks::run_hooks;
use crate::metrics::Metrics;
use crate::serverset::{accept_anyway, refusal, serverset_file};
use crate::settings::MonitorSettings;
use crate::state::{now_ms, MonitorState};

/// What every entry's sync loop shares.
#[derive(Debug)]
pub(crate) struct SyncContext {
    pub coordinator: Arc<dyn Coordinator>,
    pub store: ConfigStore,
    pub settings: Arc<MonitorSettings>,
    /// This host's identity, for environment associations.
    pub host: kingpin_api::environment::HostId,
    pub state: Arc<MonitorState>,
    pub metrics: Arc<Metrics>,
}

/// A failed sync: the stage (for metrics) and what happened.
pub(crate) struct SyncError {
    pub stage: &'static str,
    pub message: String,
}

impl SyncError {
    pub fn fetch(e: impl std::fmt::Display) -> Self {
        SyncError {
            stage: "fetch",
            message: e.to_string(),
        }
    }
}

/// One entry's sync loop. Runs until its task is aborted.
pub(crate) async fn sync_entry(metaconfig: MetaConfig, ctx: Arc<SyncContext>) {
    let dir = match metaconfig.kind {
        MetaConfigKind::Config => ctx.settings.config_dir.clone(),
        MetaConfigKind::Serverset => ctx.settings.serverset_dir.clone(),
        MetaConfigKind::Environment => {
            return crate::environment::sync_environment(metaconfig, ctx).await
        }
    };
    let file = dir.join(&metaconfig.file_name);
    ctx.state.update(&metaconfig.name, |e| {
        e.kind = Some(metaconfig.kind);
        e.file = file.display().to_string();
    });
    // What is on disk from before (a restart keeps last good files), so an
    // unchanged version is not rewritten and its hooks do not run again.
    let mut on_disk = read_on_disk(file.clone(), metaconfig.kind).await;
    let mut members = match metaconfig.kind {
        MetaConfigKind::Config | MetaConfigKind::Environment => None,
        MetaConfigKind::Serverset => {
            match ServerSet::from_name(ctx.coordinator.clone(), &metaconfig.name) {
                Ok(serverset) => Some(MemberCache::new(serverset)),
                Err(e) => {
                    // Metaconfigs are validated when read; this cannot be.
                    tracing::error!(name = %metaconfig.name, error = %e, "not a serverset");
                    return;
                }
            }
        }
    };
    // Read everything again (not only what changed): at start, after a
    // resync and on every reconcile.
    let mut full = true;
    let watch_kind = match metaconfig.kind {
        MetaConfigKind::Config | MetaConfigKind::Environment => WatchKind::Data,
        MetaConfigKind::Serverset => WatchKind::Children,
    };
    let mut watch: Option<WatchStream> = None;
    // While a serverset update is refused: the operator's acceptance, so
    // one written now is honoured at once.
    let mut acceptance: Option<WatchStream> = None;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        // Armed before the read, so a change after the read is not missed.
        if watch.is_none() {
            match ctx
                .coordinator
                .watch(&metaconfig.node_path, watch_kind)
                .await
            {
                Ok(stream) => watch = Some(stream),
                Err(e) => {
                    ctx.metrics.error("watch");
                    tracing::warn!(name = %metaconfig.name, error = %e, "cannot watch");
                }
            }
        }
        let retry = match sync_once(&metaconfig, &ctx, &dir, &mut on_disk, &mut members, full).await
        {
            Ok(synced) => {
                backoff.reset();
                ctx.state.update(&metaconfig.name, |e| e.error = None);
                let newly_watched =
                    follow_acceptance(&metaconfig, &ctx, &mut acceptance, synced.refused).await;
                let retry = (watch.is_none()).then(|| backoff.next_delay());
                match (retry, synced.recheck_in) {
                    // The acceptance was read before its watch was armed:
                    // read it again, so one written in between is seen.
                    _ if newly_watched => Some(Duration::ZERO),
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Err(e) => {
                ctx.metrics.error(e.stage);
                tracing::warn!(name = %metaconfig.name, stage = e.stage, error = %e.message, "sync failed; keeping the last good file");
                ctx.state
                    .update(&metaconfig.name, |entry| entry.error = Some(e.message));
                Some(backoff.next_delay())
            }
        };
        let reconcile = ctx.settings.reconcile_interval
            + jitter(ctx.settings.reconcile_jitter.as_millis() as u64);
        let wait = retry.map_or(reconcile, |r| r.min(reconcile));
        full = tokio::select! {
            event = next_event(&mut watch) => {
                let mut resync = match event {
                    Some(WatchEvent::Resync) => {
                        ctx.metrics.watch_resyncs.inc();
                        true
                    }
                    Some(_) => false,
                    None => {
                        watch = None;
                        true
                    }
                };
                resync |= drain(&mut watch, &ctx.metrics);
                if metaconfig.max_random_delay_ms > 0 {
                    tokio::time::sleep(jitter(metaconfig.max_random_delay_ms)).await;
                    resync |= drain(&mut watch, &ctx.metrics);
                }
                resync
            }
            event = next_event(&mut acceptance) => {
                if event.is_none() {
                    acceptance = None;
                }
                false
            }
            _ = tokio::time::sleep(wait) => true,
        };
    }
}

/// Watches the serverset's acceptance node while its update is refused,
/// and stops when it is not. Whether the watch was armed just now.
async fn follow_acceptance(
    metaconfig: &MetaConfig,
    ctx: &SyncContext,
    acceptance: &mut Option<WatchStream>,
    refused: bool,
) -> bool {
    if !refused {
        *acceptance = None;
        return false;
    }
    if acceptance.is_some() {
        return false;
    }
    let watched = match acceptance_path(&metaconfig.name) {
        Ok(path) => ctx.coordinator.watch(&path, WatchKind::Data).await,
        Err(e) => Err(e),
    };
    match watched {
        Ok(stream) => {
            *acceptance = Some(stream);
            true
        }
        Err(e) => {
            ctx.metrics.error("watch");
            tracing::warn!(name = %metaconfig.name, error = %e, "cannot watch the serverset's acceptance; checking it at each reconcile");
            false
        }
    }
}

pub(crate) fn jitter(max_ms: u64) -> Duration {
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=max_ms))
}

pub(crate) async fn next_event(watch: &mut Option<WatchStream>) -> Option<WatchEvent> {
    match watch {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Takes every event already waiting: a burst becomes one fetch. Returns
/// whether one of them asks for a full re-read.
pub(crate) fn drain(watch: &mut Option<WatchStream>, metrics: &Metrics) -> bool {
    let mut resync = false;
    while let Some(stream) = watch {
        match futures::FutureExt::now_or_never(stream.next()) {
            Some(Some(WatchEvent::Resync)) => {
                metrics.watch_resyncs.inc();
                resync = true;
            }
            Some(Some(_)) => {}
            Some(None) => {
                *watch = None;
                resync = true;
            }
            None => break,
        }
    }
    resync
}

/// The file on disk: its sha256 and, read as a serverset, how many members
/// it lists.
#[derive(Debug, Default)]
pub(crate) struct OnDisk {
    pub sha256: Option<String>,
    members: Option<usize>,
    /// The sha256 of the serverset content last refused, if the newest
    /// update was refused.
    refused: Option<String>,
    /// Since when that content has been refused (ms since the epoch).
    refused_since_ms: Option<u64>,
    /// The version the file's stamp names, if it names the file's content.
    stamped: Option<u64>,
}

/// What a sync left to do.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    /// The newest serverset update is refused.
    refused: bool,
    /// Sync again within this, even if nothing changes (a refusal's hold
    /// time running out).
    recheck_in: Option<Duration>,
}

pub(crate) async fn read_on_disk(file: PathBuf, kind: MetaConfigKind) -> OnDisk {
    tokio::task::spawn_blocking(move || match std::fs::read(&file) {
        Ok(data) => OnDisk {
            stamped: stamped_version(&file, &data),
            sha256: Some(content_sha256(&data)),
            // A serverset file that does not parse is no baseline: the
            // next update replaces it whatever it holds.
            members: match kind {
                MetaConfigKind::Config | MetaConfigKind::Environment => None,
                MetaConfigKind::Serverset => parse_serverset(&data).ok().map(|e| e.len()),
            },
            refused: None,
            refused_since_ms: None,
        },
        Err(_) => OnDisk::default(),
    })
    .await
    .unwrap_or_default()
}

/// The version the stamp beside `file` names for `content`, if any.
fn stamped_version(file: &std::path::Path, content: &[u8]) -> Option<u64> {
    let file_name = file.file_name()?.to_str()?;
    VersionStamp::read(file.parent()?, file_name)?.version_of(&content_sha256(content))
}

/// Replaces the version stamp of `dir/file_name` (see
/// [`kingpin_client::VersionStamp`]): before the file itself, so a reader
/// that reloads on the file's change finds the stamp of that content.
/// A stamp only adds the version to what readers know, so failing to
/// write one is logged and counted, and does not hold the file back: a
/// stale stamp names other content and is not believed.
async fn put_stamp(
    ctx: &SyncContext,
    dir: &std::path::Path,
    file_name: &str,
    stamp: VersionStamp,
) -> bool {
    let (stamps, owned_name) = (dir.join(STAMP_DIR), file_name.to_owned());
    let written = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&stamps)?;
        // A stamp lost in a crash is rewritten by the next sync, and one
        // that names other content is not believed: no fsync wait.
        write_atomically_unsynced(&stamps, &owned_name, &stamp.to_json())
    })
    .await
    .unwrap_or_else(|panicked| Err(std::io::Error::other(panicked)));
    if let Err(error) = written {
        tracing::warn!(file = file_name, %error, "cannot write the version stamp");
        ctx.metrics.error("stamp");
        return false;
    }
    true
}

async fn sync_once(
    metaconfig: &MetaConfig,
    ctx: &SyncContext,
    dir: &std::path::Path,
    on_disk: &mut OnDisk,
    members: &mut Option<MemberCache>,
    full: bool,
) -> Result<Synced, SyncError> {
    let name = &metaconfig.name;
    let fetched = match members {
        None => fetch_config(metaconfig, ctx, on_disk.sha256.as_deref()).await?,
        Some(cache) => Some(fetch_serverset(cache, full).await?),
    };
    let fetched_at = now_ms();
    let Some(fetched) = fetched else {
        // Nothing written yet, or already on disk.
        ctx.state
            .update(name, |e| e.last_fetch_ms = Some(fetched_at));
        return Ok(Synced::default());
    };
    if let Some(next) = fetched.members {
        let mut refused = refusal(on_disk.members, next, ctx.settings.serverset_max_shrink);
        // A refused membership seen again (another event, a reconcile) is
        // the same refusal, counted once.
        let seen_before = on_disk.refused.as_deref() == Some(fetched.sha256.as_str());
        let mut recheck_in = None;
        if refused.is_some() {
            let since = match on_disk.refused_since_ms {
                Some(since) if seen_before => since,
                _ => fetched_at,
            };
            on_disk.refused_since_ms = Some(since);
            let decision = accept_anyway(ctx, name, since, fetched_at).await;
            recheck_in = decision.recheck_in;
            if let Some(accepted) = decision.accepted {
                tracing::warn!(%name, reason = ?refused, accepted = %accepted.why, "writing a serverset update the guard would refuse");
                ctx.metrics.serverset_accepted(name.as_str(), accepted.by);
                ctx.state.update(name, |e| e.accepted = Some(accepted.why));
                refused = None;
            }
        }
        let new_refusal = refused.is_some() && !seen_before;
        ctx.metrics
            .serverset_refused(name.as_str(), refused.is_some(), new_refusal);
        if let Some(reason) = refused {
            if new_refusal {
                tracing::warn!(%name, reason = %reason, "serverset update refused; keeping the file");
            }
            on_disk.refused = Some(fetched.sha256);
            ctx.state.update(name, |e| {
                e.last_fetch_ms = Some(fetched_at);
                e.refusals += u64::from(new_refusal);
                e.refused = Some(reason);
            });
            return Ok(Synced {
                refused: true,
                recheck_in,
            });
        }
        on_disk.refused = None;
        on_disk.refused_since_ms = None;
    }
    put_on_disk(
        name,
        &metaconfig.file_name,
        ctx,
        dir,
        on_disk,
        fetched,
        fetched_at,
    )
    .await?;
    Ok(Synced::default())
}

/// Replaces the file when `fetched` differs from what is on disk, records
/// the state, and runs the host's hooks after a write.
pub(crate) async fn put_on_disk(
    name: &kingpin_api::ConfigName,
    file_name: &str,
    ctx: &SyncContext,
    dir: &std::path::Path,
    on_disk: &mut OnDisk,
    fetched: Fetched,
    fetched_at: u64,
) -> Result<(), SyncError> {
    let mut written = None;
    let content_changed = on_disk.sha256.as_deref() != Some(fetched.sha256.as_str());
    if let Some(version) = fetched.version {
        if content_changed || on_disk.stamped != Some(version) {
            let stamp = VersionStamp {
                version,
                sha256: fetched.sha256.clone(),
            };
            on_disk.stamped = put_stamp(ctx, dir, file_name, stamp)
                .await
                .then_some(version);
        }
    }
    if content_changed {
        let (dir, owned_name, content) = (
            dir.to_path_buf(),
            file_name.to_owned(),
            fetched.content.clone(),
        );
        let path =
            tokio::task::spawn_blocking(move || write_atomically(&dir, &owned_name, &content))
                .await
                .map_err(|e| SyncError {
                    stage: "write",
                    message: e.to_string(),
                })?
                .map_err(|e| SyncError {
                    stage: "write",
                    message: format!("cannot write {}: {e}", file_name),
                })?;
        let written_at = now_ms();
        on_disk.sha256 = Some(fetched.sha256.clone());
        on_disk.members = fetched.members;
        ctx.metrics.files_written.inc();
        if let Some(changed) = fetched.changed_ms {
            ctx.metrics
                .observe_lag(Duration::from_millis(written_at.saturating_sub(changed)));
        }
        written = Some((path, written_at));
    }
    ctx.state.update(name, |e| {
        e.version = fetched.version;
        e.sha256 = Some(fetched.sha256);
        e.last_change_ms = fetched.changed_ms;
        e.last_fetch_ms = Some(fetched_at);
        e.members = fetched.members;
        e.refused = None;
        if let Some((_, written_at)) = written {
            e.last_write_ms = Some(written_at);
        }
    });
    if let Some((path, _)) = written {
        let failures = run_hooks(&ctx.settings.hooks, name, &path, fetched.version).await;
        if !failures.is_empty() {
            ctx.metrics.error("hook");
            return Err(SyncError {
                stage: "hook",
                message: failures.join("; "),
            });
        }
    }
    Ok(())
}

/// A version to put on disk.
pub(crate) struct Fetched {
    pub content: bytes::Bytes,
    pub sha256: String,
    pub version: Option<u64>,
    pub changed_ms: Option<u64>,
    pub members: Option<usize>,
}

/// The newest version of a config, verified; `None` when the config does
/// not exist yet. When the file on disk already has the record's sha256,
/// the blob is not fetched.
async fn fetch_config(
    metaconfig: &MetaConfig,
    ctx: &SyncContext,
    on_disk: Option<&str>,
) -> Result<Option<Fetched>, SyncError> {
    let name = &metaconfig.name;
    let Some((record, _)) = ctx
        .store
        .record_as_watched(name)
        .await
        .map_err(SyncError::fetch)?
    else {
        return Ok(None);
    };
    let content = if on_disk == Some(record.sha256.as_str()) {
        bytes::Bytes::new()
    } else {
        ctx.store
            .content(name, &record)
            .await
            .map_err(SyncError::fetch)?
    };
    Ok(Some(Fetched {
        content,
        sha256: record.sha256,
        version: Some(record.version),
        changed_ms: Some(record.timestamp_ms),
        members: None,
    }))
}

/// The serverset's alive members as file content.
async fn fetch_serverset(cache: &mut MemberCache, full: bool) -> Result<Fetched, SyncError> {
    let members = if full {
        cache.refresh_all().await
    } else {
        cache.refresh().await
    }
    .map_err(SyncError::fetch)?;
    let endpoints = alive_endpoints(&members);
    let content = bytes::Bytes::from(serverset_file(&endpoints));
    Ok(Fetched {
        sha256: content_sha256(&content),
        members: Some(endpoints.len()),
        content,
        version: None,
        changed_ms: None,
    })
}

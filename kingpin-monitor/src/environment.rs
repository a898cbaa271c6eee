//! Keeping a service's environment view in sync for this host: watch the
//! host's association node and the view it names, write the view (or the
//! pinned version of it) to the local file, and follow a remap by
//! swapping the view watch, without a restart. No association reads the
//! root view; errors keep the last good file.

use std::sync::Arc;
use std::time::Duration;

use kingpin_api::environment::{EnvPath, Environments, ServiceName};
use kingpin_api::metaconfig::{MetaConfig, MetaConfigKind};
use kingpin_api::{Backoff, NodePath, WatchEvent, WatchKind, WatchStream};

use crate::entry::{
    drain, jitter, next_event, put_on_disk, read_on_disk, Fetched, OnDisk, SyncContext, SyncError,
};
use crate::state::now_ms;

/// The view watch: the node it follows and its stream.
struct ViewWatch {
    path: NodePath,
    stream: Option<WatchStream>,
}

/// One environment metaconfig's sync loop. Runs until its task is aborted.
pub(crate) async fn sync_environment(metaconfig: MetaConfig, ctx: Arc<SyncContext>) {
    let Some(service) = metaconfig.environment_service() else {
        // Metaconfigs are validated when read; this cannot be.
        tracing::error!(name = %metaconfig.name, "not an environment metaconfig");
        return;
    };
    let dir = ctx.settings.config_dir.clone();
    let file = dir.join(&metaconfig.file_name);
    ctx.state.update(&metaconfig.name, |e| {
        e.kind = Some(MetaConfigKind::Environment);
        e.file = file.display().to_string();
    });
    let mut on_disk = read_on_disk(file, MetaConfigKind::Environment).await;
    let environments = Environments::new(ctx.store.clone());
    let association_path = match service.host_path(&ctx.host) {
        Ok(path) => path,
        Err(e) => {
            tracing::error!(name = %metaconfig.name, error = %e, "no association node for this host");
            return;
        }
    };
    let mut association_watch: Option<WatchStream> = None;
    let mut view_watch: Option<ViewWatch> = None;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        // Armed before the read, so a remap after the read is not missed.
        if association_watch.is_none() {
            match ctx
                .coordinator
                .watch(&association_path, WatchKind::Data)
                .await
            {
                Ok(stream) => association_watch = Some(stream),
                Err(e) => {
                    ctx.metrics.error("watch");
                    tracing::warn!(name = %metaconfig.name, error = %e, "cannot watch the association");
                }
            }
        }
        let synced = sync_view(
            &metaconfig,
            &service,
            &environments,
            &ctx,
            &mut view_watch,
            &mut on_disk,
        )
        .await;
        let watching =
            association_watch.is_some() && view_watch.as_ref().is_some_and(|w| w.stream.is_some());
        let retry = match synced {
            Ok(()) => {
                backoff.reset();
                ctx.state.update(&metaconfig.name, |e| e.error = None);
                (!watching).then(|| backoff.next_delay())
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
        let view_stream = view_watch.as_mut().map(|w| &mut w.stream);
        let mut spare = None;
        let view_stream = view_stream.unwrap_or(&mut spare);
        tokio::select! {
            event = next_event(&mut association_watch) => {
                if event.is_none() {
                    association_watch = None;
                }
                note(event, &ctx);
                drain(&mut association_watch, &ctx.metrics);
            }
            event = next_event(view_stream) => {
                if event.is_none() {
                    *view_stream = None;
                }
                note(event, &ctx);
                drain(view_stream, &ctx.metrics);
            }
            _ = tokio::time::sleep(wait) => {}
        }
        if metaconfig.max_random_delay_ms > 0 {
            tokio::time::sleep(jitter(metaconfig.max_random_delay_ms)).await;
        }
    }
}

fn note(event: Option<WatchEvent>, ctx: &SyncContext) {
    if event == Some(WatchEvent::Resync) {
        ctx.metrics.watch_resyncs.inc();
    }
}

/// Reads the association, points the view watch at the view it names
/// (dropping the old watch on a remap), and puts that view on disk.
async fn sync_view(
    metaconfig: &MetaConfig,
    service: &ServiceName,
    environments: &Environments,
    ctx: &SyncContext,
    view_watch: &mut Option<ViewWatch>,
    on_disk: &mut OnDisk,
) -> Result<(), SyncError> {
    let association = environments
        .association(service, &ctx.host)
        .await
        .map_err(SyncError::fetch)?;
    let (env, pinned) = match &association {
        Some((a, _)) => (a.environment.clone(), a.pinned_version),
        None => (EnvPath::root(), None),
    };
    let view_name = service.view_config(&env).map_err(SyncError::fetch)?;
    let view_path = view_name.node_path().clone();
    if view_watch.as_ref().map(|w| &w.path) != Some(&view_path) {
        // A remap: the old stream is dropped here, and its watch with it.
        *view_watch = Some(ViewWatch {
            path: view_path.clone(),
            stream: None,
        });
    }
    if let Some(watch) = view_watch.as_mut().filter(|w| w.stream.is_none()) {
        match ctx.coordinator.watch(&view_path, WatchKind::Data).await {
            Ok(stream) => watch.stream = Some(stream),
            Err(e) => {
                ctx.metrics.error("watch");
                tracing::warn!(name = %metaconfig.name, error = %e, "cannot watch the view");
            }
        }
    }
    let record = match pinned {
        Some(version) => ctx.store.record_at(&view_name, version).await,
        None => ctx
            .store
            .record_as_watched(&view_name)
            .await
            .map(|r| r.map(|(record, _)| record)),
    }
    .map_err(SyncError::fetch)?;
    let fetched_at = now_ms();
    let Some(record) = record else {
        if association.is_none() {
            // The service has no root view yet: nothing to write.
            ctx.state
                .update(&metaconfig.name, |e| e.last_fetch_ms = Some(fetched_at));
            return Ok(());
        }
        return Err(SyncError::fetch(match pinned {
            Some(version) => {
                format!("this host is pinned to version {version} of {env}'s view, which is gone")
            }
            None => format!("this host is associated with {env}, which has no view"),
        }));
    };
    let content = if on_disk.sha256.as_deref() == Some(record.sha256.as_str()) {
        bytes::Bytes::new()
    } else {
        ctx.store
            .content(&view_name, &record)
            .await
            .map_err(SyncError::fetch)?
    };
    // Which view this is, recorded before the file changes, so whoever
    // sees the new file sees where it came from.
    ctx.state.update(&metaconfig.name, |e| {
        e.environment = Some(env.to_string());
        e.pinned_version = pinned;
    });
    let fetched = Fetched {
        content,
        sha256: record.sha256,
        version: Some(record.version),
        changed_ms: Some(record.timestamp_ms),
        members: None,
    };
    put_on_disk(
        &metaconfig.name,
        &metaconfig.file_name,
        ctx,
        &ctx.settings.config_dir,
        on_disk,
        fetched,
        fetched_at,
    )
    .await?;
    Ok(())
}

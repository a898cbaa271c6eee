//! Following the subscribed dependency: resolve it (nested dependencies,
//! `base.dep`), watch every dependency and metaconfig record involved, and
//! start, restart or stop entry sync loops as the graph changes — live,
//! without a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kingpin_api::metaconfig::{
    is_dependency, MetaConfig, MetaConfigManager, Subscription, BASE_DEPENDENCY,
};
use kingpin_api::{Backoff, ConfigName, NodePath, WatchEvent, WatchKind, WatchStream};
use tokio::task::JoinHandle;
use tokio_stream::StreamMap;

use crate::entry::{sync_entry, SyncContext};

/// The nodes whose changes can change what is subscribed.
fn watch_targets(
    root: &ConfigName,
    subscription: Option<&Subscription>,
) -> BTreeMap<NodePath, WatchKind> {
    let mut targets = BTreeMap::new();
    let mut add = |name: &ConfigName| {
        let target = if is_dependency(name) {
            MetaConfigManager::dependency_path(name).map(|p| (p, WatchKind::Children))
        } else {
            MetaConfigManager::record_path(name).map(|p| (p, WatchKind::Data))
        };
        if let Ok((path, kind)) = target {
            targets.insert(path, kind);
        }
    };
    add(root);
    if let Ok(base) = ConfigName::parse(BASE_DEPENDENCY) {
        add(&base);
    }
    if let Some(subscription) = subscription {
        subscription.dependencies.iter().for_each(&mut add);
        subscription.missing.iter().for_each(&mut add);
        subscription.metaconfigs.iter().for_each(|m| add(&m.name));
    }
    targets
}

/// Runs the subscription until the task is aborted.
pub(crate) async fn follow_subscription(ctx: Arc<SyncContext>) {
    let manager = MetaConfigManager::new(ctx.coordinator.clone());
    let root = ctx.settings.dependency.clone();
    let mut watches: StreamMap<NodePath, WatchStream> = StreamMap::new();
    let mut running = EntryTasks::default();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let resolved = resolve_watched(&manager, &root, &ctx, &mut watches).await;
        let retry = match resolved {
            Ok(subscription) => {
                backoff.reset();
                ctx.state.set_subscription(Ok((
                    subscription.dependencies.clone(),
                    subscription.missing.clone(),
                )));
                apply(&subscription, &mut running.0, &ctx);
                None
            }
            Err(e) => {
                ctx.metrics.error("subscription");
                tracing::warn!(dependency = %root, error = %e, "cannot resolve the subscription; keeping what runs");
                ctx.state.set_subscription(Err(e));
                Some(backoff.next_delay())
            }
        };
        let wait = retry.unwrap_or(ctx.settings.reconcile_interval);
        tokio::select! {
            Some((_, event)) = watches.next(), if !watches.is_empty() => {
                if event == WatchEvent::Resync {
                    ctx.metrics.watch_resyncs.inc();
                }
                // A burst of graph changes is one re-resolve.
                while let Some(Some(_)) = futures::FutureExt::now_or_never(watches.next()) {}
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Resolves the subscription with every involved node watched: watches are
/// armed before the read that decides what they cover, and the graph is
/// read again whenever new nodes joined it, until it is stable.
async fn resolve_watched(
    manager: &MetaConfigManager,
    root: &ConfigName,
    ctx: &SyncContext,
    watches: &mut StreamMap<NodePath, WatchStream>,
) -> Result<Subscription, String> {
    let mut subscription: Option<Subscription> = None;
    loop {
        let targets = watch_targets(root, subscription.as_ref());
        let mut armed = false;
        for (path, kind) in &targets {
            if !watches.contains_key(path) {
                let stream = ctx
                    .coordinator
                    .watch(path, *kind)
                    .await
                    .map_err(|e| format!("cannot watch {path}: {e}"))?;
                watches.insert(path.clone(), stream);
                armed = true;
            }
        }
        if subscription.is_some() && !armed {
            let stale: Vec<NodePath> = watches
                .keys()
                .filter(|p| !targets.contains_key(*p))
                .cloned()
                .collect();
            for path in stale {
                watches.remove(&path);
            }
            return subscription.ok_or_else(|| "no subscription".to_owned());
        }
        subscription = Some(manager.resolve(root).await.map_err(|e| e.to_string())?);
    }
}

/// The running entry loops, stopped when the subscription stops.
#[derive(Default)]
struct EntryTasks(HashMap<ConfigName, (MetaConfig, JoinHandle<()>)>);

impl Drop for EntryTasks {
    fn drop(&mut self) {
        for (_, task) in self.0.values() {
            task.abort();
        }
    }
}

/// Starts new entries, restarts changed ones, stops removed ones. Files of
/// removed entries stay on disk: applications may still read them.
fn apply(
    subscription: &Subscription,
    running: &mut HashMap<ConfigName, (MetaConfig, JoinHandle<()>)>,
    ctx: &Arc<SyncContext>,
) {
    let wanted: HashMap<&ConfigName, &MetaConfig> = subscription
        .metaconfigs
        .iter()
        .map(|m| (&m.name, m))
        .collect();
    running.retain(|name, (metaconfig, task)| {
        let keep = wanted.get(name).is_some_and(|w| *w == metaconfig);
        if !keep {
            task.abort();
            if !wanted.contains_key(name) {
                ctx.state.remove(name);
                tracing::info!(name = %name, "unsubscribed");
            }
        }
        keep
    });
    for (name, metaconfig) in wanted {
        if !running.contains_key(name) {
            tracing::info!(name = %name, kind = %metaconfig.kind, "subscribed");
            let task = tokio::spawn(sync_entry(metaconfig.clone(), ctx.clone()));
            running.insert(name.clone(), (metaconfig.clone(), task));
        }
    }
    ctx.metrics.entries.set(running.len() as i64);
}

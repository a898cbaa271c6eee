//! A [`HostsProvider`] fed straight from the coordinator, for processes
//! that have a coordinator session and do not want to wait for a local
//! serverset file.

use std::time::Duration;

use futures::StreamExt;
use kingpin_client::{HostsProvider, HostsProviderBuilder, HostsUpdater};

use super::serverset::{alive_endpoints, MemberCache, ServerSet};
use crate::backoff::Backoff;
use crate::coordinator::{WatchEvent, WatchStream};
use crate::error::Result;

/// Keeps a [`HostsProvider`] in step with a serverset; dropping it stops
/// following (the provider keeps its last hosts).
#[derive(Debug)]
pub struct HostsFollower {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostsFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ServerSet {
    /// A provider of this serverset's alive members, built by `builder`
    /// (selector, invalidation, fallback), and the follower that keeps it
    /// up to date. The members are read once before this returns.
    ///
    /// As with a serverset file, an update that empties the list is
    /// refused and the previous hosts stay.
    ///
    /// # Errors
    ///
    /// The coordinator's, for the first read or the watch.
    pub async fn hosts_provider(
        &self,
        builder: HostsProviderBuilder,
    ) -> Result<(HostsProvider, HostsFollower)> {
        let (provider, updater) =
            builder.manual_named(format!("serverset {} in the coordinator", self.name()));
        // Armed before the first read, so no change falls between them.
        let watch = self.watch().await?;
        let mut cache = MemberCache::new(self.clone());
        let members = cache.refresh().await?;
        // An empty serverset leaves the provider on its fallback.
        let _ = updater.update(alive_endpoints(&members));
        let task = tokio::spawn(follow(cache, watch, updater));
        Ok((provider, HostsFollower { task }))
    }
}

async fn follow(mut cache: MemberCache, mut watch: WatchStream, updater: HostsUpdater) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let mut full = false;
    loop {
        let retry = match refreshed(&mut cache, full).await {
            Ok(members) => {
                backoff.reset();
                if let Err(refused) = updater.update(alive_endpoints(&members)) {
                    tracing::warn!(serverset = %cache.serverset().name(), %refused, "serverset update not applied");
                }
                None
            }
            Err(e) => {
                tracing::warn!(serverset = %cache.serverset().name(), error = %e, "cannot read the serverset; keeping its hosts");
                Some(backoff.next_delay())
            }
        };
        full = tokio::select! {
            event = watch.next() => match event {
                None => return,
                Some(event) => event == WatchEvent::Resync,
            },
            _ = sleep_if(retry) => true,
        };
    }
}

/// Sleeps for `delay`, or forever without one.
async fn sleep_if(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => std::future::pending().await,
    }
}

async fn refreshed(cache: &mut MemberCache, full: bool) -> Result<Vec<super::Member>> {
    if full {
        cache.refresh_all().await
    } else {
        cache.refresh().await
    }
}

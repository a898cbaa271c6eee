//! Every change the console makes: a compare-and-set against the version
//! the user started from, through the config store (or, for an
//! environment's content, through `Environments`, which rebuilds the
//! views in the same transaction).

use bytes::Bytes;
use kingpin_api::environment::content_of;
use kingpin_api::{ChangeInfo, ConfigName, ErrorKind};

use crate::error::PageError;
use crate::kind::environment_of;
use crate::AppState;

/// What a checked write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The new version.
    Version(u64),
    /// Someone wrote another version since `base`: nothing was written.
    Conflict,
}

/// Writes `content` as the next version of `name` only if it is still at
/// `base` (0: only if it does not exist yet).
pub async fn write_checked(
    state: &AppState,
    name: &ConfigName,
    content: Bytes,
    base: u64,
    change: &ChangeInfo,
) -> Result<Written, PageError> {
    let written = match environment_of(name.as_str()) {
        Some((_, _, true)) => {
            return Err(PageError::invalid(
                "an environment's view is derived from its environments: edit those instead; nothing was changed",
            ))
        }
        Some((service, env, false)) => {
            let value = serde_json::from_slice(&content)
                .map_err(|e| PageError::invalid(crate::editors::json_error(&e)))?;
            let content = content_of(&format!("environment {env}"), value)?;
            let result = if base == 0 {
                state
                    .environments
                    .create(&service, &env, content, change)
                    .await
                    .map(|r| (r.version, Vec::new()))
            } else {
                state
                    .environments
                    .set(&service, &env, content, change, Some(base))
                    .await
                    .map(|w| (w.record.version, w.views))
            };
            match result {
                Ok((version, views)) => {
                    for (view, _) in views {
                        if let Ok(view_name) = service.view_config(&view) {
                            state.catalog.refresh_one(&view_name).await;
                        }
                    }
                    if let Ok(view_name) = service.view_config(&env) {
                        state.catalog.refresh_one(&view_name).await;
                    }
                    Written::Version(version)
                }
                Err(e) if matches!(e.kind(), ErrorKind::BadVersion | ErrorKind::AlreadyExists) => {
                    Written::Conflict
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            let current = state.store.record(name).await?;
            let expected = match &current {
                None if base == 0 => None,
                Some((record, node_version)) if record.version == base => Some((record, *node_version)),
                _ => return Ok(Written::Conflict),
            };
            match state.store.write_if(name, content, change, expected).await {
                Ok(record) => Written::Version(record.version),
                Err(e) if matches!(e.kind(), ErrorKind::BadVersion | ErrorKind::AlreadyExists) => {
                    Written::Conflict
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    state.catalog.refresh_one(name).await;
    Ok(written)
}

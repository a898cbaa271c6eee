//! `kingpin backends`: the settings in use and where each came from. URLs
//! are shown without credentials or options.

use anyhow::Result;
use serde_json::json;

use super::Context;
use crate::settings::{redact, Setting};

/// Prints the settings.
pub fn run(ctx: &Context) -> Result<()> {
    let settings = &ctx.settings;
    let url = |setting: &Setting| redact(&setting.value);
    let config_file = settings
        .config_file
        .as_ref()
        .map(|path| path.display().to_string());
    let text = format!(
        "coordinator  {}  ({})\nblobstore    {}  ({})\nauthor       {}  ({})\nconfig file  {}",
        url(&settings.coordinator),
        settings.coordinator.source,
        url(&settings.blobstore),
        settings.blobstore.source,
        settings.author.value,
        settings.author.source,
        config_file.as_deref().unwrap_or("none"),
    );
    let json = json!({
        "coordinator": { "url": url(&settings.coordinator), "source": settings.coordinator.source.kind() },
        "blobstore": { "url": url(&settings.blobstore), "source": settings.blobstore.source.kind() },
        "author": { "name": settings.author.value, "source": settings.author.source.kind() },
        "config_file": config_file,
    });
    ctx.out.data(text, json)
}

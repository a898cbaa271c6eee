//! `kingpin backup` and `kingpin restore`: wiring for `kingpin-backup`
//! (the archive format and both procedures live there).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use kingpin::kingpin_api::Error;
use kingpin_backup::{RestoreOptions, RestoreReport};
use serde_json::json;

use super::Context;

/// `kingpin backup FILE`: the archive goes to a temporary file beside
/// FILE, renamed into place once complete, so FILE is never a partial
/// archive; `-` streams it to stdout.
pub async fn backup(ctx: &Context, file: &Path) -> Result<()> {
    let store = ctx.store().await?;
    if file == Path::new("-") {
        let stdout = std::io::stdout();
        let report = kingpin_backup::backup(&store, BufWriter::new(stdout.lock())).await?;
        // The archive is the output; the summary goes to stderr.
        if !ctx.out.is_json() {
            eprintln!("{}", summary(&report));
        }
        return Ok(());
    }
    let partial = partial_path(file);
    let out =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let report = match kingpin_backup::backup(&store, BufWriter::new(out)).await {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&partial, file))
        .with_context(|| format!("cannot move the archive to {}", file.display()))?;
    ctx.out.done(
        format!("{} to {}", summary(&report), file.display()),
        json!({
            "file": file.display().to_string(),
            "format": kingpin_backup::FORMAT,
            "configs": report.configs,
            "versions": report.versions,
            "blobs": report.blobs,
            "blob_bytes": report.blob_bytes,
            "metaconfigs": report.metaconfigs,
            "dependencies": report.dependencies,
            "services": report.services,
            "hosts": report.hosts,
        }),
    )
}

fn summary(report: &kingpin_backup::BackupReport) -> String {
    format!(
        "backed up {} configs ({} versions, {} distinct contents, {} bytes), {} metaconfigs, {} dependencies, {} services with environments ({} hosts)",
        report.configs,
        report.versions,
        report.blobs,
        report.blob_bytes,
        report.metaconfigs,
        report.dependencies,
        report.services,
        report.hosts
    )
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    file.with_file_name(name)
}

/// `kingpin restore FILE`: FILE is read twice (checked whole, then
/// written), so stdin (`-`) is kept in a temporary file first.
pub async fn restore(ctx: &Context, file: &Path, options: RestoreOptions) -> Result<()> {
    let spooled;
    let path = if file == Path::new("-") {
        let mut spool = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .and_then(|_| spool.flush())
            .context("cannot read the archive from stdin")?;
        spooled = spool;
        spooled.path().to_path_buf()
    } else {
        file.to_path_buf()
    };
    // The archive is checked before the backends are opened: a corrupt
    // one fails without touching them.
    kingpin_backup::verify(open(&path)?)?;
    let store = ctx.store().await?;
    let report = kingpin_backup::restore(&store, || open(&path), options).await?;
    let verb = if options.dry_run {
        "would restore"
    } else {
        "restored"
    };
    let mut text = restored(verb, &report);
    for skipped in &report.skipped {
        text.push_str(&format!("\nleft as it is: {skipped}"));
    }
    ctx.out.done(
        text,
        json!({
            "dry_run": options.dry_run,
            "configs": report.configs,
            "versions": report.versions,
            "metaconfigs": report.metaconfigs,
            "dependencies": report.dependencies,
            "services": report.services,
            "hosts": report.hosts,
            "skipped": report.skipped,
        }),
    )
}

fn restored(verb: &str, report: &RestoreReport) -> String {
    format!(
        "{verb} {} configs ({} versions), {} metaconfigs, {} dependencies, {} services with environments ({} hosts)",
        report.configs,
        report.versions,
        report.metaconfigs,
        report.dependencies,
        report.services,
        report.hosts
    )
}

fn open(path: &Path) -> Result<BufReader<File>, Error> {
    File::open(path).map(BufReader::new).map_err(|e| {
        Error::invalid(format!("cannot open the archive {}: {e}", path.display())).with_source(e)
    })
}

//! Printing results: text for people, JSON (`--json`) for machines.

use std::io::{ErrorKind as IoErrorKind, Write};

use anyhow::{Context as _, Result};
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    quiet: bool,
}

impl Output {
    /// Text or JSON; `quiet` hides confirmations of changes.
    pub fn new(json: bool, quiet: bool) -> Self {
        Output { json, quiet }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints what the command was asked for: `text` (one or more lines;
    /// nothing when empty), or `json` with `--json`.
    pub fn data(&self, text: impl Into<String>, json: Value) -> Result<()> {
        if self.json {
            print_json(&json)
        } else {
            print_text(text.into())
        }
    }

    /// Confirms a change; `--quiet` hides it.
    pub fn done(&self, text: impl Into<String>, json: Value) -> Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.data(text, json)
    }

    /// Prints `bytes` exactly as they are.
    pub fn raw(&self, bytes: &[u8]) -> Result<()> {
        write_stdout(bytes)
    }
}

fn print_json(value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot format JSON output")?;
    text.push('\n');
    write_stdout(text.as_bytes())
}

fn print_text(mut text: String) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    write_stdout(text.as_bytes())
}

/// Writes to stdout; a reader that went away (`kingpin … | head`) is not
/// an error.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != IoErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// How a single item or value prints in text: strings as they are, other
/// JSON compactly.
pub fn item_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lines of text, one per item.
pub fn lines<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items.into_iter().fold(String::new(), |mut text, line| {
        text.push_str(line.as_ref());
        text.push('\n');
        text
    })
}

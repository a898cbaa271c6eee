//! Log output: every command logs to stderr through `tracing`, so warnings
//! from the layers below (a blob store that ignores conditional writes, a
//! retried request) reach the user.
//!
//! Admin commands show warnings; the long-running ones (`register`, `dev`)
//! show what they do (`info`). `-v` shows kingpin's own `info`, `-vv` its
//! `debug`, `-vvv` everything at `debug` and kingpin at `trace`; `--quiet`
//! keeps warnings only; `RUST_LOG` overrides all of it. With `--json` each
//! line is a JSON object. Nothing kingpin logs carries a credential.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How much a command says by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chattiness {
    /// Admin commands: warnings and errors.
    Warnings,
    /// Long-running commands: what they do, too.
    Activity,
}

/// The filter for `verbose` `-v` flags over a command's default.
fn filter(chattiness: Chattiness, verbose: u8, quiet: bool) -> String {
    let level = match (chattiness, quiet) {
        (_, true) => 0,
        (Chattiness::Warnings, false) => verbose,
        (Chattiness::Activity, false) => verbose.saturating_add(1),
    };
    match level {
        0 => "warn",
        1 => "warn,kingpin=info",
        2 => "warn,kingpin=debug",
        _ => "debug,kingpin=trace",
    }
    .to_owned()
}

/// Sets up logging to stderr. `RUST_LOG` wins over the flags.
pub fn init(chattiness: Chattiness, verbose: u8, quiet: bool, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter(chattiness, verbose, quiet)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Only fails when a subscriber is already set, which is then used.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_raise_and_lower_the_level() {
        assert_eq!(filter(Chattiness::Warnings, 0, false), "warn");
        assert_eq!(filter(Chattiness::Warnings, 1, false), "warn,kingpin=info");
        assert_eq!(filter(Chattiness::Activity, 0, false), "warn,kingpin=info");
        assert_eq!(filter(Chattiness::Activity, 1, false), "warn,kingpin=debug");
        assert_eq!(filter(Chattiness::Activity, 2, true), "warn");
        assert_eq!(
            filter(Chattiness::Warnings, 9, false),
            "debug,kingpin=trace"
        );
    }
}

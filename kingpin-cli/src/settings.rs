//! Which coordinator, blob store and author to use, and where each choice
//! came from. First match wins: flag, environment, config file, default
//! (the embedded SQLite + local directory stack under `.kingpin/`).

use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use kingpin::kingpin_api::Error;
use serde::Deserialize;

use crate::cli::GlobalArgs;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The config file.
    ConfigFile(PathBuf),
    /// The operating system account running the command.
    Account,
    /// Built in.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::ConfigFile(path) => write!(f, "config file {}", path.display()),
            Source::Account => f.write_str("the account running kingpin"),
            Source::Default => f.write_str("default"),
        }
    }
}

impl Source {
    /// A short stable name for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Flag(_) => "flag",
            Source::Env(_) => "env",
            Source::ConfigFile(_) => "config_file",
            Source::Account => "account",
            Source::Default => "default",
        }
    }
}

/// One setting's value and origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

impl Setting {
    fn default_value(value: String) -> Self {
        Setting {
            value,
            source: Source::Default,
        }
    }
}

/// Everything the commands need to know about where data lives.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The coordinator URL.
    pub coordinator: Setting,
    /// The blob store URL.
    pub blobstore: Setting,
    /// Who makes changes.
    pub author: Setting,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// The embedded stack's directory, when either backend is the default:
    /// created only when a backend is opened.
    pub embedded_dir: Option<PathBuf>,
}

/// The keys a config file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    coordinator: Option<String>,
    blobstore: Option<String>,
    author: Option<String>,
}

impl Settings {
    /// Resolves the settings from parsed flags (`matches` tells a flag from
    /// an environment variable) and the environment. Reads the config file
    /// but opens and creates nothing.
    pub fn resolve(global: &GlobalArgs, matches: &ArgMatches) -> Result<Settings, Error> {
        let config_file = match &global.config {
            Some(path) => Some(path.clone()),
            None => default_config_file().filter(|path| path.is_file()),
        };
        let file = match &config_file {
            Some(path) => read_config_file(path)?,
            None => FileSettings::default(),
        };
        let from_file = |value: Option<String>| {
            let path = config_file.clone().unwrap_or_default();
            value.map(|value| Setting {
                value,
                source: Source::ConfigFile(path),
            })
        };
        let explicit = |id: &str, value: &Option<String>, flag: &'static str, var: &'static str| {
            value.clone().map(|value| Setting {
                value,
                source: match matches.value_source(id) {
                    Some(ValueSource::EnvVariable) => Source::Env(var),
                    _ => Source::Flag(flag),
                },
            })
        };
        let coordinator = explicit(
            "coordinator",
            &global.coordinator,
            "--coordinator",
            "KINGPIN_COORDINATOR",
        )
        .or_else(|| from_file(file.coordinator));
        let blobstore = explicit(
            "blobstore",
            &global.blobstore,
            "--blobstore",
            "KINGPIN_BLOBSTORE",
        )
        .or_else(|| from_file(file.blobstore));
        let (coordinator, blobstore, embedded_dir) = match (coordinator, blobstore) {
            (Some(coordinator), Some(blobstore)) => (coordinator, blobstore, None),
            (coordinator, blobstore) => {
                let dir = embedded_home()?.join(".kingpin");
                let coordinator = coordinator.unwrap_or_else(|| {
                    Setting::default_value(format!("sqlite://{}", dir.join("kingpin.db").display()))
                });
                let blobstore = match blobstore {
                    Some(blobstore) => blobstore,
                    None => Setting::default_value(file_url(&dir.join("blobs"))?),
                };
                (coordinator, blobstore, Some(dir))
            }
        };
        let author = explicit("author", &global.author, "--author", "KINGPIN_AUTHOR")
            .or_else(|| from_file(file.author))
            .unwrap_or_else(|| match std::env::var("USER") {
                Ok(user) if !user.is_empty() => Setting {
                    value: user,
                    source: Source::Env("USER"),
                },
                // Services, cron and containers often run without $USER.
                _ => match account_name() {
                    Some(name) => Setting {
                        value: name,
                        source: Source::Account,
                    },
                    None => Setting::default_value("unknown".to_owned()),
                },
            });
        Ok(Settings {
            coordinator,
            blobstore,
            author,
            config_file,
            embedded_dir,
        })
    }
}

/// The name of the operating system account this process runs as, or its
/// uid when the account has no name.
fn account_name() -> Option<String> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) if !user.name.is_empty() => Some(user.name),
        _ => Some(format!("uid {uid}")),
    }
}

/// `$XDG_CONFIG_HOME/kingpin/config.toml`, else
/// `~/.config/kingpin/config.toml`.
fn default_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("kingpin").join("config.toml"))
}

fn read_config_file(path: &Path) -> Result<FileSettings, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!("cannot read config file {}", path.display())).with_source(e)
    })?;
    toml::from_str(&text).map_err(|e| {
        // The message only: toml's full error quotes the offending line,
        // which may hold a URL with options.
        let line = e
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| before.matches('\n').count() + 1);
        let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
        Error::invalid(format!(
            "config file {}{at}: {}",
            path.display(),
            e.message().trim_end()
        ))
    })
}

/// The absolute directory holding `.kingpin/`: `$KINGPIN_HOME` or the
/// working directory.
pub fn embedded_home() -> Result<PathBuf, Error> {
    let cwd = || {
        std::env::current_dir().map_err(|e| {
            Error::invalid("cannot determine the working directory for .kingpin/").with_source(e)
        })
    };
    match std::env::var_os("KINGPIN_HOME").filter(|home| !home.is_empty()) {
        Some(home) if Path::new(&home).is_absolute() => Ok(PathBuf::from(home)),
        Some(home) => Ok(cwd()?.join(home)),
        None => cwd(),
    }
}

/// A `file://` URL for an absolute directory, percent-encoded as
/// object_store expects.
fn file_url(dir: &Path) -> Result<String, Error> {
    url::Url::from_directory_path(dir)
        .map(|url| url.as_str().trim_end_matches('/').to_owned())
        .map_err(|()| Error::invalid(format!("{} is not an absolute path", dir.display())))
}

/// `url` without credentials or options, safe to print: userinfo is
/// dropped and a query is replaced by `?…`.
pub fn redact(url: &str) -> String {
    let (base, has_query) = match url.split_once('?') {
        Some((base, _)) => (base, true),
        None => (url, false),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_owned(),
    };
    if has_query {
        format!("{base}?…")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_userinfo_and_options() {
        assert_eq!(redact("s3://b/p?endpoint=http://x&secret=1"), "s3://b/p?…");
        assert_eq!(redact("etcd://u:pw@h:2379/kp"), "etcd://h:2379/kp");
        assert_eq!(redact("zk://h1:2181,h2:2181/kp"), "zk://h1:2181,h2:2181/kp");
        assert_eq!(redact("sqlite:///tmp/k.db"), "sqlite:///tmp/k.db");
        assert_eq!(redact("memory://"), "memory://");
    }

    #[test]
    fn file_urls_are_percent_encoded() {
        assert_eq!(
            file_url(Path::new("/tmp/a b/.kingpin/blobs")).unwrap(),
            "file:///tmp/a%20b/.kingpin/blobs"
        );
    }

    #[test]
    fn unknown_config_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "coordinator = \"memory://\"\ncoordinatr = \"x?secret=1\"\n",
        )
        .unwrap();
        let err = read_config_file(&path).unwrap_err();
        assert!(err.message().contains("coordinatr"), "{err}");
        assert!(err.message().contains("line 2"), "{err}");
        assert!(!err.message().contains("secret"), "{err}");
    }
}

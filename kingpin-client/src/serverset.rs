//! [`ServerSetReader`]: the members of a serverset, from the local file the
//! monitor writes (design.md §6): `host:port` lines, sorted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::file::{ConfigFile, ConfigFileBuilder};
use crate::name::file_in;

/// One member of a serverset: where to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// A host name or IP address; an IPv6 address without brackets.
    pub host: String,
    /// The port, never 0.
    pub port: u16,
}

impl Endpoint {
    /// The endpoint `host`:`port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }
}

/// `host:port`, with the host in brackets when it is an IPv6 address.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port` or `[ipv6]:port`.
///
/// ```
/// use kingpin_client::Endpoint;
/// assert_eq!("10.0.0.1:8080".parse::<Endpoint>()?, Endpoint::new("10.0.0.1", 8080));
/// assert_eq!("[::1]:80".parse::<Endpoint>()?, Endpoint::new("::1", 80));
/// assert!("::1:80".parse::<Endpoint>().is_err(), "IPv6 needs brackets");
/// # Ok::<(), kingpin_client::Error>(())
/// ```
impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |why: &str| Error::content(format!("{s:?} is not host:port: {why}"));
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, rest) = rest
                .split_once(']')
                .ok_or_else(|| invalid("no ']' after the IPv6 address"))?;
            let port = rest
                .strip_prefix(':')
                .ok_or_else(|| invalid("no ':' after ']'"))?;
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
            if host.contains(':') {
                return Err(invalid("an IPv6 address goes in brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "[]/".contains(c))
        {
            return Err(invalid("the host has a character no host name has"));
        }
        let port = match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("the port is not a number in 1..=65535")),
            Ok(port) => port,
        };
        Ok(Endpoint::new(host, port))
    }
}

/// A serverset file's content: one `host:port` per line, in file order;
/// blank lines and lines starting with `#` are skipped.
///
/// # Errors
///
/// [`Error::Content`] for content that is not UTF-8 or a line that is not
/// an endpoint; nothing of the file is used then.
pub fn parse_serverset(content: &[u8]) -> Result<Vec<Endpoint>> {
    let text = std::str::from_utf8(content)
        .map_err(|e| Error::content(format!("a serverset file is UTF-8 text: {e}")))?;
    text.lines()
        .enumerate()
        .map(|(number, line)| (number + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| {
            line.parse().map_err(|e| match e {
                Error::Content { message } => Error::content(format!("line {number}: {message}")),
                other => other,
            })
        })
        .collect()
}

/// The members of a serverset, reloaded when its file changes.
///
/// An update that **empties** the serverset is refused: the previous
/// members stay and the refusal is reported in
/// [`file().last_error()`](ConfigFile::last_error) (an emptied serverset is
/// almost always a mistake, and sending no traffic anywhere is worse than
/// sending some to hosts that left).
///
/// ```
/// use kingpin_client::{Endpoint, ServerSetReader};
/// # let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("discovery.api.prod"), "10.0.0.1:8080\n10.0.0.2:8080\n")?;
/// let api = ServerSetReader::open_in(dir.path(), "discovery.api.prod")?;
/// assert_eq!(api.endpoints()[0], Endpoint::new("10.0.0.1", 8080));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ServerSetReader {
    file: ConfigFile<Vec<Endpoint>>,
}

impl ServerSetReader {
    /// Reads the serverset file at `path`.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open`]: the file must exist and parse (it may be
    /// empty: there is nothing older to keep).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::with_file(ConfigFile::builder(path, parse_serverset))
    }

    /// Reads the serverset `name` (e.g. `discovery.api.prod`) in the
    /// serverset directory `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], before any I/O, when `name` is not a plain
    /// file name; else as [`open`](Self::open).
    pub fn open_in(dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        Self::open(file_in(dir, name)?)
    }

    /// Reads the serverset file at `path`, with no members while it is
    /// missing or broken.
    ///
    /// # Errors
    ///
    /// As [`ConfigFile::open_or`].
    pub fn open_or_empty(path: impl Into<PathBuf>) -> Result<Self> {
        Self::with_file(ConfigFile::builder(path, parse_serverset).default_value(Vec::new()))
    }

    fn with_file(builder: ConfigFileBuilder<Vec<Endpoint>>) -> Result<Self> {
        let file = builder
            .check_update(|current, next| refuse_emptying(current, next))
            .open()?;
        Ok(ServerSetReader { file })
    }

    /// The file, its load status and change callbacks.
    pub fn file(&self) -> &ConfigFile<Vec<Endpoint>> {
        &self.file
    }

    /// The current members, in file order (sorted, as the monitor writes
    /// them).
    pub fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        self.file.snapshot()
    }
}

fn refuse_emptying(current: &[Endpoint], next: &[Endpoint]) -> Result<(), String> {
    if next.is_empty() && !current.is_empty() {
        return Err(format!(
            "the update empties the serverset; keeping its {} endpoints",
            current.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_endpoints_and_comments_are_skipped() {
        let content =
            b"# written by kingpin-monitor\n\n10.0.0.1:80\n  [::1]:8080  \r\nhost-b.example:9090\n";
        assert_eq!(
            parse_serverset(content).unwrap(),
            [
                Endpoint::new("10.0.0.1", 80),
                Endpoint::new("::1", 8080),
                Endpoint::new("host-b.example", 9090),
            ]
        );
    }

    #[test]
    fn an_empty_file_has_no_endpoints() {
        assert!(parse_serverset(b"").unwrap().is_empty());
        assert!(parse_serverset(b"\n# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn a_bad_line_fails_the_whole_file_and_is_named() {
        let err = parse_serverset(b"10.0.0.1:80\nnot-an-endpoint\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        for bad in [
            "host",
            "host:",
            "host:0",
            "host:65536",
            ":80",
            "::1:80",
            "[::1]80",
            "[::1:80",
            "a b:80",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
        assert!(parse_serverset(b"\xff:80").is_err());
    }

    #[test]
    fn endpoints_print_as_they_parse() {
        for text in ["10.0.0.1:80", "[::1]:8080", "[fe80::1%eth0]:1", "h:65535"] {
            assert_eq!(text.parse::<Endpoint>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn only_an_update_that_empties_the_serverset_is_refused() {
        let one = vec![Endpoint::new("a", 1)];
        assert!(refuse_emptying(&one, &[]).is_err());
        assert!(refuse_emptying(&[], &[]).is_ok());
        assert!(refuse_emptying(&[], &one).is_ok());
        assert!(refuse_emptying(&one, &[Endpoint::new("b", 2)]).is_ok());
    }
}

//! The archive format, `kingpin-backup/1`: one UTF-8 file of JSON lines,
//! each an object with a `kind`:
//!
//! | kind | fields | |
//! |---|---|---|
//! | `header` | `format`, `created_ms`, `written_by` | first line, always |
//! | `blob` | `sha256`, `size`, `data` (standard base64) | each distinct content once, before the configs that use it |
//! | `config` | `name`, `versions` (records, oldest first; the last is the current one) | |
//! | `metaconfig` | `record` (the metaconfig's stored JSON) | |
//! | `dependency` | `name`, `members` | |
//! | `environments` | `service`, `data` (the service node's), `environments` (paths), `hosts` (host → association JSON) | |
//! | `end` | `lines` (how many came before it) | last line, always: a file cut short has none |
//!
//! A config version's record is the one the store keeps (version, blob
//! key, sha256, size, author, message, timestamp, sources); its content
//! is the `blob` line with that sha256. A reader refuses unknown kinds and
//! fields, so a newer format is never half understood.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};

use base64::Engine as _;
use bytes::Bytes;
use kingpin_api::environment::{Association, EnvPath, HostId, ServiceName};
use kingpin_api::metaconfig::{is_dependency, MetaConfig};
use kingpin_api::{ConfigName, ConfigRecord, Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The format this crate writes and reads.
pub const FORMAT: &str = "kingpin-backup/1";

/// One line of an archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Line {
    Header {
        format: String,
        created_ms: u64,
        written_by: String,
    },
    Blob {
        sha256: String,
        size: u64,
        data: String,
    },
    Config {
        name: String,
        versions: Vec<ConfigRecord>,
    },
    Metaconfig {
        record: serde_json::Value,
    },
    Dependency {
        name: String,
        members: Vec<String>,
    },
    Environments {
        service: String,
        data: String,
        environments: Vec<String>,
        hosts: BTreeMap<String, serde_json::Value>,
    },
    End {
        lines: u64,
    },
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// Writes lines, counting them for the `end` line.
pub(crate) struct ArchiveWriter<W: Write> {
    out: W,
    lines: u64,
}

impl<W: Write> ArchiveWriter<W> {
    pub fn new(out: W) -> Self {
        ArchiveWriter { out, lines: 0 }
    }

    pub fn write(&mut self, line: &Line) -> Result<()> {
        let mut json = serde_json::to_vec(line)
            .map_err(|e| Error::invalid(format!("cannot encode an archive line: {e}")))?;
        json.push(b'\n');
        self.out.write_all(&json).map_err(write_error)?;
        self.lines += 1;
        Ok(())
    }

    pub fn blob(&mut self, content: &[u8]) -> Result<()> {
        self.write(&Line::Blob {
            sha256: sha256_hex(content),
            size: content.len() as u64,
            data: base64::engine::general_purpose::STANDARD.encode(content),
        })
    }

    /// Writes the `end` line and flushes.
    pub fn finish(mut self) -> Result<u64> {
        let lines = self.lines;
        self.write(&Line::End { lines })?;
        self.out.flush().map_err(write_error)?;
        Ok(self.lines)
    }
}

fn write_error(e: std::io::Error) -> Error {
    Error::new(
        kingpin_api::ErrorKind::Backend,
        format!("cannot write the archive: {e}"),
    )
    .with_source(e)
}

/// One config as archived: every version's record, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedConfig {
    /// The config.
    pub name: ConfigName,
    /// Its versions' records, oldest first; the last is the current one.
    pub versions: Vec<ConfigRecord>,
}

/// One service's environments as archived (their contents and views are
/// configs of their own).
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedService {
    /// The service.
    pub service: ServiceName,
    /// The service node's data.
    pub data: String,
    /// Its environments, parents first.
    pub environments: Vec<EnvPath>,
    /// Every host association.
    pub hosts: Vec<Association>,
}

/// What an archive holds, checked completely: every line parsed, every
/// name valid, every record belonging to its config and every blob's
/// sha256 and size verified. Blob contents are not kept: a restore reads
/// them again, line by line.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// When the backup was written (ms since the Unix epoch).
    pub created_ms: u64,
    /// What wrote it.
    pub written_by: String,
    /// Configs, in archive order.
    pub configs: Vec<ArchivedConfig>,
    /// Metaconfigs.
    pub metaconfigs: Vec<MetaConfig>,
    /// Dependencies and their direct members.
    pub dependencies: Vec<(ConfigName, Vec<ConfigName>)>,
    /// Services with environments.
    pub services: Vec<ArchivedService>,
    /// Distinct contents: sha256 → size.
    pub blobs: HashMap<String, u64>,
}

impl Manifest {
    /// Versions over all configs.
    pub fn versions(&self) -> usize {
        self.configs.iter().map(|c| c.versions.len()).sum()
    }
}

/// An archive that is not what it must be: `InvalidArgument` naming the
/// line and what was wrong.
fn corrupt(line: u64, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "the archive is corrupt or not a {FORMAT} archive: line {line}: {why}; nothing was restored"
    ))
}

/// Decodes a blob line's data and checks it against its sha256 and size.
pub(crate) fn decode_blob(number: u64, sha256: &str, size: u64, data: &str) -> Result<Bytes> {
    let content = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| corrupt(number, format!("blob {sha256}: data is not base64: {e}")))?;
    let actual = sha256_hex(&content);
    if actual != sha256 || content.len() as u64 != size {
        return Err(corrupt(
            number,
            format!(
                "blob {sha256} ({size} bytes) does not match its data ({} bytes, sha256 {actual})",
                content.len()
            ),
        ));
    }
    Ok(Bytes::from(content))
}

/// Reads the lines of an archive, numbered from 1.
pub(crate) fn lines(input: impl BufRead) -> impl Iterator<Item = Result<(u64, Line)>> {
    input.lines().zip(1u64..).map(|(text, number)| {
        let text = text.map_err(|e| {
            Error::new(
                kingpin_api::ErrorKind::Backend,
                format!("cannot read the archive at line {number}: {e}"),
            )
            .with_source(e)
        })?;
        let line = serde_json::from_str(&text).map_err(|e| corrupt(number, e))?;
        Ok((number, line))
    })
}

/// Reads and checks a whole archive (see [`Manifest`]). Any problem is an
/// `InvalidArgument` error naming the line, before anything is written
/// anywhere.
pub fn verify(input: impl BufRead) -> Result<Manifest> {
    let mut manifest = Manifest::default();
    let mut ended = false;
    let mut count = 0u64;
    for read in lines(input) {
        let (number, line) = read?;
        count = number;
        if ended {
            return Err(corrupt(number, "a line after the end line"));
        }
        match line {
            Line::Header {
                format,
                created_ms,
                written_by,
            } => {
                if number != 1 {
                    return Err(corrupt(number, "a header after the first line"));
                }
                if format != FORMAT {
                    return Err(corrupt(
                        number,
                        format!("format {format:?} is not {FORMAT:?}"),
                    ));
                }
                manifest.created_ms = created_ms;
                manifest.written_by = written_by;
            }
            _ if number == 1 => return Err(corrupt(number, "the first line is not a header")),
            Line::Blob { sha256, size, data } => {
                decode_blob(number, &sha256, size, &data)?;
                manifest.blobs.insert(sha256, size);
            }
            Line::Config { name, versions } => {
                let config = check_config(&manifest, &name, versions)
                    .map_err(|e| corrupt(number, e.message()))?;
                manifest.configs.push(config);
            }
            Line::Metaconfig { record } => {
                let json = serde_json::to_vec(&record).map_err(|e| corrupt(number, e))?;
                let metaconfig =
                    MetaConfig::from_json(&json).map_err(|e| corrupt(number, e.message()))?;
                manifest.metaconfigs.push(metaconfig);
            }
            Line::Dependency { name, members } => {
                let checked =
                    check_dependency(&name, &members).map_err(|e| corrupt(number, e.message()))?;
                manifest.dependencies.push(checked);
            }
            Line::Environments {
                service,
                data,
                environments,
                hosts,
            } => {
                let checked = check_service(&service, data, &environments, hosts)
                    .map_err(|e| corrupt(number, e.message()))?;
                manifest.services.push(checked);
            }
            Line::End { lines } => {
                if lines + 1 != number {
                    return Err(corrupt(
                        number,
                        format!(
                            "the end line counts {lines} lines before it, not {}",
                            number - 1
                        ),
                    ));
                }
                ended = true;
            }
        }
    }
    if count == 0 {
        return Err(Error::invalid(format!(
            "the archive is empty, not a {FORMAT} archive; nothing was restored"
        )));
    }
    if !ended {
        return Err(corrupt(
            count,
            "no end line: the archive was cut short (an interrupted backup or copy)",
        ));
    }
    check_environment_configs(&manifest)?;
    Ok(manifest)
}

fn check_config(
    manifest: &Manifest,
    name: &str,
    versions: Vec<ConfigRecord>,
) -> Result<ArchivedConfig> {
    let name = ConfigName::parse(name)?;
    if versions.is_empty() {
        return Err(Error::invalid(format!("config {name} has no versions")));
    }
    let mut previous = 0;
    for record in &versions {
        record.check_belongs_to(&name)?;
        if record.version <= previous {
            return Err(Error::invalid(format!(
                "config {name}: version {} after version {previous}",
                record.version
            )));
        }
        previous = record.version;
        match manifest.blobs.get(&record.sha256) {
            Some(&size) if size == record.size => {}
            Some(&size) => {
                return Err(Error::invalid(format!(
                    "config {name} version {}: the record says {} bytes, its blob has {size}",
                    record.version, record.size
                )))
            }
            None => {
                return Err(Error::invalid(format!(
                    "config {name} version {}: no blob with sha256 {} before it",
                    record.version, record.sha256
                )))
            }
        }
    }
    Ok(ArchivedConfig { name, versions })
}

fn check_dependency(name: &str, members: &[String]) -> Result<(ConfigName, Vec<ConfigName>)> {
    let name = ConfigName::parse(name)?;
    if !is_dependency(&name) {
        return Err(Error::invalid(format!("{name} is not a dependency name")));
    }
    let members = members
        .iter()
        .map(|m| ConfigName::parse(m))
        .collect::<Result<Vec<_>>>()?;
    Ok((name, members))
}

fn check_service(
    service: &str,
    data: String,
    environments: &[String],
    hosts: BTreeMap<String, serde_json::Value>,
) -> Result<ArchivedService> {
    let service = ServiceName::parse(service)?;
    let environments = environments
        .iter()
        .map(|e| EnvPath::parse(e))
        .collect::<Result<Vec<_>>>()?;
    if !environments.contains(&EnvPath::root()) {
        return Err(Error::invalid(format!(
            "service {service} has no root environment"
        )));
    }
    let mut associations = Vec::with_capacity(hosts.len());
    for (host, association) in hosts {
        let host = HostId::parse(&host)?;
        let json = serde_json::to_vec(&association)
            .map_err(|e| Error::invalid(format!("host {host}: {e}")))?;
        let association = Association::from_json(host, &json)?;
        if !environments.contains(&association.environment) {
            return Err(Error::invalid(format!(
                "host {} of service {service} is associated with {}, which the archive does not list",
                association.host, association.environment
            )));
        }
        associations.push(association);
    }
    Ok(ArchivedService {
        service,
        data,
        environments,
        hosts: associations,
    })
}

/// Every archived environment's content and view are archived configs.
fn check_environment_configs(manifest: &Manifest) -> Result<()> {
    let configs: std::collections::HashSet<&ConfigName> =
        manifest.configs.iter().map(|c| &c.name).collect();
    for service in &manifest.services {
        for env in &service.environments {
            for name in [
                service.service.content_config(env)?,
                service.service.view_config(env)?,
            ] {
                if !configs.contains(&name) {
                    return Err(Error::invalid(format!(
                        "the archive is inconsistent: environment {env} of service {} is listed without its config {name}; nothing was restored",
                        service.service
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(lines: &[&str]) -> String {
        lines.join("\n") + "\n"
    }

    #[test]
    fn unknown_kinds_fields_and_formats_are_refused() {
        let header =
            r#"{"kind":"header","format":"kingpin-backup/1","created_ms":1,"written_by":"t"}"#;
        let end = r#"{"kind":"end","lines":1}"#;
        verify(archive(&[header, end]).as_bytes()).unwrap();
        for (bad, complaint) in [
            (
                archive(&[
                    header,
                    r#"{"kind":"secret","x":1}"#,
                    r#"{"kind":"end","lines":2}"#,
                ]),
                "line 2",
            ),
            (
                archive(&[&header.replace("\"t\"", "\"t\",\"extra\":1"), end]),
                "extra",
            ),
            (
                archive(&[&header.replace("backup/1", "backup/2"), end]),
                "backup/2",
            ),
            (archive(&[end]), "not a header"),
            (
                archive(&[header, r#"{"kind":"end","lines":5}"#]),
                "counts 5",
            ),
            (archive(&[header, end, end]), "after the end"),
            (String::new(), "empty"),
            ("not json\n".to_owned(), "line 1"),
        ] {
            let err = verify(bad.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), kingpin_api::ErrorKind::InvalidArgument);
            assert!(err.to_string().contains(complaint), "{complaint}: {err}");
        }
    }

    #[test]
    fn a_config_needs_its_blobs_before_it() {
        let header =
            r#"{"kind":"header","format":"kingpin-backup/1","created_ms":1,"written_by":"t"}"#;
        let sha = sha256_hex(b"hi");
        let record = format!(
            r#"{{"version":1,"blob_key":"config/x/@versions/0000000001-{sha}","sha256":"{sha}","size":2,"author":"a","message":"m","timestamp_ms":1}}"#
        );
        let config = format!(r#"{{"kind":"config","name":"config.x","versions":[{record}]}}"#);
        let blob = format!(r#"{{"kind":"blob","sha256":"{sha}","size":2,"data":"aGk="}}"#);
        let good = archive(&[header, &blob, &config, r#"{"kind":"end","lines":3}"#]);
        let manifest = verify(good.as_bytes()).unwrap();
        assert_eq!((manifest.configs.len(), manifest.versions()), (1, 1));
        let missing = archive(&[header, &config, r#"{"kind":"end","lines":2}"#]);
        let err = verify(missing.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("no blob with sha256"), "{err}");
    }
}

//! Reading the PEM files of a TLS client setting, which the coordinator
//! backends take from their environment variables.

use std::path::Path;

use crate::{Error, Result};

/// The PEM text of a CA certificate and, for certificate authentication, of
/// a client certificate and its private key.
#[derive(Clone)]
pub struct PemFiles {
    /// The CA that signs the servers' certificates.
    pub ca: String,
    /// The client certificate and its key, when both were given.
    pub identity: Option<(String, String)>,
}

impl PemFiles {
    /// Reads `ca` and, if given, `cert` and `key` (both or neither;
    /// `cert_setting`/`key_setting` name them in the error otherwise).
    pub fn read(
        ca: &Path,
        cert: Option<&Path>,
        key: Option<&Path>,
        cert_setting: &str,
        key_setting: &str,
    ) -> Result<Self> {
        let read = |path: &Path, what: &str| {
            std::fs::read_to_string(path).map_err(|e| {
                Error::invalid(format!("cannot read the {what} {}", path.display())).with_source(e)
            })
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => {
                Some((read(cert, "client certificate")?, read(key, "client key")?))
            }
            (None, None) => None,
            _ => {
                return Err(Error::invalid(format!(
                    "set both {cert_setting} and {key_setting}, or neither"
                )))
            }
        };
        Ok(PemFiles {
            ca: read(ca, "CA certificate")?,
            identity,
        })
    }
}

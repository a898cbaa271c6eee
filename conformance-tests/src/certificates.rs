//! Throwaway certificates for TLS test servers and their clients, made with
//! the `openssl` command: a CA, a server certificate for 127.0.0.1, and a
//! client certificate per common name (the name servers take as the user).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::servers::StartError;

/// A CA with its server and client certificates, as PEM files in a
/// directory.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// Whether the `openssl` command is there to make them.
    pub fn available() -> bool {
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Makes a CA, a server certificate for `127.0.0.1`, and one client
    /// certificate for each of `clients` (its common name), under `dir`.
    pub fn create(dir: &Path, clients: &[&str]) -> Result<Self, StartError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let certificates = TestCertificates {
            dir: dir.to_owned(),
        };
        certificates.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=kingpin test CA",
        ])?;
        certificates.sign(
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )?;
        for client in clients {
            // The address too: servers may check it against the client's.
            certificates.sign(
                client,
                client,
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=clientAuth\n",
            )?;
        }
        Ok(certificates)
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server's certificate and key.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        self.pair("server")
    }

    /// `name`'s client certificate and key.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        self.pair(name)
    }

    fn pair(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        )
    }

    fn sign(&self, name: &str, common_name: &str, extensions: &str) -> Result<(), StartError> {
        let ext = format!("{name}.ext");
        std::fs::write(self.dir.join(&ext), extensions).map_err(|e| e.to_string())?;
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={common_name}"),
        ])?;
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ])
    }

    fn openssl(&self, args: &[&str]) -> Result<(), StartError> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "openssl {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

//! The users file: one `name:argon2id-hash` line per user, and
//! `kingpin console hash-password` to make the hash.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::settings::SettingsError;

/// Hashes `password` with argon2id (OWASP's parameters: 19 MiB, 2
/// passes, 1 lane) into the PHC string a users file holds.
pub fn hash_password(password: &str) -> Result<String, SettingsError> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| SettingsError(format!("cannot make a salt: {e}")))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SettingsError(format!("cannot hash the password: {e}")))
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// A hash that matches no password, checked for unknown users so that
/// answering takes as long as for known ones.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0Pz0yNBzhRpRc7Kk5kSP1cpL0Hf1wR0nYQc3PBOvZ1Y";

/// The users and their password hashes.
#[derive(Clone, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl std::fmt::Debug for Users {
    // The hashes stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("users", &self.hashes.len())
            .finish()
    }
}

impl Users {
    /// Reads a users file: `name:hash` lines; blank lines and `#`
    /// comments are skipped. Every hash must be argon2id.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError(format!(
                "cannot read the users file {}: {e}",
                path.display()
            ))
        })?;
        Self::parse(&text).map_err(|e| SettingsError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses the text of a users file.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let mut hashes = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line_no = number + 1;
            let Some((name, hash)) = line.split_once(':') else {
                return Err(SettingsError(format!("line {line_no} is not name:hash")));
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
            {
                return Err(SettingsError(format!(
                    "line {line_no}: user name {name:?} may hold only letters, digits, '.', '_', '-' and '@'"
                )));
            }
            match PasswordHash::new(hash) {
                Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => {}
                // The hash itself is a secret of sorts: not echoed.
                _ => {
                    return Err(SettingsError(format!(
                        "line {line_no}: the hash of {name} is not an argon2id hash (make one with `kingpin console hash-password`)"
                    )))
                }
            }
            if hashes.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(SettingsError(format!(
                    "line {line_no}: {name} is listed twice"
                )));
            }
        }
        Ok(Users { hashes })
    }

    /// Whether `password` is `user`'s. Slow on purpose (argon2id), and as
    /// slow for unknown users; run it off the async threads.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.hashes.get(user) {
            Some(hash) => (hash.as_str(), true),
            None => (DECOY_HASH, false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let matches = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        known && matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let users = Users::parse(&format!("# comment\n\nalice:{hash}\n")).unwrap();
        assert!(users.verify("alice", "correct horse"));
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("mallory", "correct horse"));
        assert!(!format!("{users:?}").contains("argon2"));
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, complaint) in [
            ("alice", "line 1 is not name:hash"),
            ("alice:plaintext", "not an argon2id hash"),
            ("al ice:$argon2id$x", "user name"),
        ] {
            let err = Users::parse(text).unwrap_err();
            assert!(err.0.contains(complaint), "{text}: {err}");
            assert!(!err.0.contains("plaintext"));
        }
    }
}
